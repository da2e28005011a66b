"""``Run.plot_usage()``: a run's memory and CPU over time against its limits, drawn with matplotlib.

matplotlib is optional: without it the call says how to get it, and ``Run.usage()`` still gives the numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

MISSING_MATPLOTLIB = ("Run.plot_usage() draws with matplotlib, which is not installed here: "
                      "`pip install matplotlib` in the kernel's environment (Run.usage() gives the same numbers "
                      "as a DataFrame without it).")


def plot_usage(frame: pandas.DataFrame, *, title: str = "") -> Any:
    """Two panels sharing the time axis: memory (MB) under its limit, CPU (% of one core) under the run's
    share. Returns the matplotlib Figure (shown by Jupyter when it is the cell's value)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    figure, (memory_ax, cpu_ax) = plt.subplots(2, 1, sharex=True, figsize=(8, 5), constrained_layout=True)
    limit_mb = frame.attrs.get("memoryLimitBytes", 0) / 2**20
    memory_ax.plot(frame.index, frame["memBytes"] / 2**20, label="used", color="tab:blue")
    if limit_mb:
        memory_ax.axhline(limit_mb, color="tab:red", linestyle="--", label=f"limit {limit_mb:.0f} MB")
    memory_ax.set_ylabel("memory (MB)")
    memory_ax.set_ylim(bottom=0)
    memory_ax.legend(loc="upper left")
    cores = frame.attrs.get("cpuCores") or 0
    cpu_ax.plot(frame.index, frame["cpuUsage"], label="used", color="tab:green")
    if cores:
        cpu_ax.axhline(cores * 100, color="tab:red", linestyle="--", label=f"share {cores:g} cores")
    cpu_ax.set_ylabel("CPU (% of one core)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.set_xlabel("time (UTC)")
    cpu_ax.legend(loc="upper left")
    if title:
        memory_ax.set_title(title)
    plt.close(figure)  # shown once, as the cell's value, not again by pyplot's own display hook
    return figure


__all__ = ["MISSING_MATPLOTLIB", "plot_usage"]
