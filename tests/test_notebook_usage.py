"""``run.usage()`` and ``run.plot_usage()`` against a real server sampling a real run."""

from __future__ import annotations

import sys

import pytest

import jupyter_actors

from .conftest import TEST_MEMORY_MB, extension_config, off

BUSY = ("import time\ndata = b'x' * (100 * 2**20)\nend = time.monotonic() + 3\n"
        "while time.monotonic() < end:\n    sum(range(10000))\n")


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data", usage_sample_secs=0.5)


async def test_usage_frame_and_plot_against_the_limits(client, monkeypatch):
    await off(jupyter_actors.define, "busy", BUSY, client=client)
    await off(jupyter_actors.build, "busy", client=client)
    run = await off(jupyter_actors.call, "busy", memory=TEST_MEMORY_MB, timeout=120, client=client)
    assert run.data["status"] == "SUCCEEDED", await off(run.log)

    frame = await off(run.usage)
    assert list(frame.columns) == ["memBytes", "cpuUsage"] and len(frame) >= 3
    assert str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing
    assert frame["memBytes"].max() > 50 * 2**20 and frame["cpuUsage"].max() > 0
    assert frame.attrs["memoryLimitBytes"] == TEST_MEMORY_MB * 2**20 and frame.attrs["cpuCores"] > 0

    import matplotlib

    matplotlib.use("Agg")
    figure = await off(run.plot_usage)
    memory_ax, cpu_ax = figure.axes
    used, limit = memory_ax.get_lines()
    assert list(used.get_ydata()) == list(frame["memBytes"] / 2**20)
    assert set(limit.get_ydata()) == {TEST_MEMORY_MB}
    assert list(cpu_ax.get_lines()[0].get_ydata()) == list(frame["cpuUsage"])

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        await off(run.plot_usage)
