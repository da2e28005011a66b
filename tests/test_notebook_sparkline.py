"""The live view's sparkline: the server's samples thinned and drawn against the limits."""

from __future__ import annotations

from jupyter_actors.notebook.sparkline import MAX_POINTS, series, sparkline_svg

MB = 2**20


def samples(count: int) -> dict:
    return {"items": [{"at": f"t{i}", "memBytes": i * MB, "cpuUsage": i / 2} for i in range(count)],
            "memoryLimitBytes": 1024 * MB, "cpuCores": 1}


def test_series_is_thinned_evenly_and_in_display_units():
    assert series(samples(3)) == {"memMb": [0.0, 1.0, 2.0], "cpuPct": [0.0, 0.5, 1.0]}
    thinned = series(samples(721))
    assert len(thinned["memMb"]) <= MAX_POINTS and thinned["memMb"][0] == 0.0 and thinned["memMb"][1] == 13.0


def test_svg_needs_two_samples_and_scales_memory_to_the_limit():
    assert sparkline_svg(series(samples(1)), 1024, 1) == ""
    svg = sparkline_svg({"memMb": [0.0, 1024.0], "cpuPct": [0.0, 0.0]}, 1024, 1)
    assert svg.startswith("<svg") and "points='0.0,24.0 120.0,1.0'" in svg  # full height at the limit
    assert "max 1024 of 1024 MB" in svg
