"""Bridges run (and build) changes from platform threads to asyncio, for long polls and live streams."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from ..platform.core import Platform


class RunChanges:
    """``await wait(run_id, timeout)`` returns when that run changes (or any run, with run_id=None)."""

    def __init__(self, platform: Platform, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: dict[str | None, set[asyncio.Future]] = defaultdict(set)
        self._listeners: set = set()
        self._build_listeners: set = set()
        self._unsubscribe = platform.subscribe(self._on_change)
        self._unsubscribe_builds = platform.subscribe_builds(self._on_build)

    def _on_change(self, run: dict) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, run)

    def _wake(self, run: dict) -> None:
        for key in (run["id"], None):
            for future in self._waiters.pop(key, set()):
                if not future.done():
                    future.set_result(run)
        for listener in list(self._listeners):
            listener(run)

    def _on_build(self, build: dict) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._tell_build, build)

    def _tell_build(self, build: dict) -> None:
        for listener in list(self._build_listeners):
            listener(build)

    def add_build_listener(self, listener) -> None:
        """Call ``listener(build)`` on the loop when a build starts or ends (for push streams)."""
        self._build_listeners.add(listener)

    def remove_build_listener(self, listener) -> None:
        self._build_listeners.discard(listener)

    def add_listener(self, listener) -> None:
        """Call ``listener(run)`` on the loop for every change (for push streams)."""
        self._listeners.add(listener)

    def remove_listener(self, listener) -> None:
        self._listeners.discard(listener)

    async def wait(self, run_id: str | None, timeout: float) -> dict | None:
        future = self._loop.create_future()
        self._waiters[run_id].add(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._waiters[run_id].discard(future)
            if not self._waiters[run_id]:
                self._waiters.pop(run_id, None)

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe_builds()
