"""Runs' resource usage, as Apify reports it: memory and CPU sampled from the engine every few seconds.

A ``UsageSampler`` thread of the serving process reads every watched run's container (its cgroup:
cheap files, no engine call) and stores a sample with the run's running totals in one transaction,
so peaks and averages survive a server restart. Each run keeps a bounded series of samples (older
ones thinned), served by the API for plots.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from ..backends.base import Backend
from ..stores import RunStore

log = logging.getLogger(__name__)

#: Samples kept per run at most; past it the older ones are thinned to every second one.
MAX_SAMPLES = 720


@dataclass
class RunUsage:
    """A run's resource totals so far (across its containers: restarts and resurrections add up)."""

    samples: int = 0
    mem_sum: int = 0
    mem_max: int = 0
    mem_current: int = 0
    cpu_sum: float = 0.0
    cpu_max: float = 0.0
    cpu_current: float = 0.0
    net_rx: int = 0
    net_tx: int = 0
    #: Every how many samples one goes into the stored series: doubled each time the series is thinned,
    #: so it stays evenly spaced over the whole run.
    stride: int = 1
    # Where the current container's counters stood at the last sample (they restart with a container).
    container_id: str = ""
    last_cpu_ns: int = 0
    last_at_ns: int = 0
    last_rx: int = 0
    last_tx: int = 0

    @classmethod
    def loads(cls, text: str | None) -> RunUsage:
        known = {field.name for field in fields(cls)}
        values = json.loads(text) if text else {}
        return cls(**{key: value for key, value in values.items() if key in known})

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def stats(self, *, running: bool) -> dict[str, float | int]:
        """Apify's run ``stats`` fields for memory (bytes), CPU (percent of one core) and network (bytes)."""
        return {
            "memAvgBytes": self.mem_sum // self.samples if self.samples else 0,
            "memMaxBytes": self.mem_max,
            "memCurrentBytes": self.mem_current if running else 0,
            "cpuAvgUsage": self.cpu_sum / self.samples if self.samples else 0.0,
            "cpuMaxUsage": self.cpu_max,
            "cpuCurrentUsage": self.cpu_current if running else 0.0,
            "netRxBytes": self.net_rx,
            "netTxBytes": self.net_tx,
        }

    def add(self, container_id: str, memory: int, peak: int | None, cpu_ns: int | None,
            network: tuple[int, int] | None, now_ns: int) -> float:
        """Fold in one reading of ``container_id``; returns the CPU use (percent of a core) since the last."""
        if container_id != self.container_id:  # a new container: its counters start from zero
            self.container_id, self.last_cpu_ns, self.last_at_ns, self.last_rx, self.last_tx = container_id, 0, 0, 0, 0
        cpu = 0.0
        if cpu_ns is not None:
            if self.last_at_ns and now_ns > self.last_at_ns and cpu_ns >= self.last_cpu_ns:
                cpu = (cpu_ns - self.last_cpu_ns) / (now_ns - self.last_at_ns) * 100
            self.last_cpu_ns, self.last_at_ns = cpu_ns, now_ns
        if network is not None:
            rx, tx = network
            self.net_rx += max(0, rx - self.last_rx)
            self.net_tx += max(0, tx - self.last_tx)
            self.last_rx, self.last_tx = rx, tx
        self.samples += 1
        self.mem_sum += memory
        self.mem_current = memory
        self.mem_max = max(self.mem_max, memory, peak or 0)
        self.cpu_current = cpu
        self.cpu_sum += cpu
        self.cpu_max = max(self.cpu_max, cpu)
        return cpu


class UsageSampler:
    """The thread that samples every watched run; ``containers`` says which (run id -> container id)."""

    def __init__(self, runs: RunStore, backend: Backend, containers: Callable[[], list[tuple[str, str]]],
                 interval_secs: float,
                 max_samples: int = MAX_SAMPLES) -> None:
        self.runs = runs
        self.backend = backend
        self.containers = containers
        self.interval_secs = interval_secs
        self.max_samples = max_samples
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        #: Wall-clock time of a sample (one sample per run and millisecond is stored).
        self.clock_ns: Callable[[], int] = time.time_ns

    def start(self) -> None:
        if self._thread is None and self.interval_secs > 0:
            self._thread = threading.Thread(target=self._loop, name="usage-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop sampling; waits for a sample being stored (the registry closes after this)."""
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._closing.wait(self.interval_secs):
            for run_id, container_id in self.containers():
                try:
                    self.sample(run_id, container_id)
                except Exception:  # one run's failure must not stop the others' samples
                    log.exception("usage sample of run %s failed", run_id)

    def sample(self, run_id: str, container_id: str) -> None:
        """Read the container once and store the sample with the run's new totals."""
        memory = self.backend.memory_usage(container_id)
        if memory is None:  # not running (yet or any more), or an engine that cannot tell
            return
        peak = self.backend.memory_peak(container_id)
        cpu_ns = self.backend.cpu_usage_ns(container_id)
        network = self.backend.network_bytes(container_id)
        now_ns = self.clock_ns()
        run = self.runs.find(run_id)
        if run is None:
            return
        usage = RunUsage.loads(run.get("usage"))
        cpu = usage.add(container_id, memory, peak, cpu_ns, network, time.monotonic_ns())
        point = {"at_ms": now_ns // 1_000_000, "mem_bytes": memory, "cpu_usage": cpu}
        keep = (usage.samples - 1) % usage.stride == 0
        if self.runs.add_sample(run_id, point if keep else None, usage.dumps(), max_samples=self.max_samples):
            usage.stride *= 2
            self.runs.add_sample(run_id, None, usage.dumps(), max_samples=self.max_samples)


__all__ = ["MAX_SAMPLES", "RunUsage", "UsageSampler"]
