"""Status messages of live runs, coalesced: an actor that sets its message in a tight loop writes the
registry (and wakes every live-stream client) at most ``rate`` times a second per run; the last message
of a burst wins and is written at the end of its window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StatusMessages:
    def __init__(self, rate: float, write: Callable[[str, str, bool], None]) -> None:
        """``write(run_id, message, terminal)`` stores a message (it may skip a run that has finished)."""
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._write = write
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # run -> time.monotonic() of its last write
        self._pending: dict[str, tuple[str, bool]] = {}  # run -> the latest message not yet written

    def set(self, run_id: str, message: str, terminal: bool) -> bool:
        """Write now if the run's window allows, else keep it as the run's pending message; True if written.

        A terminal message is written at once (it is the run's last word) and replaces a pending one.
        """
        with self._lock:
            now = time.monotonic()
            due = self._last.get(run_id, -float("inf")) + self.interval
            if terminal or now >= due:
                self._pending.pop(run_id, None)
                self._last[run_id] = now
            else:
                first = run_id not in self._pending
                self._pending[run_id] = (message, terminal)
                if first:
                    timer = threading.Timer(due - now, self._flush, args=(run_id,))
                    timer.daemon = True
                    timer.start()
                return False
        self._write(run_id, message, terminal)
        return True

    def _flush(self, run_id: str) -> None:
        with self._lock:
            pending = self._pending.pop(run_id, None)
            if pending is None:
                return
            self._last[run_id] = time.monotonic()
        self._write(run_id, *pending)

    def forget(self, run_id: str) -> None:
        """The run finished: drop its window (and a message still pending, which came too late)."""
        with self._lock:
            self._last.pop(run_id, None)
            self._pending.pop(run_id, None)


__all__ = ["StatusMessages"]
