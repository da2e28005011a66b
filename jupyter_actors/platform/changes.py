"""Who hears about run (and build) changes, and how a caller waits for a run or a build to reach a state.

Every store write that changes a run is followed by ``notify``; waiters are woken on any change and
re-read, so they never miss one (and time out by themselves when nothing changes).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .clock import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
RunListener = Callable[[Any], None]
#: Hears Apify's platform events (``ACTOR.RUN.SUCCEEDED``...) with the run or build they are about.
EventListener = Callable[[str, Any], None]

RUN_CREATED = "ACTOR.RUN.CREATED"
RUN_RESURRECTED = "ACTOR.RUN.RESURRECTED"
BUILD_CREATED = "ACTOR.BUILD.CREATED"
#: The event a run's move into a terminal status is (from RUNNING, TIMING-OUT, ABORTING or READY).
RUN_FINISHED_EVENTS = {"SUCCEEDED": "ACTOR.RUN.SUCCEEDED", "FAILED": "ACTOR.RUN.FAILED",
                       "ABORTED": "ACTOR.RUN.ABORTED", "TIMED-OUT": "ACTOR.RUN.TIMED_OUT"}
BUILD_FINISHED_EVENTS = {"SUCCEEDED": "ACTOR.BUILD.SUCCEEDED", "FAILED": "ACTOR.BUILD.FAILED",
                         "ABORTED": "ACTOR.BUILD.ABORTED", "TIMED-OUT": "ACTOR.BUILD.TIMED_OUT"}


def run_event_type(previous: str, target: str) -> str | None:
    """The platform event a run's status change is, if any: finishing, or a finished run resurrected."""
    if previous in RUN_FINISHED_EVENTS:
        return RUN_RESURRECTED if target == "RUNNING" else None
    return RUN_FINISHED_EVENTS.get(target)


class _Listeners:
    """Callbacks that hear one kind of change; one that raises is logged and the others still hear it."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._listeners: list[Callable[..., None]] = []

    def add(self, listener: Callable[..., None]) -> Callable[[], None]:
        """Add ``listener``; returns the function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def tell(self, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(*args)
            except Exception:  # a listener's bug must not break a run or a build
                log.exception("%s listener failed", self._what)


class Changes:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs = _Listeners("run")
        self._events = _Listeners("event")
        self._builds = _Listeners("build")

    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(run)`` on every run change (from platform threads); returns unsubscribe."""
        return self._runs.add(listener)

    def notify(self, run: Any) -> None:
        """Tell listeners about ``run`` and wake every waiter."""
        self._runs.tell(run)
        self.poke()

    def subscribe_events(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(event_type, record)`` on every platform event; returns unsubscribe."""
        return self._events.add(listener)

    def event(self, event_type: str, record: Any) -> None:
        """Tell event listeners that ``event_type`` happened to ``record`` (a run or a build), once it is stored."""
        self._events.tell(event_type, record)

    def subscribe_builds(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(build)`` when a build starts and when it ends; returns unsubscribe."""
        return self._builds.add(listener)

    def notify_build(self, build: Any) -> None:
        """Tell build listeners about ``build`` and wake every waiter."""
        self._builds.tell(build)
        self.poke()

    def poke(self) -> None:
        """Wake every waiter (something other than a run changed, e.g. a build ended)."""
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, get: Callable[[], T], done: Callable[[T], bool], timeout: float | None) -> T:
        """Re-read with ``get`` on every change until ``done``, or ``timeout`` seconds passed."""
        deadline = None if timeout is None else utcnow() + dt.timedelta(seconds=timeout)
        with self._changed:
            while True:
                row = get()
                if done(row):
                    return row
                remaining = None if deadline is None else (deadline - utcnow()).total_seconds()
                if remaining is not None and remaining <= 0:
                    return row
                self._changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)
