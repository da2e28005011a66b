"""The run lifecycle of Apify's seed as one state machine: these transitions and no others."""

from __future__ import annotations

from enum import Enum

from .errors import Conflict


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
