"""Run stats with Apify's meaning: the peak memory used (not the limit), CPU, network, and a bounded
series of samples taken from the engine while the run runs."""

from __future__ import annotations

import time

from jupyter_actors.api.views import Views
from jupyter_actors.platform.backends.base import Backend
from jupyter_actors.platform.runs.usage import RunUsage, UsageSampler

from .conftest import TEST_MEMORY_MB, define_actor

ALLOCATED_MB = 200
# Holds ALLOCATED_MB of touched memory and burns CPU for a few seconds, then exits.
HOG = f"""
import time
data = b"x" * ({ALLOCATED_MB} * 2**20)
print("allocated", len(data), flush=True)
end = time.monotonic() + 4
while time.monotonic() < end:
    sum(range(10000))
"""


def test_stats_report_the_peak_used_and_samples_are_kept(platform_factory):
    platform = platform_factory(usage_sample_secs=0.5)
    define_actor(platform, "hog", HOG)
    run = platform.start_run("hog", memory_mb=TEST_MEMORY_MB, timeout_secs=120)
    run = platform.wait_run(run["id"], timeout=120)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"]).decode()

    stats = Views(platform, "http://127.0.0.1/actors/api").run(run)["stats"]
    limit = TEST_MEMORY_MB * 2**20
    assert ALLOCATED_MB * 2**20 < stats["memMaxBytes"] < limit, stats
    assert 0 < stats["memAvgBytes"] <= stats["memMaxBytes"] and stats["memCurrentBytes"] == 0
    assert stats["cpuMaxUsage"] > 10 and 0 < stats["cpuAvgUsage"] <= stats["cpuMaxUsage"], stats
    assert stats["netRxBytes"] >= 0 and stats["netTxBytes"] >= 0
    assert stats["computeUnits"] == TEST_MEMORY_MB / 1024 * stats["durationMillis"] / 3_600_000
    assert {"restartCount", "resurrectCount", "runTimeSecs"} <= set(stats)

    samples = platform.run_samples(run["id"])
    assert len(samples) >= 3
    assert [s["at_ms"] for s in samples] == sorted(s["at_ms"] for s in samples)
    assert max(s["mem_bytes"] for s in samples) > ALLOCATED_MB * 2**20 // 2


class FakeEngine(Backend):
    """Counters that grow by known steps: one core busy, 1 MB more memory, 10/20 bytes in/out per sample."""

    def __init__(self) -> None:
        self.reads = 0

    def memory_usage(self, container_id: str) -> int | None:
        self.reads += 1
        return self.reads * 2**20

    def cpu_usage_ns(self, container_id: str) -> int | None:
        return time.monotonic_ns()

    def network_bytes(self, container_id: str) -> tuple[int, int] | None:
        return 10 * self.reads, 20 * self.reads


def test_the_series_stays_bounded_and_evenly_spaced_and_totals_add_up(platform_factory):
    platform = platform_factory(usage_sample_secs=0)  # no background sampler: this test drives one itself
    define_actor(platform, "quick", "print('hi')\n")
    run = platform.wait_run(platform.start_run("quick", memory_mb=TEST_MEMORY_MB)["id"], timeout=120)
    assert platform.run_samples(run["id"]) == []  # the platform's own sampler is off
    platform.stores.runs.add_sample(run["id"], None, RunUsage().dumps(), max_samples=10)  # start from zero
    sampler = UsageSampler(platform.stores.runs, FakeEngine(), lambda: [], interval_secs=0, max_samples=10)
    ticks = iter(range(10**9, 10**12, 10**9))  # one second apart: the loop is faster than the clock's ms
    sampler.clock_ns = lambda: next(ticks)
    for _ in range(100):
        sampler.sample(run["id"], "c1")
    kept = platform.run_samples(run["id"])
    assert 5 <= len(kept) <= 10
    stored = RunUsage.loads(platform.get_run(run["id"])["usage"])
    assert stored.samples == 100 and stored.mem_max == 100 * 2**20 and stored.mem_sum == 5050 * 2**20
    assert stored.net_rx == 1000 and stored.net_tx == 2000  # a container counts from its start
    assert 80 < stored.cpu_sum / stored.samples < 120  # the fake's CPU counter runs at one core
    assert stored.stride >= 8  # thinned several times; new samples are kept at the same spacing
    mems = [sample["mem_bytes"] // 2**20 for sample in kept]
    assert mems[0] == 1 and len({b - a for a, b in zip(mems, mems[1:], strict=False)}) == 1, mems  # evenly spaced
    # A new container (a resurrection) starts its counters again; the totals keep growing.
    stored.add("c2", 10, 500 * 2**20, 10**9, (5, 5), time.monotonic_ns())
    assert stored.net_rx == 1005 and stored.mem_max == 500 * 2**20
