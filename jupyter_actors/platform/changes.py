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


class Changes:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._listeners: list[RunListener] = []
        self._build_listeners: list[RunListener] = []

    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(run)`` on every run change (from platform threads); returns unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def notify(self, run: Any) -> None:
        """Tell listeners about ``run`` and wake every waiter."""
        for listener in list(self._listeners):
            try:
                listener(run)
            except Exception:  # a listener's bug must not break a run
                log.exception("run listener failed")
        self.poke()

    def subscribe_builds(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(build)`` when a build starts and when it ends; returns unsubscribe."""
        self._build_listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._build_listeners:
                self._build_listeners.remove(listener)

        return unsubscribe

    def notify_build(self, build: Any) -> None:
        """Tell build listeners about ``build`` and wake every waiter."""
        for listener in list(self._build_listeners):
            try:
                listener(build)
            except Exception:  # a listener's bug must not break a build
                log.exception("build listener failed")
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
