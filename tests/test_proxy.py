"""The runs' forward proxy and the APIFY_PROXY_* contract, with the real SDK in a real container.

A page and a plain TCP echo server are served by the test on the Docker bridge (the runs' network);
the actor reaches them only through the proxy its SDK configures.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from jupyter_actors.platform.proxy import Credentials, ProxyOptions, Upstream

from .conftest import TEST_MEMORY_MB, define_actor

ACTOR = r"""
import asyncio, os, socket
import impit
from apify import Actor

def tunnel(proxy_host, proxy_port, password, target):
    # CONNECT through the proxy, then speak plain text in the tunnel (what TLS would ride on).
    import base64
    sock = socket.create_connection((proxy_host, proxy_port), timeout=20)
    auth = base64.b64encode(f"auto:{password}".encode()).decode()
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    sock.sendall(b"ping through the tunnel\n")
    echoed = b""
    while not echoed.endswith(b"\n"):
        echoed += sock.recv(100)
    sock.close()
    return head.split(b"\r\n")[0].decode(), echoed.decode().strip()

async def main():
    async with Actor:
        page = (await Actor.get_input())["page"]
        echo = (await Actor.get_input())["echo"]
        config = await Actor.create_proxy_configuration(groups=["RESIDENTIAL"], country_code="US")
        url = await config.new_url()
        async with impit.AsyncClient(proxy=url, timeout=30) as client:
            response = await client.get(page)
        for session in ("s1", "s2"):  # a crawler rotates sessions: one more username per session
            async with impit.AsyncClient(proxy=await config.new_url(session_id=session), timeout=30) as client:
                assert (await client.get(page + "-" + session)).status_code == 200
        user = await Actor.apify_client.user().get()
        status_line, echoed = await asyncio.to_thread(
            tunnel, os.environ["APIFY_PROXY_HOSTNAME"], int(os.environ["APIFY_PROXY_PORT"]),
            os.environ["APIFY_PROXY_PASSWORD"], echo)
        await Actor.push_data({
            "proxyUrl": url, "status": response.status_code, "body": response.text,
            "usersMePassword": user.proxy.password if user and user.proxy else None,
            "envPassword": os.environ["APIFY_PROXY_PASSWORD"],
            "connectStatus": status_line, "echoed": echoed,
        })

asyncio.run(main())
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = f"hello from the bridge {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


@contextmanager
def serving(server) -> Iterator:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def page_server(host: str) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((host, 0), _Page)
    server.paths = []  # type: ignore[attr-defined]
    with serving(server):
        yield server


@contextmanager
def echo_server(host: str) -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer((host, 0), _Echo)
    server.daemon_threads = True
    with serving(server):
        yield server


class _CountingUpstream(socketserver.StreamRequestHandler):
    """A stand-in company proxy: records each request head and answers it itself."""

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            chunk = self.rfile.readline()
            if not chunk:
                return
            head += chunk
        self.server.heads.append(head.decode("latin-1"))  # type: ignore[attr-defined]
        if head.startswith(b"CONNECT"):
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.write(self.rfile.readline())
            return
        body = b"answered by the upstream proxy"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def proxy_url(platform, password: str, username: str = "auto") -> str:
    endpoint = platform.proxy_endpoint
    return f"http://{username}:{password}@{endpoint.hostname}:{endpoint.port}"


def test_sdk_actor_fetches_through_the_proxy_and_its_access_check_passes(platform):
    gateway = platform.proxy_endpoint.hostname
    define_actor(platform, "proxied", ACTOR)
    with page_server(gateway) as page, echo_server(gateway) as echo:
        page_url = f"http://{gateway}:{page.server_address[1]}/hello"
        run = platform.start_run("proxied", memory_mb=TEST_MEMORY_MB, timeout_secs=120,
                                 input={"page": page_url, "echo": f"{gateway}:{echo.server_address[1]}"})
        run = platform.wait_run(run["id"], timeout=150)
        log = platform.run_log(run["id"]).decode()
        assert run["status"] == "SUCCEEDED", log
        (item,) = json.loads(b"".join(platform.storages.list_items(run["default_dataset_id"]).iter_json_array()))
        # The SDK's access check was answered by the proxy itself: only the actor's own fetches came here.
        assert page.paths == ["/hello", "/hello-s1", "/hello-s2"]
    assert item["status"] == 200 and item["body"] == "hello from the bridge /hello"
    assert item["proxyUrl"].startswith("http://groups-RESIDENTIAL,country-US:")
    assert item["usersMePassword"] == item["envPassword"]
    assert item["connectStatus"].startswith("HTTP/1.1 200") and item["echoed"] == "ping through the tunnel"
    assert log.count("groups RESIDENTIAL, country US are accepted but ignored") == 1, log
    assert "access check timed out" not in log


def test_wrong_or_missing_credentials_get_407_and_loopback_is_refused(platform):
    gateway = platform.proxy_endpoint.hostname
    good = Credentials(platform).user_password()
    with page_server(gateway) as page:
        target = f"http://{gateway}:{page.server_address[1]}/x"
        for url in (proxy_url(platform, "wrong"), proxy_url(platform, good, "nonsense-option")):
            with httpx.Client(proxy=url, timeout=10) as client:
                response = client.get(target)
            assert response.status_code == 407, response.text
            assert response.headers["Proxy-Authenticate"].startswith("Basic")
        with httpx.Client(timeout=10) as client:  # no credentials at all
            endpoint = platform.proxy_endpoint
            raw = client.get(f"http://{endpoint.hostname}:{endpoint.port}/", headers={"Host": "x"})
        assert raw.status_code in (400, 407)
        # The access check's answer, with a wrong password, says why (the SDK raises it).
        with httpx.Client(proxy=proxy_url(platform, "wrong"), timeout=10) as client:
            status = client.get(f"{platform.proxy_endpoint.status_url}/?format=json")
        assert status.status_code == 407 and status.json()["connected"] is False
        assert page.paths == []
        with httpx.Client(proxy=proxy_url(platform, good), timeout=10) as client:
            assert client.get(target).text == "hello from the bridge /x"
            assert client.get(f"{platform.proxy_endpoint.status_url}/?format=json").json()["connected"] is True
            assert client.get(f"http://127.0.0.1:{page.server_address[1]}/").status_code == 403


def test_runs_proxy_goes_through_the_configured_upstream_proxy(platform_factory):
    upstream = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _CountingUpstream)
    upstream.daemon_threads = True
    upstream.heads = []  # type: ignore[attr-defined]
    with serving(upstream):
        platform = platform_factory(upstream_proxy=f"http://corp:s3cret@127.0.0.1:{upstream.server_address[1]}")
        password = Credentials(platform).user_password()
        with httpx.Client(proxy=proxy_url(platform, password), timeout=10) as client:
            response = client.get("http://example.invalid/page?q=1")
            status = client.get(f"{platform.proxy_endpoint.status_url}/?format=json").json()
        assert response.text == "answered by the upstream proxy"
        assert status["connected"] is True
        endpoint = platform.proxy_endpoint
        with socket.create_connection((endpoint.hostname, endpoint.port), timeout=10) as sock:
            auth = base64.b64encode(f"auto:{password}".encode()).decode()
            sock.sendall(f"CONNECT example.invalid:443 HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
            reply = sock.makefile("rb")
            assert reply.readline().startswith(b"HTTP/1.1 200")
            while reply.readline() not in (b"\r\n", b""):
                pass
            sock.sendall(b"tunnelled\n")
            assert reply.readline() == b"tunnelled\n"
    heads = upstream.heads  # type: ignore[attr-defined]
    assert len(heads) == 2, heads  # the status check never left this machine
    corp = "Proxy-Authorization: Basic " + base64.b64encode(b"corp:s3cret").decode()
    assert heads[0].startswith("GET http://example.invalid/page?q=1 HTTP/1.1") and corp in heads[0]
    assert heads[1].startswith("CONNECT example.invalid:443 HTTP/1.1") and corp in heads[1]
    assert password not in "".join(heads)  # the run's own credentials stay here


def test_proxy_options_and_upstream_urls_are_checked():
    assert ProxyOptions.parse("auto") == ProxyOptions()
    assert ProxyOptions.parse("groups-A+B,session-s1,country-GB") == ProxyOptions(("A", "B"), "s1", "GB")
    with pytest.raises(ValueError, match="'auto' or comma-separated"):
        ProxyOptions.parse("groups-A,zone-x")
    assert Upstream.parse("http://u:p%40x@corp:8080").authorization == "Basic " + base64.b64encode(b"u:p@x").decode()
    with pytest.raises(ValueError, match="HTTP proxy URL"):
        Upstream.parse("socks5://corp:1080")
