"""The run lifecycle of Apify's seed as one state machine, with the words every part of it shares.

Statuses and their allowed transitions, why the platform stops a container (stop intents, recorded
before the stop so an exit is classified by intent, not exit code alone), and the labels that tie a
container to its run.
"""

from __future__ import annotations

from enum import Enum

from .errors import Conflict
from .models import Run


class RunStatus(str, Enum):
    READY = "READY"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMING_OUT = "TIMING-OUT"
    TIMED_OUT = "TIMED-OUT"
    ABORTING = "ABORTING"
    ABORTED = "ABORTED"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def holds_resources(self) -> bool:
        """True while a container may exist for the run, so its memory counts against the quota."""
        return not self.is_terminal


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.ABORTED})
#: Statuses in which a container may exist, as stored strings (for SQL ``IN`` clauses).
ACTIVE_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if not s.is_terminal)
TERMINAL_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if s.is_terminal)

# Why the platform stops a run's container (the run's ``stop_intent``).
STOP_TIMEOUT = "timeout"
STOP_ABORT = "abort"
STOP_DISK = "disk"
STOP_MIGRATE = "migrate"
# The container is stopped to make way for another in the same run (metamorph, reboot): the run goes on.
STOP_METAMORPH = "metamorph"
STOP_REBOOT = "reboot"
HANDOVER_INTENTS = (STOP_METAMORPH, STOP_REBOOT)

# Labels on every run container: which platform instance, run and actor it belongs to.
LABEL_INSTANCE = "jupyter-actors.instance"
LABEL_RUN = "jupyter-actors.run-id"
LABEL_ACTOR = "jupyter-actors.actor-id"
LABEL_TIMEOUT_AT = "jupyter-actors.timeout-at"
LABEL_BUILD = "jupyter-actors.build-id"

_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    # READY -> FAILED when the container cannot be created or started; READY -> ABORTED before it starts.
    RunStatus.READY: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.ABORTED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMING_OUT, RunStatus.ABORTING}
    ),
    RunStatus.TIMING_OUT: frozenset({RunStatus.TIMED_OUT}),
    RunStatus.ABORTING: frozenset({RunStatus.ABORTED}),
    # Resurrection: any terminal status goes back to RUNNING.
    **{status: frozenset({RunStatus.RUNNING}) for status in TERMINAL},
}


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in _ALLOWED[RunStatus(current)]


def check_transition(current: RunStatus | str, target: RunStatus | str) -> RunStatus:
    """Return ``target`` as a RunStatus, or raise Conflict (HTTP 409) naming the allowed moves."""
    current, target = RunStatus(current), RunStatus(target)
    if not can_transition(current, target):
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[current])) or "none"
        raise Conflict(
            f"A run in status {current.value} cannot become {target.value}; "
            f"allowed from {current.value}: {allowed}.",
            type="run-status-transition-not-allowed",
        )
    return target


def stop_outcome(run: Run) -> tuple[RunStatus, str] | None:
    """The status and message a run ends with when the platform stopped it (its stop intent); None if not.

    A terminal status message the actor set wins over the default, except for the disk limit: that one
    is the platform's reason, and the user must see it.
    """
    intent = run["stop_intent"]
    if intent == STOP_DISK:
        return RunStatus.FAILED, (f"The run used more than its disk limit of {run['disk_mb']} MB (2 x its memory: its "
                                  "container's files and every storage it wrote to, default, named or created) "
                                  "and was stopped")
    if intent == STOP_TIMEOUT:
        target, default = RunStatus.TIMED_OUT, f"The run timed out after {run['timeout_secs']} seconds"
    elif intent == STOP_ABORT:
        target, default = RunStatus.ABORTED, "The run was aborted"
    else:
        return None
    return target, (run["status_message"] if run["status_message_terminal"] else None) or default
