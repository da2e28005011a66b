"""The notebook client over a flaky connection: idempotent calls are retried, POSTs are not replayed.

A real TCP relay sits between the client and a real Jupyter server; it cuts the first connections
after reading the request, as a restarting server or a proxy hiccup would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

import jupyter_actors
from jupyter_actors.notebook import Client, NotFoundError, ServerNotFound
from jupyter_actors.notebook.live import LiveView
from jupyter_actors.notebook.runs import Run

from .conftest import TEST_MEMORY_MB, off, wait_until


class FlakyRelay:
    """Forwards 127.0.0.1:<port> to ``target``; the first ``drop`` connections are closed after the request."""

    def __init__(self, target: tuple[str, int], drop: int = 0) -> None:
        self.target = target
        self.drop = drop
        self.connections = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut = self.drop > 0
                self.drop -= cut
            threading.Thread(target=self._serve, args=(conn, cut), daemon=True).start()

    def _serve(self, conn: socket.socket, cut: bool) -> None:
        with conn:
            if cut:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                with self._lock:
                    self.requests.append(head.split(b"\r\n", 1)[0])
                return  # closed with no answer
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._live += [conn, upstream]
            with upstream:
                pump = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                pump.start()
                _pipe(conn, upstream)
                pump.join(30)

    def cut_all(self) -> None:
        """Breaks every connection open now, as a network blip or a restarting proxy does."""
        with self._lock:
            live, self._live = self._live, []
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accepting thread: close() alone leaves it blocked
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(api_url):
    parts = urlsplit(api_url)
    made = FlakyRelay((parts.hostname, parts.port))
    yield made
    made.close()


def _through(api_url: str, relay: FlakyRelay) -> str:
    parts = urlsplit(api_url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{relay.port}"))


async def test_idempotent_calls_are_retried_after_dropped_connections(api_url, api_token, relay):
    client = Client(_through(api_url, relay), api_token)
    try:
        relay.drop = 2
        listing = await off(client.get, "/datasets")
        assert listing["items"] == [] and relay.connections == 3
        assert len(relay.requests) == 2 and all(r.startswith(b"GET ") for r in relay.requests)
    finally:
        client.close()
    client = Client(_through(api_url, relay), api_token)  # a new pool: its first connection is cut
    try:
        relay.drop = 1  # DELETE is idempotent too: the retry reaches the server and its 404 comes back
        with pytest.raises(NotFoundError):
            await off(client.request, "DELETE", "/datasets/no-such-dataset")
        assert relay.connections == 5 and relay.requests[-1].startswith(b"DELETE ")
    finally:
        client.close()


async def test_a_post_that_may_have_reached_the_server_is_not_replayed(api_url, api_token, relay, client):
    flaky = Client(_through(api_url, relay), api_token)
    try:
        relay.drop = 1
        with pytest.raises(ServerNotFound, match="Cannot reach"):
            await off(flaky.post, "/datasets", name="made-once")
        assert relay.connections == 1 and relay.requests[0].startswith(b"POST ")
        with pytest.raises(NotFoundError):  # the relay never forwarded it, and nothing tried again
            await off(client.get, "/datasets/made-once")
        made = await off(flaky.post, "/datasets", name="made-once")  # the relay forwards from now on
        assert made["name"] == "made-once" and relay.connections == 2
    finally:
        flaky.close()


def test_retries_are_bounded_by_attempts_and_deadline():
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}/actors/api", "t", retry_attempts=3, retry_deadline=60)
    started = time.monotonic()
    with pytest.raises(ServerNotFound, match=r"after 3 attempts"):
        client.get("/datasets")
    assert time.monotonic() - started < 5
    # A refused POST never reached a server, so it is retried like a GET.
    with pytest.raises(ServerNotFound, match=r"after 3 attempts"):
        client.post("/datasets", name="x")
    client.close()

    patient = Client(f"http://127.0.0.1:{port}/actors/api", "t", retry_attempts=1000, retry_deadline=1.5)
    started = time.monotonic()
    with pytest.raises(ServerNotFound, match=r"after \d+ attempts"):
        patient.get("/datasets")
    assert time.monotonic() - started < 2.5
    patient.close()


COUNTER = """import time
for i in range(40):
    print(f"line {i}", flush=True)
    time.sleep(0.2)
"""


async def test_the_live_view_reconnects_its_log_and_shows_each_line_once(api_url, api_token, relay, client):
    await off(jupyter_actors.define, "counter", COUNTER, client=client)
    await off(jupyter_actors.build, "counter", client=client)
    started = await off(jupyter_actors.start, "counter", memory=TEST_MEMORY_MB, timeout=300, client=client)
    flaky = Client(_through(api_url, relay), api_token)
    bundles: list[dict] = []
    try:
        run = await off(Run, started.id, client=flaky)  # off the loop: the test's server runs on it
        view = LiveView(run, sink=bundles.append)
        await off(view.start)
        await off(wait_until, lambda: view.line_count >= 5, 120)
        relay.cut_all()  # the log stream and the status long-poll both break off mid-run
        assert await off(view.wait, 180)
    finally:
        flaky.close()
    state = bundles[-1]["application/vnd.jupyter-actors.run+json"]
    assert state["status"] == "SUCCEEDED", state
    lines = [line for line in view.lines if line.startswith("line ") or " line " in line]
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert numbers == list(range(40)), numbers  # each line once, in order: none lost, none repeated
    assert relay.connections > 2  # the view connected again after the cut
    assert not state["note"], state["note"]  # the reconnecting note went once the stream came back
    assert all(a != b for a, b in zip(bundles, bundles[1:], strict=False)), "an unchanged view was sent again"
