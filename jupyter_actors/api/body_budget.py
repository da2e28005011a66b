"""How many bytes of request bodies the server holds at once, across Jupyter's loop and the actor API's.

Eight clients each uploading 100 MiB would otherwise make the server hold 800 MiB, and more while it
decodes and parses them. A body waits here, before tornado reads it, until it fits; one larger than the
whole budget goes alone.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque

from ..platform.core import Platform

MiB = 1024 * 1024


class BodyBudget:
    """A byte budget granted first come, first served; thread-safe, as the two APIs run on two loops."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = max(1, limit_bytes)
        self.used = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        """Wait until ``size`` bytes (at most the whole budget) fit; returns what to ``release``."""
        size = min(max(size, 0), self.limit)
        with self._lock:
            if not self._waiters and self.used + size <= self.limit:
                self.used += size
                return size
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((size, loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                waiting = [waiter for waiter in self._waiters if waiter[2] is future]
                for waiter in waiting:
                    self._waiters.remove(waiter)
            if not waiting:  # granted meanwhile: give it back
                self.release(size)
            raise
        return size

    def release(self, size: int) -> None:
        granted = []
        with self._lock:
            self.used -= size
            while self._waiters and self.used + self._waiters[0][0] <= self.limit:
                waiter = self._waiters.popleft()
                self.used += waiter[0]
                granted.append(waiter)
        for size_granted, loop, future in granted:
            loop.call_soon_threadsafe(self._grant, future, size_granted)

    def _grant(self, future: asyncio.Future[None], size: int) -> None:
        if future.cancelled():  # its request went away before its turn came
            self.release(size)
        else:
            future.set_result(None)


_BUDGETS: weakref.WeakKeyDictionary[Platform, BodyBudget] = weakref.WeakKeyDictionary()
_BUDGETS_LOCK = threading.Lock()


def body_budget(platform: Platform) -> BodyBudget:
    """The one budget of this platform's server process, shared by the user API and the actor API."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(platform)
        if budget is None:
            budget = _BUDGETS[platform] = BodyBudget(platform.config.request_body_budget_mb * MiB)
        return budget
