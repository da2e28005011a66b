"""Actors as Apify publishes them, built through the API from their files, unmodified.

Each fixture under tests/fixtures/ is in Apify's layout (``.actor/actor.json``, a Dockerfile that
starts FROM apify/actor-python or apify/actor-node and installs its packages from the registries).
The engine cannot pull Apify's images here, so the builds use the local equivalents and say so.
Each crawler crawls a small site served on the runs' Docker network and leaves its dataset items.
"""

from __future__ import annotations

import base64
import re
import socket
import socketserver
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jupyter_actors.notebook.errors import InvalidInputError

from .conftest import off
from .test_proxy import _CountingUpstream, serving

FIXTURES = Path(__file__).parent / "fixtures"
SITE = {
    "/": '<html><head><title>Home</title></head><body><a href="/a">A</a> <a href="/b">B</a> '
         '<a href="http://elsewhere.invalid/x">out</a></body></html>',
    "/a": '<html><head><title>Page A</title></head><body><a href="/b">B</a> <a href="/">home</a></body></html>',
    "/b": '<html><head><title>Page B</title></head><body><a href="/a">A</a></body></html>',
}
TITLES = {"Home", "Page A", "Page B"}
BUILD_TIMEOUT_SECS = 900


class _Site(BaseHTTPRequestHandler):
    """Serves SITE and records who asked for what, with which headers."""

    def do_GET(self) -> None:
        self.server.seen.append((self.client_address[0], self.path, dict(self.headers)))  # type: ignore[attr-defined]
        body = SITE.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, *args) -> None:
        pass


@contextmanager
def site_server(host: str) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((host, 0), _Site)
    server.seen = []  # type: ignore[attr-defined]
    with serving(server):
        yield server


@pytest.fixture
def site(actors_app):
    """A three-page site on the runs' network gateway, where containers reach the host."""
    with site_server(actors_app.platform.network_gateway()) as server:
        yield f"http://{server.server_address[0]}:{server.server_address[1]}/"


def is_this_hosts_address(address: str) -> bool:
    """Whether a socket can bind to the address here: true for the host's own, false for a container's."""
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def source_files(directory: Path) -> list[dict]:
    """The directory's files as Apify's sourceFiles, byte for byte."""
    files = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            try:
                files.append({"name": path.relative_to(directory).as_posix(), "format": "TEXT",
                              "content": data.decode()})
            except UnicodeDecodeError:
                files.append({"name": path.relative_to(directory).as_posix(), "format": "BASE64",
                              "content": base64.b64encode(data).decode()})
    return files


def create_and_build(client, name: str, fixture: str, version: str = "0.0") -> tuple[dict, dict, str]:
    """Create the actor from the fixture's files through the API and build it; returns actor, build, log."""
    actor = client.post("/acts", {"name": name, "versions": [
        {"versionNumber": version, "sourceType": "SOURCE_FILES", "sourceFiles": source_files(FIXTURES / fixture)}]})
    build = client.post(f"/acts/{actor['id']}/builds", None, version=version)
    deadline = time.monotonic() + BUILD_TIMEOUT_SECS
    while build["status"] in ("READY", "RUNNING"):
        assert time.monotonic() < deadline, f"build {build['id']} did not finish"
        build = client.get(f"/actor-builds/{build['id']}", waitForFinish=60)
    log = client.request("GET", f"/actor-builds/{build['id']}/log").text
    assert build["status"] == "SUCCEEDED", log[-4000:]
    return actor, build, log


def run_actor(client, actor: dict, run_input: dict | None = None, build: str = "latest") -> dict:
    run = client.post(f"/acts/{actor['id']}/runs", run_input or {}, memory=1024, build=build)
    deadline = time.monotonic() + 300
    while run["status"] in ("READY", "RUNNING"):
        assert time.monotonic() < deadline, f"run {run['id']} did not finish"
        run = client.get(f"/actor-runs/{run['id']}", waitForFinish=60)
    return run


def run_log(client, run: dict) -> str:
    return client.request("GET", f"/actor-runs/{run['id']}/log").text


def dataset_items(client, run: dict) -> list[dict]:
    return client.request("GET", f"/datasets/{run['defaultDatasetId']}/items").json()


async def test_python_actor_installs_requirements_from_the_index_and_crawls(apify_images, client, site):
    actor, build, log = await off(create_and_build, client, "py-links", "apify-python", "0.1")
    # The real image cannot be pulled here: the log says which image was used instead, and what it has.
    assert "FROM apify/actor-python:3.13: not on this engine" in log
    assert "using the local equivalent jupyter-actors/actor-python:3.11 (Python 3.11" in log
    assert re.search(r"Successfully installed .*beautifulsoup4", log)  # from the index, through the host CAs
    assert re.search(r"Step 4/\d+ : COPY --chown=myuser:myuser \. \./", log)  # every Dockerfile step is logged
    # .actor/actor.json sent as a source file counts: build tag, input schema, memory, environment variables.
    assert build["buildNumber"] == "0.1.1"
    assert (await off(client.get, f"/acts/{actor['id']}"))["taggedBuilds"]["beta"]["buildId"] == build["id"]
    version = await off(client.get, f"/acts/{actor['id']}/versions/0.1")
    assert version["envVars"] == [{"name": "CRAWLER_LABEL", "value": "from-actor-json", "isSecret": False}]
    with pytest.raises(InvalidInputError, match="512 to 4096 MB"):  # minMemoryMbytes/maxMemoryMbytes
        await off(client.post, f"/acts/{actor['id']}/runs", {"startUrl": site}, memory=256, build="beta")
    run = await off(run_actor, client, actor, {"startUrl": site}, "beta")
    assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
    items = await off(dataset_items, client, run)
    assert {item["title"] for item in items} == TITLES
    assert {item["label"] for item in items} == {"from-actor-json"}


async def test_javascript_actor_with_npm_install_crawls_with_cheerio(apify_images, client, site):
    actor, _, log = await off(create_and_build, client, "js-links", "apify-js")
    assert "using the local equivalent jupyter-actors/actor-node:24 (Node.js 24." in log
    assert "cheerio@" in log  # npm installed it (the dependency tree is printed)
    run = await off(run_actor, client, actor, {"startUrl": site})
    assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
    items = await off(dataset_items, client, run)
    assert {item["title"] for item in items} == TITLES
    assert all(item["node"].startswith("v24.") for item in items)


async def test_javascript_actor_fetches_through_the_platform_proxy_or_its_own(apify_images, client, actors_app):
    actor, _, _ = await off(create_and_build, client, "js-proxy", "apify-js-proxy")
    gateway = actors_app.platform.network_gateway()
    with site_server(gateway) as site:
        url = f"http://{gateway}:{site.server_address[1]}/"
        run = await off(run_actor, client, actor, {"url": url})
        assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
        (item,) = await off(dataset_items, client, run)
        # createProxyConfiguration() passed its access check, and newUrl() is the platform's proxy ...
        assert item["proxyUrl"].startswith("http://auto:") and item["statusCode"] == 200
        assert "<title>Home</title>" in item["body"]
        # ... which fetched the page from this host (a direct fetch would come from the container's address)
        # and kept the run's proxy credentials to itself.
        ((address, path, headers),) = site.seen
        assert path == "/" and is_this_hosts_address(address), address
        assert "proxy-authorization" not in {name.lower() for name in headers}

        # An actor that brings its own proxy URLs uses them, credentials and all, not the platform's.
        own = socketserver.ThreadingTCPServer((gateway, 0), _CountingUpstream)
        own.daemon_threads = True
        own.heads = []  # type: ignore[attr-defined]
        with serving(own):
            own_url = f"http://mine:s3cret@{gateway}:{own.server_address[1]}"
            run = await off(run_actor, client, actor, {"url": url, "proxyUrls": [own_url]})
            assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
        (item,) = await off(dataset_items, client, run)
        assert item["proxyUrl"] == own_url and item["body"] == "answered by the upstream proxy"
        (head,) = own.heads  # type: ignore[attr-defined]
        assert head.startswith(f"GET {url} HTTP/1.1")
        fields = dict(line.split(": ", 1) for line in head.splitlines()[1:] if ": " in line)
        assert {name.lower(): value for name, value in fields.items()}["proxy-authorization"] == (
            "Basic " + base64.b64encode(b"mine:s3cret").decode())
        assert len(site.seen) == 1  # the site itself was not asked again


async def test_typescript_crawlee_actor_builds_in_two_stages_and_crawls(apify_images, client, site):
    actor, _, log = await off(create_and_build, client, "ts-crawlee-links", "apify-ts")
    assert re.search(r"Step \d+/\d+ : RUN npm run build", log)
    assert re.search(r"Step \d+/\d+ : FROM apify/actor-node:24\n", log) is None
    assert len(re.findall(r"Step \d+/\d+ : FROM jupyter-actors/actor-node:24", log)) == 2  # both stages mapped
    run = await off(run_actor, client, actor, {"startUrl": site})
    assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
    items = await off(dataset_items, client, run)
    assert {item["title"] for item in items} == TITLES
    # crawlee's final status message (sent with the JS SDK's `level` field) is the run's.
    assert run["statusMessage"].startswith("Finished! Total 3 requests: 3 succeeded"), run["statusMessage"]


async def test_state_persistence_example_counts_across_runs(apify_images, client):
    actor, _, _ = await off(create_and_build, client, "example-counter", "apify-js-counter")
    printed = []
    for _ in range(3):
        run = await off(run_actor, client, actor)
        log = await off(run_log, client, run)
        assert run["status"] == "SUCCEEDED", log
        printed += [line.split("Counter: ")[1].strip() for line in log.splitlines() if "Counter: " in line]
    assert printed == ["1", "2", "3"]


async def test_browser_images_fail_with_what_to_do(apify_images, client):
    files = [{"name": "Dockerfile", "format": "TEXT",
              "content": "FROM apify/actor-node-playwright-chrome:22\nCMD [\"node\"]\n"},
             {"name": "main.js", "format": "TEXT", "content": ""}]
    actor = await off(client.post, "/acts", {"name": "browser", "versions": [
        {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "sourceFiles": files}]})
    build = await off(client.post, f"/acts/{actor['id']}/builds", None, version="0.0", waitForFinish=60)
    assert build["status"] == "FAILED"
    message = build["statusMessage"]
    assert "apify/actor-node-playwright-chrome:22" in message and "no local equivalent" in message
    assert "base_image_map" in message and "docker load" in message


def test_build_network_off_keeps_offline_builds_working_and_says_why_installs_fail(apify_images, platform_factory):
    from jupyter_actors.platform.sources import ActorDefinition, text_file

    platform = platform_factory(serve_api=False, build_network=False)
    offline = "FROM apify/actor-python:3.13\nCOPY . ./\nRUN python -c 'import apify'\n"
    installs = "FROM apify/actor-python:3.13\nRUN pip install --retries 0 --timeout 5 six\n"
    for name, dockerfile, expected in (("offline", offline, "SUCCEEDED"), ("installs", installs, "FAILED")):
        actor = platform.create_actor(ActorDefinition(
            name=name, files=[text_file("Dockerfile", dockerfile), text_file("main.py", "")], dockerfile="Dockerfile"))
        build = platform.build(actor["id"])
        log = platform.build_log(build["id"]).decode()
        assert build["status"] == expected, log
        assert "Building without network (build_network is off)" in log
    assert "six" in log and ("Network is unreachable" in log or "Temporary failure in name resolution" in log
                             or "Could not find a version" in log), log


async def test_python_crawlee_crawler_in_shared_request_queue_mode(apify_images, client, site):
    actor, _, log = await off(create_and_build, client, "py-crawlee-shared", "apify-python-crawlee")
    assert "using the local equivalent jupyter-actors/actor-python:3.11" in log
    run = await off(run_actor, client, actor, {"startUrl": site})
    assert run["status"] == "SUCCEEDED", await off(run_log, client, run)
    items = await off(dataset_items, client, run)
    assert {item["title"] for item in items} == TITLES
    # The shared mode took its requests with locks, and left none locked.
    queue = await off(client.get, f"/request-queues/{run['defaultRequestQueueId']}")
    assert queue["handledRequestCount"] == 3 and queue["pendingRequestCount"] == 0


def test_builds_get_the_hosts_proxy_settings_as_docker_does(platform_factory, monkeypatch):
    from jupyter_actors.platform.sources import ActorDefinition, text_file

    monkeypatch.setenv("NO_PROXY", "intranet.example")  # harmless here: nothing is proxied by it
    platform = platform_factory(serve_api=False)
    dockerfile = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo \"build sees NO_PROXY=$NO_PROXY\"\n"
    actor = platform.create_actor(ActorDefinition(
        name="proxy-args", files=[text_file("Dockerfile", dockerfile), text_file("main.py", "")],
        dockerfile="Dockerfile"))
    build = platform.build(actor["id"])
    log = platform.build_log(build["id"]).decode()
    assert build["status"] == "SUCCEEDED" and "build sees NO_PROXY=intranet.example" in log, log
