"""Sizing a run's memory: the peak it used against its limit, and what limit to ask for next time.

Pure functions, so the rule that picks a hint is tested without a server.
"""

from __future__ import annotations

MB = 2**20
ALLOWED_MEMORY_MB = tuple(2**i for i in range(7, 16))  # 128 .. 32768, the seed's rule
#: Under this share of the limit the limit is far too big; over the high share it is too small.
LOW_SHARE = 0.25
HIGH_SHARE = 0.90
#: A suggested smaller limit leaves the peak this much room (twice the peak).
HEADROOM = 2.0


def memory_hint(peak_bytes: int | None, limit_mb: int, *, oom_killed: bool = False) -> str:
    """A short advice on the limit, or "" when it fits (or nothing was measured)."""
    if oom_killed:
        return f"it ran out of memory: raise the memory{_larger(limit_mb)}"
    if not peak_bytes or limit_mb <= 0:
        return ""
    share = peak_bytes / (limit_mb * MB)
    if share > HIGH_SHARE:
        return f"close to the limit: raise the memory{_larger(limit_mb)}"
    if share < LOW_SHARE:
        smaller = next((mb for mb in ALLOWED_MEMORY_MB if mb * MB >= HEADROOM * peak_bytes), limit_mb)
        if smaller < limit_mb:
            return f"a {smaller} MB limit would do"
    return ""


def _larger(limit_mb: int) -> str:
    bigger = next((mb for mb in ALLOWED_MEMORY_MB if mb > limit_mb), None)
    return f" (--memory {bigger})" if bigger is not None else ""


def peak_line(peak_bytes: int | None, limit_mb: int, *, oom_killed: bool = False) -> str:
    """``peak 312 MB of 1024 MB``, with the hint after a dash when there is one."""
    peak = f"peak not measured, limit {limit_mb} MB" if not peak_bytes else (
        f"peak {peak_bytes / MB:.0f} MB of {limit_mb} MB")
    hint = memory_hint(peak_bytes, limit_mb, oom_killed=oom_killed)
    return peak + (f" - {hint}" if hint else "")


__all__ = ["ALLOWED_MEMORY_MB", "memory_hint", "peak_line"]
