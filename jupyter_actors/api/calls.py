"""Where the API's blocking work runs: never on the event loop that also serves Jupyter.

The user's calls go to asyncio's default thread pool. Actors' calls (a run's token) go to a pool of
their own, at most ``PER_RUN_CALLS`` at a time per run, so a busy or hostile actor can neither take
every thread nor make the user's notebook wait behind it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads serving all actors' calls together.
ACTOR_THREADS = 16
#: Calls one run may have running at once; the rest wait their turn (on the loop, holding no thread).
PER_RUN_CALLS = 4


class ActorCalls:
    def __init__(self, threads: int = ACTOR_THREADS, per_run: int = PER_RUN_CALLS) -> None:
        self.per_run = per_run
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="actor-api")
        self._limits: dict[str, tuple[asyncio.Semaphore, int]] = {}  # run id -> (its slots, calls holding them)

    async def run(self, run_id: str, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``function`` in the actors' pool, within the run's share of it."""
        semaphore, users = self._limits.get(run_id) or (asyncio.Semaphore(self.per_run), 0)
        self._limits[run_id] = (semaphore, users + 1)
        try:
            async with semaphore:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        finally:
            semaphore, users = self._limits[run_id]
            if users <= 1:
                del self._limits[run_id]  # no call of that run left: forget it
            else:
                self._limits[run_id] = (semaphore, users - 1)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def call(run_id: str | None, actor_calls: ActorCalls | None, function: Callable[..., T], /,
               *args: Any, **kwargs: Any) -> T:
    """A blocking call off the loop: the actors' pool for a run's call, asyncio's default pool for the user."""
    if run_id is not None and actor_calls is not None:
        return await actor_calls.run(run_id, function, *args, **kwargs)
    return await asyncio.to_thread(function, *args, **kwargs)
