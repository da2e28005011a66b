"""The rule behind the live view's end-of-run line: peak memory against the limit, and a hint."""

from __future__ import annotations

import pytest

from jupyter_actors.notebook.sizing import memory_hint, peak_line

MB = 2**20


@pytest.mark.parametrize(("peak_mb", "limit_mb", "oom", "hint"), [
    (312, 1024, False, ""),  # 30 %: fits
    (100, 1024, False, "a 256 MB limit would do"),  # under 25 %: the smallest size with twice the peak
    (20, 1024, False, "a 128 MB limit would do"),
    (20, 128, False, ""),  # already the smallest size
    (950, 1024, False, "close to the limit: raise the memory (--memory 2048)"),  # over 90 %
    (900, 1024, False, ""),
    (500, 1024, True, "it ran out of memory: raise the memory (--memory 2048)"),  # killed whatever the peak
    (0, 1024, True, "it ran out of memory: raise the memory (--memory 2048)"),
    (32000, 32768, False, "close to the limit: raise the memory"),  # no larger size to name
    (0, 1024, False, ""),  # nothing measured: no advice
])
def test_memory_hint(peak_mb, limit_mb, oom, hint):
    assert memory_hint(peak_mb * MB, limit_mb, oom_killed=oom) == hint


def test_peak_line():
    assert peak_line(312 * MB, 1024) == "peak 312 MB of 1024 MB"
    assert peak_line(100 * MB, 1024) == "peak 100 MB of 1024 MB - a 256 MB limit would do"
    assert peak_line(None, 1024) == "peak not measured, limit 1024 MB"
