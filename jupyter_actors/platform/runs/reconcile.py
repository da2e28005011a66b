"""Start-up reconciliation: the engine is the truth about containers, the registry is the index.

Every run recorded as unfinished is matched with its labelled container: a running one is adopted,
one that exited on its own is finished as if it had been watched, and one the engine or the host
lost (or that the platform stopped to migrate it) is restarted with the same id and storages. A run
the platform was stopping (abort, timeout, disk) ends as its stop intended, container or not.
The engine's event stream replays only its last 256 events, so it is never used to catch up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..backends.base import Backend, ContainerState
from ..clock import parse_iso, utcnow
from ..lifecycle import ACTIVE_STATUSES, HANDOVER_INTENTS, LABEL_INSTANCE, LABEL_RUN, STOP_MIGRATE
from ..models import Run
from ..runlog import RunLog
from ..stores import RunStore

log = logging.getLogger(__name__)


class Adopter(Protocol):
    """What reconciliation hands runs to (``runs.service.RunService``)."""

    def is_watched(self, run_id: str) -> bool: ...

    def adopt(self, run: Run, container_id: str) -> None: ...

    def restart_lost(self, run: Run, reason: str) -> None: ...

    def finish_stopped(self, run: Run) -> None: ...


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # left for the next pass (logged)


def host_boot_time(stat_path: str = "/proc/stat") -> dt.datetime | None:
    try:
        with open(stat_path) as handle:
            for line in handle:
                if line.startswith("btime "):
                    return dt.datetime.fromtimestamp(int(line.split()[1]), tz=dt.timezone.utc)
    except OSError:
        pass
    return None


def lost_reason(run: Run, state: ContainerState | None, *, boot: dt.datetime | None,
                last_seen: dt.datetime | None) -> str | None:
    """Why a run's container did not end by the actor's own exit, or None if it did (or still runs)."""
    if run["stop_intent"] == STOP_MIGRATE:
        return "it was stopped for a server shutdown"
    if run["stop_intent"] in HANDOVER_INTENTS:
        return f"it was stopped for a {run['stop_intent']}"  # its next container starts (restart_lost hands over)
    if run["stop_intent"]:
        return None  # aborted, timed out or over its disk: finish as intended
    if state is None or state.status == "created":
        return "its container is gone"
    if state.lost:
        return state.lost
    if state.running or state.oom_killed:
        return None
    if state.exit_code == 255:
        return "the host or engine went down (exit 255)"
    if boot and state.started_at and state.started_at < boot:
        return "it could not survive a restart of the host"
    if state.exit_code in (137, 143):
        return "it was killed by a signal while the engine stopped"
    if last_seen and state.finished_at and state.finished_at > last_seen and state.exit_code != 0:
        return "it failed while the server was down (its API was unreachable)"
    return None


def reconcile(runs: RunStore, backend: Backend, adopter: Adopter, *, instance_id: str,
              last_seen: dt.datetime | None, orphan_grace_secs: float,
              log_path: Callable[[str], Path], only: set[str] | None = None) -> ReconcileReport:
    """Adopt, finish or restart every unfinished run of ``instance_id``; remove containers of no run.

    ``last_seen`` is when the previous server was last alive (its heartbeat). ``only``: reconcile just
    these runs (the periodic pass, while the server runs); others are left to their watchers. Each run
    is reconciled on its own: one that fails is logged and left for the next pass.
    """
    report = ReconcileReport()
    # This host's boot time says nothing about containers on other machines (swarm nodes, pods).
    boot = host_boot_time() if backend.runs_on_this_host else None
    by_run: dict[str | None, list[ContainerState]] = {}
    for state in backend.list({LABEL_INSTANCE: instance_id}):
        by_run.setdefault(state.labels.get(LABEL_RUN), []).append(state)

    for run in runs.in_statuses(ACTIVE_STATUSES):
        if adopter.is_watched(run["id"]) or (only is not None and run["id"] not in only):
            by_run.pop(run["id"], None)
            continue
        states = by_run.pop(run["id"], [])
        try:
            _reconcile_run(run, states, backend, adopter, report, boot=boot, last_seen=last_seen, log_path=log_path)
        except Exception:  # the others still get reconciled; this one is tried again at the next pass
            log.exception("could not reconcile run %s", run["id"])
            report.failed.append(run["id"])

    grace = dt.timedelta(seconds=orphan_grace_secs)
    for run_id, states in by_run.items():
        known = run_id is not None and runs.find(run_id) is not None
        for state in states:
            created = state.created_at
            # A container of a finished run, or one with no record at all after a grace period.
            if known or created is None or utcnow() - created > grace:
                backend.remove(state.id)
                report.removed.append(state.id)
    return report


def _reconcile_run(run: Run, states: list[ContainerState], backend: Backend, adopter: Adopter,
                   report: ReconcileReport, *, boot: dt.datetime | None, last_seen: dt.datetime | None,
                   log_path: Callable[[str], Path]) -> None:
    current = next((s for s in states if s.id == run["container_id"] or s.name == run["container_name"]), None)
    for stale in states:
        if stale is not current:
            backend.remove(stale.id)
            report.removed.append(stale.id)
    reason = lost_reason(run, current, boot=boot, last_seen=last_seen)
    if reason is not None:
        if current is not None:
            store_remaining_log(backend, log_path(run["id"]), run["id"], current.id)  # before the engine forgets
            backend.remove(current.id)
        adopter.restart_lost(run, reason)
        report.restarted.append(run["id"])
    elif current is None:  # being stopped (abort, timeout, disk) and its container is gone too
        adopter.finish_stopped(run)
        report.finished.append(run["id"])
    else:
        adopter.adopt(run, current.id)
        (report.adopted if current.running else report.finished).append(run["id"])


def store_remaining_log(backend: Backend, path: Path, run_id: str, container_id: str) -> None:
    """Copy what a lost container printed after the last server stopped watching it."""
    runlog = RunLog(path)
    try:
        stream = backend.logs(container_id, since_ns=runlog.resume(), follow=False)
        try:
            for line in stream:
                runlog.append([line])
        finally:
            stream.close()
    except Exception:  # the engine may have lost the log with the host; restart anyway
        log.warning("could not store the last log lines of run %s", run_id)
    finally:
        runlog.close()


def expired(run: Run) -> bool:
    """Whether the run's timeout has passed."""
    timeout_at = parse_iso(run["timeout_at"])
    return timeout_at is not None and timeout_at <= utcnow()


__all__ = ["ReconcileReport", "expired", "host_boot_time", "lost_reason", "reconcile"]
