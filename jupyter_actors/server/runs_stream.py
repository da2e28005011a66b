"""``GET <base_url>actors/api/stream/runs``: the runs, then every change to them, as server-sent events.

The stream (``text/event-stream``, behind Jupyter's auth like the rest of the user-facing API):

- ``event: snapshot`` with ``{"runs": [Run, ...], "builds": [Build, ...]}``: the newest ``limit`` runs
  (default 500), newest first, and the builds under way, sent once when the stream opens;
- ``event: run`` with one ``Run`` for every change of any run afterwards (a new run, a status change,
  a status message...), in the order the platform reported them;
- ``event: build`` with one ``Build`` (plus ``actorName``) when a build starts and when it ends (its
  log is followed at ``/v2/actor-builds/{id}/log?stream=1``);
- a ``: keepalive`` comment when nothing happened for ``keepalive_secs``, so proxies keep the
  connection open and a vanished client is noticed.

Each Run is the API v2 object (``GET /v2/actor-runs/{id}``) plus ``actorName``, so a client needs no
second request to label it. Changes that happen while the snapshot is read are queued and sent right
after it, so a client that applies events in order to the snapshot never misses one.

A client that falls ``MAX_PENDING`` changes behind (it stopped reading) has its stream ended instead
of a queue growing without bound: an EventSource reconnects after ``retry`` and gets a new snapshot.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.iostream import StreamClosedError

from ..api.base import ApiHandlerMixin
from ..platform.models import Build, Run
from .auth import JupyterAuthBase

STREAM_PATH = "stream/runs"
DEFAULT_LIMIT = 500
#: Changes queued for one client at most; past it the stream ends (the client resyncs by reconnecting).
MAX_PENDING = 1000
_CLOSED = object()


def sse_event(event: str, data: Any) -> str:
    """One server-sent event; ``data`` as single-line JSON (JSON never holds a raw newline)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class RunsStreamHandler(ApiHandlerMixin, JupyterAuthBase):  # as the user-facing API's handlers (user_handlers.py)
    """Streams run changes until the client goes away."""

    keepalive_secs = 15.0

    max_pending = MAX_PENDING

    def initialize(self) -> None:
        self._queue: asyncio.Queue = asyncio.Queue(self.max_pending + 1)  # + 1: room for _CLOSED
        self._actor_names: dict[str, str] = {}

    def on_connection_close(self) -> None:
        self._end()

    def _enqueue(self, row: dict) -> None:
        self._put(("run", row))

    def _enqueue_build(self, row: dict) -> None:
        self._put(("build", row))

    def _put(self, item: tuple[str, dict]) -> None:
        if self._queue.qsize() >= self.max_pending:
            self._end()
            stream = self.client_stream()
            if stream is not None and not stream.closed():  # a flush stuck on the client fails now
                stream.close()
        else:
            self._queue.put_nowait(item)

    def _end(self) -> None:
        """Drop what is pending (it is stale for a client that must resync) and end the stream."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    async def get(self) -> None:
        self.reject_unknown_query({"limit"})
        limit = self.query_int("limit", DEFAULT_LIMIT, minimum=1)
        listener, build_listener = self._enqueue, self._enqueue_build
        # Listen before reading the snapshot: a change in between is queued, not lost.
        self.run_events.add_listener(listener)
        self.run_events.add_build_listener(build_listener)
        try:
            rows = await self.call(self.platform.list_runs, desc=True, limit=limit)
            builds = await self.call(self.platform.active_builds)
            await self._refresh_actor_names()
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")
            self.write("retry: 2000\n\n")
            self.write(sse_event("snapshot", {"runs": [self._view(row) for row in rows],
                                              "builds": [self._build_view(row) for row in builds]}))
            await self.flush()
            while True:
                try:
                    item = await asyncio.wait_for(self._queue.get(), self.keepalive_secs)
                except asyncio.TimeoutError:
                    self.write(": keepalive\n\n")
                else:
                    if item is _CLOSED:
                        break
                    kind, row = item
                    if row["actor_id"] not in self._actor_names:
                        await self._refresh_actor_names()
                    self.write(sse_event(kind, self._view(row) if kind == "run" else self._build_view(row)))
                await self.flush()
        except StreamClosedError:
            return
        finally:
            self.run_events.remove_listener(listener)
            self.run_events.remove_build_listener(build_listener)

    def _view(self, row: Run) -> dict[str, Any]:
        run = self.views.run(row)
        run["actorName"] = self._actor_names.get(row["actor_id"], row["actor_id"])
        return run

    def _build_view(self, row: Build) -> dict[str, Any]:
        build = self.views.build(row)
        build["actorName"] = self._actor_names.get(row["actor_id"], row["actor_id"])
        return build

    async def _refresh_actor_names(self) -> None:
        actors = await self.call(self.platform.list_actors)
        self._actor_names = {actor["id"]: actor["name"] for actor in actors}


def stream_handlers(api_path: str) -> list[tuple[str, type, dict]]:
    """The handlers to mount, ``api_path`` being the API's prefix (``actors/api``)."""
    return [(api_path.rstrip("/") + "/" + STREAM_PATH + "/?", RunsStreamHandler, {})]
