"""The actor API's own thread pool: one run cannot hold more than its share of it, and never the loop."""

from __future__ import annotations

import asyncio
import threading

from jupyter_actors.api.calls import ActorCalls


def test_a_run_gets_at_most_its_share_and_another_run_is_served_meanwhile():
    async def scenario() -> None:
        calls = ActorCalls(threads=8, per_run=2)
        release = threading.Event()
        lock = threading.Lock()
        running = {"now": 0, "most": 0}

        def busy() -> str:
            with lock:
                running["now"] += 1
                running["most"] = max(running["most"], running["now"])
            release.wait(10)
            with lock:
                running["now"] -= 1
            return "busy"

        hogs = [asyncio.ensure_future(calls.run("hog", busy)) for _ in range(6)]
        # While the hog's calls wait, another run's call is answered (and the loop keeps running).
        other = await asyncio.wait_for(calls.run("other", threading.get_ident), timeout=5)
        assert other != threading.get_ident()  # in a pool thread, not on the loop
        assert running["most"] == 2
        release.set()
        assert await asyncio.wait_for(asyncio.gather(*hogs), timeout=10) == ["busy"] * 6
        assert running["most"] == 2 and calls._limits == {}  # nothing kept for runs with no call left
        calls.close()

    asyncio.run(scenario())


def test_keyword_arguments_named_like_the_call_s_own_are_passed_on():
    async def scenario() -> None:
        calls = ActorCalls(threads=1, per_run=1)
        result = await calls.run("r", lambda run_id, function: (run_id, function), run_id="x", function="y")
        assert result == ("x", "y")
        calls.close()

    asyncio.run(scenario())
