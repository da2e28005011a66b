"""The live runs stream the JupyterLab panel listens to, on a real Jupyter server with real runs."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from .conftest import TEST_MEMORY_MB, define_actor

HELLO = "print('hello from the stream test', flush=True)\n"


class EventReader:
    """Reads server-sent events (``event:`` + ``data:`` lines, blank line ends one) off a response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> tuple[str, dict]:
        event, data = "message", []
        async for line in self._lines:
            if line == "":
                if data:
                    return event, json.loads("\n".join(data))
                event = "message"
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
        raise EOFError("the stream ended")

    async def until(self, predicate, timeout: float) -> tuple[str, dict]:
        """The first event for which ``predicate(kind, data)`` is true, within ``timeout`` seconds."""
        async def scan() -> tuple[str, dict]:
            while True:
                kind, data = await self.next()
                if predicate(kind, data):
                    return kind, data
        return await asyncio.wait_for(scan(), timeout)


async def wait_for_condition(condition, timeout: float, message: str) -> None:
    """Like conftest.wait_until, but yields to the event loop the server runs on."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await asyncio.sleep(0.02)


def stream(client: httpx.AsyncClient, api_url: str, query: str = ""):
    return client.stream("GET", f"{api_url}/stream/runs{query}")


async def test_stream_sends_the_runs_then_every_change(actors_app, api_url, api_token):
    platform = actors_app.platform
    run_events = actors_app.settings["jupyter_actors_run_events"]
    await asyncio.to_thread(define_actor, platform, "streamed", HELLO)
    earlier = await asyncio.to_thread(platform.start_run, "streamed", memory_mb=TEST_MEMORY_MB)
    earlier = await asyncio.to_thread(platform.wait_run, earlier["id"], 120)
    assert earlier["status"] == "SUCCEEDED"
    listeners_before = len(run_events._listeners)

    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10, read=180)) as client:
        async with stream(client, api_url) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = EventReader(response)
            kind, snapshot = await asyncio.wait_for(events.next(), 30)
            assert kind == "snapshot"
            [listed] = snapshot["runs"]
            assert listed["id"] == earlier["id"] and listed["status"] == "SUCCEEDED"
            assert listed["actorName"] == "streamed" and listed["options"]["memoryMbytes"] == TEST_MEMORY_MB

            # A run started through the platform arrives as events, up to its end, without polling.
            run = await asyncio.to_thread(platform.start_run, "streamed", memory_mb=TEST_MEMORY_MB)
            seen: list[str] = []

            def is_final(kind: str, data: dict) -> bool:
                if kind == "run" and data["id"] == run["id"]:
                    seen.append(data["status"])
                    return data["isTerminal"]
                return False

            _, final = await events.until(is_final, 120)
            assert final["status"] == "SUCCEEDED" and final["exitCode"] == 0, final
            assert final["actorName"] == "streamed" and final["finishedAt"]
            assert seen[0] in ("READY", "RUNNING") and "SUCCEEDED" not in seen[:-1], seen

        # A new stream lists both, newest first.
        async with stream(client, api_url) as response:
            _, snapshot = await asyncio.wait_for(EventReader(response).next(), 30)
            assert [r["id"] for r in snapshot["runs"]] == [run["id"], earlier["id"]]
        async with stream(client, api_url, "?limit=1") as response:
            _, snapshot = await asyncio.wait_for(EventReader(response).next(), 30)
            assert [r["id"] for r in snapshot["runs"]] == [run["id"]]

    # Closed streams stop listening (no leak per browser tab).
    await wait_for_condition(lambda: len(run_events._listeners) == listeners_before, 10, "stream listeners removed")


async def test_stream_needs_auth_and_valid_options(api_url, api_token):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api_url}/stream/runs")
        assert response.status_code in (401, 403)
        assert set(response.json()["error"]) == {"type", "message"}
        headers = {"Authorization": f"Bearer {api_token}"}
        bad = await client.get(f"{api_url}/stream/runs?limit=zero", headers=headers)
        assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]
        unknown = await client.get(f"{api_url}/stream/runs?status=RUNNING", headers=headers)
        assert unknown.status_code == 400


async def test_stream_keeps_idle_connections_alive(actors_app, api_url, api_token, monkeypatch):
    from jupyter_actors.server.runs_stream import RunsStreamHandler

    monkeypatch.setattr(RunsStreamHandler, "keepalive_secs", 0.2)
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10, read=30)) as client, \
            stream(client, api_url) as response:
        events = EventReader(response)
        kind, snapshot = await asyncio.wait_for(events.next(), 30)
        assert kind == "snapshot" and snapshot == {"runs": [], "builds": []}

        async def keepalive() -> None:
            async for line in events._lines:
                if line == ": keepalive":
                    return
        await asyncio.wait_for(keepalive(), 10)
