"""Actor events over a websocket, in the format the real apify SDK listens for.

The SDK connects once at ``Actor.init`` to ``ACTOR_EVENTS_WEBSOCKET_URL`` with no auth header, so the
run's token travels in the URL; the socket accepts only the token of the run it is for. The server
sends ``persistState`` periodically and ``systemInfo`` with the container's memory use; the platform
sends ``aborting`` and ``migrating`` before it stops a container gracefully.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

from tornado import websocket
from tornado.ioloop import PeriodicCallback

from ..platform.clock import now_iso
from ..platform.core import Platform
from ..platform.lifecycle import RunStatus
from ..platform.runs.usage import RunUsage


class ActorEvents:
    """The sockets of every run, and the periodic events sent to them (lives on the server's loop)."""

    def __init__(self, platform: Platform, loop: asyncio.AbstractEventLoop) -> None:
        self.platform = platform
        self.loop = loop
        self.sockets: dict[str, set[EventsSocketHandler]] = defaultdict(set)
        self._usage: dict[str, RunUsage] = {}
        config = platform.config
        self._periodic = [
            PeriodicCallback(self._persist_state, config.persist_state_interval_secs * 1000),
            PeriodicCallback(self._system_info, config.system_info_interval_secs * 1000),
        ]
        for callback in self._periodic:
            callback.start()
        platform.event_sink = self.send

    def send(self, run_id: str, name: str, data: dict | None = None) -> bool:
        """Thread-safe; True when at least one socket of the run will get the event."""
        if not self.sockets.get(run_id):
            return False
        message = json.dumps({"name": name, "data": data if data is not None else {}})
        self.loop.call_soon_threadsafe(self._write, run_id, message)
        return True

    def _write(self, run_id: str, message: str) -> None:
        for socket in list(self.sockets.get(run_id, ())):
            try:
                socket.write_message(message)
            except websocket.WebSocketClosedError:
                self.sockets[run_id].discard(socket)

    def _persist_state(self) -> None:
        for run_id in list(self.sockets):
            self._write(run_id, json.dumps({"name": "persistState", "data": {"isMigrating": False}}))

    async def _system_info(self) -> None:
        """Every connected run's systemInfo; the registry and the engine are read in a thread."""
        run_ids = list(self.sockets)
        infos = await asyncio.to_thread(lambda: [(run_id, self.system_info(run_id)) for run_id in run_ids])
        for run_id, info in infos:
            if info is not None:
                self._write(run_id, json.dumps({"name": "systemInfo", "data": info}))

    def system_info(self, run_id: str) -> dict | None:
        """Every field the SDK requires (it ignores a systemInfo event that lacks one).

        CPU usage is in percent of one core (the SDK divides by APIFY_DEDICATED_CPUS), from the
        container's cgroup CPU time between two samples.
        """
        run = self.platform.stores.runs.find(run_id)
        if run is None or not run["container_id"]:
            return None
        backend = self.platform.backend
        container_id = run["container_id"]
        usage = self._usage.setdefault(run_id, RunUsage())  # since this socket connected, at this cadence
        percent = usage.add(container_id, backend.memory_usage(container_id) or 0, None,
                            backend.cpu_usage_ns(container_id), None, time.monotonic_ns())
        stats = usage.stats(running=True)
        return {
            **{key: stats[key] for key in ("memAvgBytes", "memCurrentBytes", "memMaxBytes", "cpuAvgUsage",
                                           "cpuMaxUsage", "cpuCurrentUsage")},
            "isCpuOverloaded": percent / 100 >= 0.95 * (run["cpu_cores"] or 1),
            "createdAt": now_iso(),
        }

    def forget(self, run_id: str) -> None:
        """The run's last socket closed: drop its usage samples."""
        self._usage.pop(run_id, None)

    def close(self) -> None:
        for callback in self._periodic:
            callback.stop()
        if self.platform.event_sink == self.send:
            self.platform.event_sink = None
        for sockets in self.sockets.values():
            for socket in list(sockets):
                socket.close()


class EventsSocketHandler(websocket.WebSocketHandler):
    """``/v2/actor-runs/{runId}/events?token=<the run's token>``."""

    def check_origin(self, origin: str) -> bool:
        return True  # token in the URL; no browser cookies are involved

    async def get(self, run_id: str) -> None:
        platform: Platform = self.settings["jupyter_actors_platform"]
        token = self.get_query_argument("token", "") or ""
        run = await asyncio.to_thread(platform.run_for_token, token)  # SQLite: not on the event loop
        if run is None or run["id"] != run_id or RunStatus(run["status"]).is_terminal:
            self.set_status(401)
            self.finish(json.dumps({"error": {"type": "token-not-valid",
                                              "message": "This events socket accepts only its own run's token."}}))
            return
        self.run_id = run_id
        await super().get(run_id)

    def open(self, run_id: str) -> None:
        self.settings["jupyter_actors_events"].sockets[run_id].add(self)

    def on_message(self, message) -> None:  # the SDK never sends; ignore anything that comes
        return

    def on_close(self) -> None:
        events = self.settings["jupyter_actors_events"]
        sockets = events.sockets.get(getattr(self, "run_id", ""))
        if sockets is not None:
            sockets.discard(self)
            if not sockets:
                events.sockets.pop(self.run_id, None)
                events.forget(self.run_id)
