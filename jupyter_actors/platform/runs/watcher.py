"""Supervision of one run's container: start it, copy its log, enforce its timeout, classify its end.

One ``RunWatcher`` per live run owns a thread. Every status change goes through its supervisor's
``transition`` (the lifecycle state machine, in one registry transaction), and the supervisor records
*why* it stops a container before stopping it, so an exit is classified by intent, not exit code alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ..backends.base import Backend, ContainerSpec, ContainerState, LogStream
from ..clock import parse_iso, utcnow
from ..config import PlatformConfig
from ..errors import Conflict
from ..lifecycle import HANDOVER_INTENTS, STOP_ABORT, STOP_MIGRATE, STOP_TIMEOUT, RunStatus, stop_outcome
from ..models import Run
from ..runlog import RunLog

log = logging.getLogger(__name__)


#: Exit codes of SIGKILL and SIGTERM: the actor's own, or the engine's stop (``Backend.stopped_by_engine``).
SIGNAL_EXIT_CODES = (137, 143)


class StoppedByEngine(Exception):
    """The container ended because the engine stopped it; the watcher hands the run to reconciliation."""


class Supervisor(Protocol):
    """What a watcher needs from the service that owns it (``runs.service.RunService``)."""

    backend: Backend
    config: PlatformConfig

    def log_path(self, run_id: str) -> Path: ...

    def get_run(self, run_id: str) -> Run: ...

    def transition(self, run_id: str, target: RunStatus, **values: Any) -> Run: ...

    def update_run(self, run_id: str, **values: Any) -> Run: ...

    def web_address(self, run_id: str) -> tuple[str, int] | None: ...

    def send_event(self, run_id: str, name: str, data: dict[str, Any] | None = None) -> bool: ...

    def restart_lost(self, run: Run, reason: str) -> None: ...

    def hand_over(self, run: Run) -> None: ...
    def restart_failed(self, run: Run, reason: str) -> bool: ...

    def forget_watcher(self, run_id: str, watcher: RunWatcher) -> None: ...


class RunWatcher:
    def __init__(self, platform: Supervisor, run_id: str) -> None:
        self.platform = platform
        self.backend = platform.backend
        self.run_id = run_id
        self.container_id: str | None = None
        self.runlog = RunLog(platform.log_path(run_id), max_bytes=int(platform.config.log_cap_mb * 2**20))
        self._timer: threading.Timer | None = None
        self._boost_timer: threading.Timer | None = None
        self._stream: LogStream | None = None
        self._closed = threading.Event()
        self._exited = threading.Event()
        self._resurrected = False
        self._spec: ContainerSpec | None = None
        #: The state of the stopped container as ``_follow`` saw it (None: inspect again at the end).
        self._final_state: ContainerState | None = None
        #: Set when the watcher gave up on an error: the run is still live and reconciliation takes it over.
        self.detached = False
        self.thread = threading.Thread(target=self._main, name=f"run-{run_id}", daemon=True)

    # -- entry points -----------------------------------------------------------------------------

    def launch(self, spec: ContainerSpec, *, mode: str = "new") -> None:
        """Create and start the container.

        ``new``: the run is READY and becomes RUNNING. ``resurrect``: it is RUNNING already and its old
        log is discarded (the seed's rule). ``restart`` (a lost run): RUNNING, and the log continues.
        """
        self._spec = spec
        self._resurrected = mode in ("resurrect", "restart")
        if mode == "resurrect":
            self.runlog.discard()
        self.thread.start()

    def adopt(self, container_id: str) -> None:
        """Follow a container that already runs (after a server restart)."""
        self._spec = None
        self.container_id = container_id
        self._end_boost()  # a boost the last server began must not outlive it
        self.thread.start()

    def _end_boost(self) -> None:
        """Back to the run's own CPU share (memory/4096 cores) after the start-up boost."""
        if self.container_id is None or not self.backend.can_set_cpu:
            return
        run = self.platform.get_run(self.run_id)
        if run["cpu_mode"] != "quota":
            return
        try:
            self.backend.set_cpu(self.container_id, int(run["cpu_cores"] * 1e9))
        except Exception as exc:  # it exited meanwhile; nothing to lower
            log.debug("run %s: could not end the start-up boost: %s", self.run_id, exc)

    def stop_container(self, grace_secs: float, *, event: str | None = None) -> None:
        """Stop the container in the background; ``grace_secs`` 0 kills it at once.

        With an ``event`` (``aborting``, ``migrating``) the actor is told first and given the grace
        period to persist its state and exit by itself; then SIGTERM, and SIGKILL shortly after. The
        SDK installs no SIGTERM handler, so the event is the actor's only chance to save state.
        """
        container_id = self.container_id
        if container_id is None:
            return
        if grace_secs <= 0:
            threading.Thread(target=self.backend.kill, args=(container_id,), daemon=True).start()
            return

        def stop() -> None:
            if event is not None and self.platform.send_event(self.run_id, event):
                self.platform.send_event(self.run_id, "persistState", {"isMigrating": event == "migrating"})
                if self._exited.wait(grace_secs):
                    return
                grace = min(grace_secs, 3.0)  # it had its chance to persist; now SIGTERM, then SIGKILL
            else:
                grace = grace_secs  # no events socket: SIGTERM is the actor's signal to persist
            self.backend.stop(container_id, grace)

        threading.Thread(target=stop, name=f"stop-{self.run_id}", daemon=True).start()

    def close(self) -> None:
        """Stop watching without touching the container (server shutdown: the run lives on)."""
        self._closed.set()
        self._cancel_timers()
        stream = self._stream
        if stream is not None:
            stream.close()

    # -- the thread -------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            if self._spec is not None and not self._start_container():
                return
            self._arm_timeout()
            self._follow()
            if not self._closed.is_set():
                self._finish()
        except Exception as exc:  # a watcher must never die silently, nor take a running container with it
            # An engine restarting or unreachable, a transient engine error, the platform's own disk full:
            # none of them says the run ended. The run is left as it is and handed back to reconciliation,
            # which adopts it again (or restarts it as lost) once the engine answers.
            if not self._closed.is_set():
                self.detached = True
                log.warning("run %s: watching its container failed (%s: %s); it is reconciled again once the "
                            "engine answers", self.run_id, type(exc).__name__, exc, exc_info=True)
        finally:
            self._cancel_timers()  # a watcher that adopts the run again arms its own
            self.runlog.close()
            self.platform.forget_watcher(self.run_id, self)

    def _start_container(self) -> bool:
        spec = self._spec
        assert spec is not None, "only launched watchers start a container"
        try:
            self.container_id = container_id = self.backend.create(spec)
            self.platform.update_run(self.run_id, container_id=container_id)
            if self._aborted_meanwhile(container_id):
                return False
            self.backend.start(container_id)
        except Exception as exc:  # any engine error means the run failed to start
            log.warning("run %s could not start: %s", self.run_id, exc)
            if self.container_id:
                self.backend.remove(self.container_id)
            with contextlib.suppress(Conflict):
                self.platform.transition(
                    self.run_id, RunStatus.FAILED, finished_at=utcnow(), status_message_terminal=1,
                    status_message=f"The container could not be started: {exc}",
                )
            return False
        self.platform.web_address(self.run_id)
        if spec.startup_nano_cpus:
            self._boost_timer = threading.Timer(self.platform.config.startup_boost_secs, self._end_boost)
            self._boost_timer.daemon = True
            self._boost_timer.start()
        if self._resurrected:
            if self.platform.get_run(self.run_id)["stop_intent"] == STOP_ABORT:
                self.backend.kill(self.container_id)  # aborted while starting; _finish makes it ABORTED
            return True
        try:
            self.platform.transition(self.run_id, RunStatus.RUNNING, status_message="Running")
        except Conflict:  # aborted between create and start
            self.backend.kill(self.container_id)
            self.backend.remove(self.container_id)
            return False
        return True

    def _aborted_meanwhile(self, container_id: str) -> bool:
        """An abort that came while the container was being created: remove it and finish the abort."""
        run = self.platform.get_run(self.run_id)
        if run["stop_intent"] != STOP_ABORT:
            return False
        self.backend.remove(container_id)
        if run["status"] == RunStatus.ABORTING:
            with contextlib.suppress(Conflict):
                self.platform.transition(self.run_id, RunStatus.ABORTED, finished_at=utcnow(),
                                         status_message="The run was aborted", status_message_terminal=1)
        return True

    def _arm_timeout(self) -> None:
        run = self.platform.get_run(self.run_id)
        if not run["timeout_at"] or run["status"] != RunStatus.RUNNING:
            return
        delay = (parse_iso(run["timeout_at"]) - utcnow()).total_seconds()  # type: ignore[operator]
        self._timer = threading.Timer(max(0.0, delay), self._on_timeout)
        self._timer.daemon = True
        self._timer.start()

    def _on_timeout(self) -> None:
        try:
            self.platform.transition(
                self.run_id, RunStatus.TIMING_OUT, stop_intent=STOP_TIMEOUT,
                status_message="The run is timing out",
            )
        except Conflict:
            return  # it ended or is being aborted already
        # As on a graceful abort: `aborting` and `persistState` first, so the actor saves what it did since the
        # last periodic persist, then the grace period, then SIGTERM.
        self.stop_container(self.platform.config.stop_grace_secs, event="aborting")

    def _follow(self) -> None:
        """Copy the engine's log into the run log until the container has exited and the log is drained.

        The inspect that finds the container stopped is the run's final state (``_finish`` uses it, no
        second inspect, no wait). The drain stays: a followed stream the engine ended itself can still miss
        the last line the container printed without a newline (measured: 5 runs in 6 lost it).
        """
        assert self.container_id is not None
        while not self._closed.is_set():
            stream = self.backend.logs(self.container_id, since_ns=self.runlog.resume(), follow=True)
            self._stream = stream
            self._copy(stream)
            stream.close()
            state = self.backend.inspect(self.container_id)
            if state is None or not state.running:
                if state is not None and self.backend.stopped_state_is_final:
                    self._final_state = state
                break
            # The stream ended while the container runs (log rotation, engine hiccup): reopen it.
            time.sleep(0.05)
        if self._closed.is_set():
            return
        if self._final_state is None:
            self.backend.wait(self.container_id)
        self._exited.set()
        try:
            drain = self.backend.logs(self.container_id, since_ns=self.runlog.resume(), follow=False)
        except Exception as exc:  # removed behind our back: what was copied is all there is
            log.warning("run %s: the engine's log is gone (%s)", self.run_id, exc)
            return
        self._copy(drain)

    def _copy(self, stream: LogStream) -> None:
        # One write per batch that arrived together: lines reach readers as soon as they are printed.
        for batch in stream.batches():
            self.runlog.append(batch)

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._boost_timer):
            if timer:
                timer.cancel()

    def _finish(self, error: str | None = None) -> None:
        self._cancel_timers()
        state = self._final_state
        if state is None and self.container_id:
            state = self.backend.inspect(self.container_id)
        run = self.platform.get_run(self.run_id)
        intent = run["stop_intent"]
        exit_code = state.exit_code if state else None
        message = run["status_message"] if run["status_message_terminal"] else None
        if intent == STOP_MIGRATE:
            return  # stopped for a server shutdown: restarted with the same storages at the next start
        if intent in HANDOVER_INTENTS:  # stopped to make way for the run's next container (metamorph, reboot)
            if self.container_id:
                self.backend.remove(self.container_id)  # its log is stored
            self.platform.hand_over(run)
            return
        if intent is None and state is not None and state.lost and self.container_id:
            # The cluster lost it (a node went away): same id, storages and log, in a new container.
            self.backend.remove(self.container_id)
            self.platform.restart_lost(run, state.lost)
            return
        if (intent is None and state is not None and not state.oom_killed and exit_code in SIGNAL_EXIT_CODES
                and self.container_id and self.backend.stopped_by_engine(self.container_id, state.started_at)):
            # Not the actor's own end: the engine stopped it (it is restarting, or someone ran `docker stop`).
            # Left to reconciliation, which restarts it as lost once the engine answers again.
            raise StoppedByEngine(f"the engine stopped the container (exit {exit_code})")
        if intent is None and state is not None and state.deadline_exceeded:
            # The engine's own deadline (a backstop while the server was away) stopped it: a timeout.
            try:
                run = self.platform.transition(self.run_id, RunStatus.TIMING_OUT, stop_intent=STOP_TIMEOUT)
            except Conflict:
                run = self.platform.get_run(self.run_id)
        stopped = stop_outcome(run)
        if stopped is not None:
            target, default = stopped
            message = None  # stop_outcome weighed the actor's own message already
        elif error or (state is not None and state.error and exit_code != 0):
            target, default = RunStatus.FAILED, error or (state.error if state is not None else None) or ""
        elif state is not None and state.oom_killed:
            target, default = RunStatus.FAILED, (
                f"The run exceeded its memory limit of {run['memory_mb']} MB and was killed"
            )
            message = None
        elif exit_code == 0:
            target, default = RunStatus.SUCCEEDED, "The run finished successfully"
        else:
            target, default = RunStatus.FAILED, f"The run failed: the process exited with code {exit_code}"
        if (stopped is None and target == RunStatus.FAILED and exit_code not in (None, 0)
                and self.platform.restart_failed(run, f"the process exited with code {exit_code}")):
            if self.container_id:
                self.backend.remove(self.container_id)  # its log is stored; the run goes on in a new one
            return
        try:
            self.platform.transition(
                self.run_id, target, exit_code=exit_code, finished_at=utcnow(),
                status_message=message or default, status_message_terminal=1,
            )
        except Conflict:
            log.warning("run %s ended in status %s; not moving it to %s", self.run_id, run["status"], target)
        if self.container_id:
            self.backend.remove(self.container_id)  # only now: its log is stored
