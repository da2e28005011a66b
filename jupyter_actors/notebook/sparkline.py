"""A run's memory and CPU samples as a small inline SVG for the live view (no plotting library, no JS).

Memory is drawn against the run's limit (the box's top), CPU against its share of cores, so a full-height line means
"at the limit" at a glance.
"""

from __future__ import annotations

import html

MB = 2**20
MAX_POINTS = 60
WIDTH, HEIGHT = 120, 24
MEMORY_COLOUR, CPU_COLOUR = "#1565c0", "#2e7d32"


def series(samples: dict, max_points: int = MAX_POINTS) -> dict[str, list[float]]:
    """The ``stats-samples`` answer thinned to at most ``max_points``: memory in MB, CPU in percent of a core."""
    items = samples.get("items") or []
    stride = max(1, -(-len(items) // max_points))
    kept = items[::stride]
    return {"memMb": [round(item["memBytes"] / MB, 1) for item in kept],
            "cpuPct": [round(float(item["cpuUsage"]), 1) for item in kept]}


def _points(values: list[float], top: float) -> str:
    step = WIDTH / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{HEIGHT - min(value, top) / top * (HEIGHT - 1):.1f}"
                    for i, value in enumerate(values))


def sparkline_svg(spark: dict[str, list[float]], memory_limit_mb: float, cpu_cores: float) -> str:
    """Two polylines (memory blue, CPU green) in a WIDTHxHEIGHT box; "" until there are two samples."""
    memory, cpu = spark.get("memMb") or [], spark.get("cpuPct") or []
    if len(memory) < 2:
        return ""
    memory_top = memory_limit_mb or max(memory) or 1
    cpu_top = max([cpu_cores * 100, *cpu]) or 1
    title = (f"memory (max {max(memory):.0f} of {memory_limit_mb:.0f} MB) and CPU "
             f"(max {max(cpu):.0f}% of one core), {len(memory)} samples")
    return (f"<svg class='jupyter-actors-sparkline' width='{WIDTH}' height='{HEIGHT}' "
            f"viewBox='0 0 {WIDTH} {HEIGHT}' style='vertical-align:middle;border:1px solid #e0e0e0'>"
            f"<title>{html.escape(title)}</title>"
            f"<polyline fill='none' stroke='{CPU_COLOUR}' stroke-width='1' points='{_points(cpu, cpu_top)}'/>"
            f"<polyline fill='none' stroke='{MEMORY_COLOUR}' stroke-width='1.5' "
            f"points='{_points(memory, memory_top)}'/></svg>")


__all__ = ["series", "sparkline_svg"]
