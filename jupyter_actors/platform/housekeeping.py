"""The serving process's background thread: a heartbeat, the retention sweep, runs' disk limits, and
reconciliation of live runs whose watcher lost the engine.

The heartbeat tells the next server what happened while none was alive (see ``runs.reconcile``).
A run's disk limit covers its container's writable layer and every storage it wrote to: the layer is
measured here only on engines that cannot cap it (overlay2 on ext4), the storages always (no engine
sees them).
"""

from __future__ import annotations

import logging
import threading
import time

from .backends.base import Backend
from .clock import now_iso
from .config import PlatformConfig
from .lifecycle import STOP_DISK, RunStatus
from .models import Run
from .retention import Retention
from .runs.service import RunService
from .runs.watcher import RunWatcher
from .storages import Storages
from .stores import Stores

log = logging.getLogger(__name__)

MAX_RECONCILE_PAUSE_SECS = 60.0


class Housekeeping:
    def __init__(self, stores: Stores, runs: RunService, retention: Retention, storages: Storages,
                 backend: Backend, config: PlatformConfig) -> None:
        self.stores = stores
        self.runs = runs
        self.retention = retention
        self.storages = storages
        self.backend = backend
        self.config = config
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._reconcile_failures = 0
        self._next_reconcile = 0.0  # time.monotonic() of the next periodic reconciliation

    def start(self) -> None:
        """Start the thread (once); the serving process calls this."""
        if self._thread is None:
            self.beat()
            self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._closing.set()

    def beat(self) -> None:
        self.stores.set_meta("heartbeat", now_iso())

    def sweep(self) -> None:
        try:
            self.retention.expire_runs()
        except Exception:  # retention must never stop the housekeeping loop
            log.exception("retention sweep failed")

    def reconcile(self) -> None:
        """Adopt or restart live runs no watcher follows; while the engine does not answer, try again
        after a pause that doubles (up to ``MAX_RECONCILE_PAUSE_SECS``)."""
        if time.monotonic() < self._next_reconcile:
            return
        interval = self.config.reconcile_interval_secs
        try:
            report = self.runs.reconcile_unwatched()
        except Exception as exc:  # the engine is restarting or unreachable
            self._reconcile_failures += 1
            pause = min(MAX_RECONCILE_PAUSE_SECS, interval * 2 ** self._reconcile_failures)
            log.warning("reconciling runs failed (%s: %s); trying again in %.1f s", type(exc).__name__, exc, pause)
            self._next_reconcile = time.monotonic() + pause
            return
        self._reconcile_failures = 0
        self._next_reconcile = time.monotonic() + interval
        if report is not None:
            log.info("reconciled runs no watcher followed: adopted %s, finished %s, restarted %s, failed %s",
                     report.adopted, report.finished, report.restarted, report.failed)

    def _loop(self) -> None:
        interval = min(self.config.disk_check_interval_secs, self.config.heartbeat_secs,
                       self.config.reconcile_interval_secs)
        last_beat = last_sweep = time.monotonic()
        self._next_reconcile = last_beat + self.config.reconcile_interval_secs
        self.sweep()
        while not self._closing.wait(interval):
            if time.monotonic() - last_beat >= self.config.heartbeat_secs:
                try:
                    self.beat()
                except Exception:  # a full disk, say: the loop must go on (it reconciles when space returns)
                    log.exception("heartbeat failed")
                last_beat = time.monotonic()
            if time.monotonic() - last_sweep >= self.config.retention_sweep_secs:
                self.sweep()
                last_sweep = time.monotonic()
            self.reconcile()
            for run_id, watcher in list(self.runs.watchers.items()):
                try:
                    self.check_disk(run_id, watcher)
                except Exception:  # one failing check must not stop the loop
                    log.exception("disk check of run %s failed", run_id)

    def disk_usage(self, run: Run) -> int:
        """Bytes a run uses on disk: its container's writable layer (where the engine does not cap it
        itself) plus every storage it created or wrote to (``Storages.run_bytes`` says how they count)."""
        container = run["container_id"]
        used = self.backend.disk_usage(container) if container and self.runs.disk_measured else 0
        return used + self.storages.run_bytes(run["id"])

    def check_disk(self, run_id: str, watcher: RunWatcher) -> None:
        run = self.runs.get_run(run_id)
        if run["status"] != RunStatus.RUNNING or run["stop_intent"] or not run["container_id"]:
            return
        if self.disk_usage(run) <= run["disk_mb"] * 1024 * 1024:
            return
        message = (f"Stopping: the run used more than its disk limit of {run['disk_mb']} MB (its container's files "
                   "and every storage it wrote to)")
        if self.stores.runs.mark_stopping(run_id, STOP_DISK, message):
            self.runs.changes.notify(self.runs.get_run(run_id))
            watcher.stop_container(self.config.stop_grace_secs)
