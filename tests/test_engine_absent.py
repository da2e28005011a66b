"""A Jupyter server that starts while the container engine does not answer loads degraded and connects later.

The shared dockerd keeps running: the server's engine is a unix socket of the test's own, where nothing
listens at first (dockerd down) and, later, a forwarder relays each connection to the real engine's socket
(dockerd back). The user API must answer from the registry meanwhile, refuse starts and builds with a 503
in Apify's shape, and, once the engine answers, start a run that succeeds without a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

ENGINE_SOCKET = "/var/run/docker.sock"

#: Pushes an item when an actor API serves it (the run seeded before the server has none: it only prints).
WRITER = """
import json, os, urllib.request
if "APIFY_API_BASE_URL" not in os.environ:
    raise SystemExit(print("no actor API", flush=True))
base, token = os.environ["APIFY_API_BASE_URL"] + "/v2", os.environ["APIFY_TOKEN"]
request = urllib.request.Request(base + f"/datasets/{os.environ['APIFY_DEFAULT_DATASET_ID']}/items",
                                 data=json.dumps([{"after": "reconnect"}]).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
urllib.request.urlopen(request).read()
print("pushed", flush=True)
"""


#: Still running when the seeding platform closes; exits on its own while the server waits for the engine.
SLEEPER = """
import time
print("sleeping", flush=True)
time.sleep(3)
print("woke", flush=True)
"""


class SocketForwarder:
    """A unix socket that relays every connection to ``target``; nothing listens at ``path`` until ``start``."""

    def __init__(self, path: Path, target: str = ENGINE_SOCKET) -> None:
        self.path, self.target = path, target
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # the other side went away
            pass

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread: close() alone leaves it blocked
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # wakes a pump blocked in recv(), as for the listener
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def engine_socket() -> Iterator[SocketForwarder]:
    directory = Path(tempfile.mkdtemp(prefix="ja-engine-", dir="/tmp"))  # a unix socket path has ~100 bytes
    forwarder = SocketForwarder(directory / "docker.sock")
    yield forwarder
    forwarder.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def jp_server_config(tmp_path, base_image, platform_factory, engine_socket):
    """The server's data directory holds a built actor, a finished run and a named dataset, made while the
    engine answered; the server itself is pointed at the socket where nothing listens yet."""
    data_dir = tmp_path / "server-data"
    platform = platform_factory(data_dir=data_dir, serve_api=False)  # the server's actor API port stays free
    define_actor(platform, "writer", WRITER)
    run = platform.wait_run(platform.start_run("writer", memory_mb=TEST_MEMORY_MB)["id"], 120)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"]).decode()
    platform.storages.create_dataset("kept")
    platform.storages.push_items("kept", [{"n": 1}, {"n": 2}])
    define_actor(platform, "sleeper", SLEEPER)
    unfinished = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: platform.get_run(unfinished["id"])["status"] == "RUNNING", 60)
    platform.close()  # its container runs on: the server must reconcile the run once it reaches the engine
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}},
        "ActorsExtension": {"data_dir": str(data_dir), "stop_grace_secs": 2.0, "reconcile_interval_secs": 1.0,
                            "docker_base_url": f"unix://{engine_socket.path}"},
    }


async def wait_for(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` without blocking the event loop the server runs on."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_server_without_engine_serves_stored_data_refuses_starts_and_connects_later(
        actors_app, api_url, api_token, engine_socket):
    platform = actors_app.platform
    assert not platform.engine_connected
    assert actors_app.actor_server is None  # its address is on the engine's network: not known yet
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_token}"}, timeout=60) as client:
        api = f"{api_url}/v2"
        runs = await client.get(f"{api}/actor-runs")
        assert runs.status_code == 200, runs.text
        statuses = {run["actId"]: run for run in runs.json()["data"]["items"]}
        earlier = statuses[platform.get_actor("writer")["id"]]
        unfinished = statuses[platform.get_actor("sleeper")["id"]]
        assert (earlier["status"], unfinished["status"]) == ("SUCCEEDED", "RUNNING")  # as stored
        assert (await client.get(f"{api}/actor-runs/{earlier['id']}")).json()["data"]["status"] == "SUCCEEDED"
        assert {act["name"] for act in (await client.get(f"{api}/acts")).json()["data"]["items"]} == {
            "writer", "sleeper"}
        datasets = await client.get(f"{api}/datasets")
        assert datasets.status_code == 200 and [d["name"] for d in datasets.json()["data"]["items"]] == ["kept"]
        items = await client.get(f"{api}/datasets/kept/items")
        assert items.status_code == 200 and items.json() == [{"n": 1}, {"n": 2}]

        for refused in (await client.post(f"{api}/acts/writer/runs", params={"memory": TEST_MEMORY_MB}),
                        await client.post(f"{api}/acts/writer/builds"),
                        await client.post(f"{api}/actor-runs/{earlier['id']}/resurrect")):
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["type"] == "engine-unavailable" and "Docker engine has not answered" in error["message"]
        assert len((await client.get(f"{api}/actor-runs")).json()["data"]["items"]) == 2  # nothing was stored

        engine_socket.start()  # the engine comes back
        await wait_for(lambda: platform.engine_connected, 60, "the server to connect to the engine")
        assert actors_app.actor_server is not None
        reconciled = (await client.get(f"{api}/actor-runs/{unfinished['id']}", params={"waitForFinish": 60}))
        assert reconciled.json()["data"]["status"] == "SUCCEEDED", platform.run_log(unfinished["id"]).decode()
        assert b"woke" in platform.run_log(unfinished["id"])
        started = await client.post(f"{api}/acts/writer/runs", params={"memory": TEST_MEMORY_MB})
        assert started.status_code == 201, started.text
        run_id = started.json()["data"]["id"]
        finished = (await client.get(f"{api}/actor-runs/{run_id}", params={"waitForFinish": 60})).json()["data"]
        assert finished["status"] == "SUCCEEDED", platform.run_log(run_id).decode()
        pushed = await client.get(f"{api}/datasets/{finished['defaultDatasetId']}/items")
        assert pushed.json() == [{"after": "reconnect"}]  # the actor reached the actor API served since


def test_server_whose_engine_never_answers_takes_writes_refuses_builds_and_stops_cleanly(tmp_path, engine_socket):
    """A real server process: it keeps trying the engine with a growing pause, stores what needs no engine
    (a new actor), refuses a build with a 503, and a SIGTERM still stops it at once, cleanly."""
    from jupyter_actors.server.process import ServerProcess

    server = ServerProcess(tmp_path, docker_base_url=f"unix://{engine_socket.path}", reconcile_interval_secs=2.0)
    server.start()
    try:
        with server.client() as client:
            created = client.post("/acts", json={"name": "later", "versions": [{
                "versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
                "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": "print(1)\n"}]}]})
            assert created.status_code == 201, created.text
            assert [act["name"] for act in client.get("/acts").json()["data"]["items"]] == ["later"]
            refused = client.post("/acts/later/builds")
            assert refused.status_code == 503 and refused.json()["error"]["type"] == "engine-unavailable"
            assert client.get("/actor-builds").json()["data"]["items"] == []  # nothing recorded
        deadline = time.monotonic() + 30
        while server.log_text().count("the engine does not answer yet") < 3:  # 0.5 s, 1 s, 2 s apart
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        assert "trying again in 2.0 s" in server.log_text()  # capped at reconcile_interval_secs
    finally:
        server.stop(timeout=30)
    assert server.process is not None and server.process.returncode == 0, server.log_tail()
    assert "Traceback" not in server.log_text(), server.log_tail()
