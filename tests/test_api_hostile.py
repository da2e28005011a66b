"""Malformed and hostile requests against the real servers: each gets its 4xx in Apify's error shape,
and nothing is stored (checked by reading every storage and run back afterwards).

The user-facing half runs in a real Jupyter server; the actor-facing half uses real runs' tokens on
the actor API listener of a real platform.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import brotli
import httpx
import pytest

from jupyter_actors.api.base import MAX_BODY_BYTES
from jupyter_actors.platform.limits import MAX_INPUT_CHARS
from jupyter_actors.platform.storages import (
    DATASETS,
    KEY_VALUE_STORES,
    KINDS,
    REQUEST_QUEUES,
)

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

PATHS = {KEY_VALUE_STORES: "key-value-stores", DATASETS: "datasets", REQUEST_QUEUES: "request-queues"}
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


def assert_error(response: httpx.Response, status: int, error_type: str | None = None) -> dict:
    """The response is ``status`` with exactly Apify's ``{"error": {"type", "message"}}`` body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if error_type is not None:
        assert body["error"]["type"] == error_type, body
    return body["error"]


def snapshot(platform) -> dict:
    """Everything a refused request could have written: runs, storages, records, items, requests."""
    storages = platform.storages
    state: dict = {"runs": sorted((r["id"], r["status"], r["status_message"]) for r in platform.list_runs())}
    for kind in KINDS:
        for meta in storages.list_storages(kind, unnamed=True)["items"]:
            entry = (meta["name"], meta.get("itemCount"), meta.get("totalRequestCount"))
            if kind == KEY_VALUE_STORES:
                entry += tuple((k["key"], k["size"]) for k in storages.list_keys(meta["id"])["items"])
            state[(kind, meta["id"])] = entry
    return state


# -- the user-facing API (Jupyter server) -----------------------------------------------------------


def user_client(api_url: str, api_token: str) -> httpx.AsyncClient:
    """An unopened client of the user API; tests open it with ``async with user:`` (pytest-jupyter runs
    async tests, not async fixtures)."""
    return httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"},
                             timeout=120)


@pytest.fixture
def user(api_url, api_token):
    return user_client(api_url, api_token)


@pytest.fixture
def stores(actors_app):
    """One store of each kind to aim bad writes at (named, so the collections list them)."""
    storages = actors_app.platform.storages
    return {kind: storages.get_or_create(kind, f"target-{PATHS[kind]}")[0]["id"] for kind in KINDS}


BAD_WRITES = [
    # (method, path template, body, headers, expected status)
    ("POST", "/datasets/{ds}/items", b"{not json", {}, 400),
    ("POST", "/datasets/{ds}/items", b"[1, 2]", {}, 400),
    ("POST", "/datasets/{ds}/items", b'"text"', {}, 400),
    ("POST", "/datasets/{ds}/items", b'[{"ok": 1}, 3]', {}, 400),
    ("POST", "/datasets/{ds}/items", b"null", {}, 400),
    ("POST", "/request-queues/{rq}/requests/batch", b'{"url": "https://a.example"}', {}, 400),
    ("POST", "/request-queues/{rq}/requests/batch", b'[{"url": "https://a.example"}, {"noUrl": 1}]', {}, 400),
    ("POST", "/request-queues/{rq}/requests/batch", b"[{", {}, 400),
    ("POST", "/request-queues/{rq}/requests", b'[{"url": "https://a.example"}]', {}, 400),
    ("POST", "/request-queues/{rq}/requests", b'{"url": 5}', {}, 400),
    ("PUT", "/request-queues/{rq}/requests/abc", b'{"url": "https://a.example"}', {}, 400),
    ("PUT", "/key-value-stores/{kvs}", b'{"name": 12}', {}, 400),
    ("PUT", "/key-value-stores/{kvs}", b'{"name": "../x"}', {}, 400),
    ("PUT", "/key-value-stores/{kvs}", b'["name"]', {}, 400),
    ("PUT", "/key-value-stores/{kvs}", b'{"name": "ok", "owner": "me"}', {}, 400),
    ("PUT", "/datasets/{ds}", b'{"name": "a/b"}', {}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/..%2F..%2Fescape", b"x", {}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/a%2Fb", b"x", {}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/%2E%2E", b"x", {}, None),  # ".." is a legal Apify key
    ("PUT", "/key-value-stores/{kvs}/records/sp%20ace", b"x", {}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/" + "k" * 257, b"x", {}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/ctype", b"x", {"Content-Type": "text/plain;\tx=1"}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/ctype", b"x", {"Content-Type": "text/" + "x" * 300}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/enc", b"x", {"Content-Encoding": "compress"}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/enc", b"not gzip at all", {"Content-Encoding": "gzip"}, 400),
    ("PUT", "/key-value-stores/{kvs}/records/enc", gzip.compress(b"x" * 1000)[:-9], {"Content-Encoding": "gzip"}, 400),
    ("POST", "/datasets/{ds}/items", brotli.compress(b'[{"a": 1}]')[:-2], {"Content-Encoding": "br"}, 400),
    ("POST", "/datasets/{ds}/items", b"\x78\x9c garbage", {"Content-Encoding": "deflate"}, 400),
    ("POST", "/key-value-stores?name=..", b"", {}, 400),
    ("POST", "/datasets?name=a%2Fb", b"", {}, 400),
    ("POST", "/request-queues?name=-leading-hyphen", b"", {}, 400),
    ("POST", "/key-value-stores?name=" + "n" * 300, b"", {}, 400),
    ("POST", "/actors", b'{"name": "x", "versions": "none"}', {}, 400),
    ("POST", "/actors", b'[]', {}, 400),
    ("POST", "/actors", b'{"name": "x", "versions": [{"sourceType": "GIT_REPO", "gitRepoUrl": "x"}]}', {}, 400),
    ("POST", "/actors", b'{"name": "../x", "versions": []}', {}, 400),
    ("POST", "/actors", b'{"name": 7}', {}, 400),
    ("POST", "/request-queues/{rq}/requests/batch", b'[{"url": "https://a.example", "retryCount": -1}]', {}, 400),
]


@pytest.mark.parametrize("method, template, body, headers, status", BAD_WRITES)
async def test_bad_writes_are_refused_and_store_nothing(user, actors_app, stores, method, template, body,
                                                        headers, status):
    async with user:
        path = template.format(kvs=stores[KEY_VALUE_STORES], ds=stores[DATASETS], rq=stores[REQUEST_QUEUES])
        before = snapshot(actors_app.platform)
        response = await user.request(method, path, content=body,
                                      headers={"Content-Type": "application/json", **headers})
        if status is None:  # not an attack after all: the legal key is stored under its own name
            assert response.status_code == 201
            assert actors_app.platform.storages.get_record(stores[KEY_VALUE_STORES], "..")[0] == b"x"
            return
        assert_error(response, status)
        assert snapshot(actors_app.platform) == before
        assert actors_app.platform.list_actors() == []


async def test_path_tricks_in_reads_find_nothing(user, stores):
    async with user:
        kvs = stores[KEY_VALUE_STORES]
        actors_app_record = await user.put(f"/key-value-stores/{kvs}/records/secret", content=b"s")
        assert actors_app_record.status_code == 201
        for path in (
            f"/key-value-stores/{kvs}/records/..%2Fsecret",
            f"/key-value-stores/{kvs}/records/.%2Fsecret",
            f"/key-value-stores/..%2F{kvs}/records/secret",
            f"/key-value-stores/{kvs}%2Frecords/secret",
            "/key-value-stores/" + "x" * 5000,
            f"/key-value-stores/{kvs}/records/" + "k" * 300,
        ):
            response = await user.get(path)
            assert response.status_code in (400, 404), path
            assert_error(response, response.status_code)
        # The traversal did not reach the filesystem either: the real record is intact and nothing else exists.
        keys = (await user.get(f"/key-value-stores/{kvs}/keys")).json()["data"]["items"]
        assert [k["key"] for k in keys] == ["secret"]


async def test_unknown_ids_and_records_are_404(user, stores):
    async with user:
        kvs, ds, rq = stores[KEY_VALUE_STORES], stores[DATASETS], stores[REQUEST_QUEUES]
        for method, path in (
            ("GET", "/actor-runs/nope"), ("PUT", "/actor-runs/nope"), ("POST", "/actor-runs/nope/abort"),
            ("POST", "/actor-runs/nope/resurrect"), ("GET", "/actor-runs/nope/log"),
            ("GET", "/actor-runs/nope/dataset/items"), ("GET", "/actors/nope"), ("GET", "/acts/local~nope"),
            ("POST", "/actors/nope/runs"), ("GET", "/actor-builds/nope"), ("GET", "/actor-builds/nope/log"),
            ("GET", "/key-value-stores/nope"), ("GET", "/datasets/nope/items"), ("GET", "/request-queues/nope/head"),
            ("GET", f"/key-value-stores/{kvs}/records/missing"), ("DELETE", f"/key-value-stores/{kvs}/records/missing"),
            ("GET", f"/request-queues/{rq}/requests/AAAAAAAAAAAAAAA"), ("DELETE", "/datasets/nope"),
            ("GET", f"/datasets/{ds}/nothing-here"), ("GET", "/v3-is-not-here"),
            ("GET", "/datasets/someone~target-datasets"),
        ):
            response = await user.request(method, path, content=b"{}" if method in ("PUT", "POST") else None)
            assert_error(response, 404)
        assert (await user.get("/datasets/local~target-datasets")).status_code == 200
        for method, path in (("DELETE", "/actor-runs"), ("PATCH", f"/datasets/{ds}"), ("POST", f"/datasets/{ds}")):
            assert_error(await user.request(method, path), 405, "method-not-allowed")
        head = await user.head(f"/key-value-stores/{kvs}/records/missing")
        assert head.status_code == 404


async def test_bad_query_options_are_400(user, stores):
    async with user:
        ds, kvs = stores[DATASETS], stores[KEY_VALUE_STORES]
        for path in (f"/datasets/{ds}/items?offset=-1", f"/datasets/{ds}/items?limit=ten",
                     f"/datasets/{ds}/items?desc=maybe", f"/datasets/{ds}/items?format=pdf",
                     f"/key-value-stores/{kvs}/keys?limit=-5", "/actor-runs?offset=x",
                     "/actor-runs/x?waitForFinish=soon"):
            assert_error(await user.get(path), 400)


async def test_auth_is_required_on_every_route(api_url):
    async with httpx.AsyncClient(base_url=f"{api_url}/v2") as anonymous:
        for method, path in (("GET", "/actor-runs"), ("POST", "/key-value-stores?name=sneaky"),
                             ("PUT", "/key-value-stores/x/records/y"), ("DELETE", "/actors/x"),
                             ("GET", "/datasets/x/items"), ("GET", "/no-such-route")):
            response = await anonymous.request(method, path, content=b"x" if method in ("PUT", "POST") else None)
            assert_error(response, 401, "token-not-provided")  # writes too: not Jupyter's "'_xsrf' missing"
            for verb in ("GET", "POST", "PUT", "DELETE"):
                wrong = await anonymous.request(verb, path, headers={"Authorization": "Bearer not-the-token"})
                assert_error(wrong, 401)


async def test_oversized_bodies_get_413_in_apify_shape(user, actors_app, stores):
    async with user:
        kvs, ds = stores[KEY_VALUE_STORES], stores[DATASETS]
        before = snapshot(actors_app.platform)
        # Declared too large: refused before the body is read.
        huge = b"x" * (MAX_BODY_BYTES + 1)
        assert_error(await user.put(f"/key-value-stores/{kvs}/records/huge", content=huge), 413, "request-too-large")
        # Chunked (no Content-Length): read, discarded past the cap, and refused the same way.

        async def chunks():
            piece = b"y" * (1 << 20)
            for _ in range(MAX_BODY_BYTES // len(piece) + 2):
                yield piece

        assert_error(await user.put(f"/key-value-stores/{kvs}/records/huge", content=chunks()), 413)
        # A small compressed body that inflates past the cap (a decompression bomb), in each encoding.
        plain = b"\0" * (MAX_BODY_BYTES + 1024)
        for encoding, packed in (("gzip", gzip.compress(plain, 1)), ("br", brotli.compress(plain, quality=1)),
                                 ("deflate", zlib.compress(plain, 1))):
            assert len(packed) < 1 << 20
            response = await user.post(f"/datasets/{ds}/items", content=packed, headers={"Content-Encoding": encoding})
            assert_error(response, 413, "request-too-large")
        # Declared too big even to drain: answered at once (then the connection closes), still in Apify's shape.
        status, error = await declare_body_and_read_answer(user, f"/key-value-stores/{kvs}/records/huge", 10**12)
        assert status == 413 and error["type"] == "request-too-large"
        assert snapshot(actors_app.platform) == before
        # The cap itself is accepted: a record of exactly MAX_BODY_BYTES is stored whole.
        exact = await user.put(f"/key-value-stores/{kvs}/records/exact", content=huge[:-1],
                               headers={"Content-Type": "application/octet-stream"})
        assert exact.status_code == 201
        assert actors_app.platform.storages.get_record(kvs, "exact")[0] == huge[:-1]


def _actor_state(platform) -> list:
    return [(a, platform.versions(a["id"])) for a in platform.list_actors()]


async def test_bad_actor_updates_change_nothing(user, actors_app):
    from jupyter_actors.platform.sources import inline_actor

    platform = actors_app.platform
    platform.create_actor(inline_actor("kept", "print(1)\n", title="Kept"))
    before, stored = _actor_state(platform), snapshot(platform)
    good_version = {"versionNumber": "0.0", "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": "x"}]}
    async with user:
        for body in (
            {"title": 5}, {"description": ["x"]}, {"defaultRunOptions": 5}, {"defaultRunOptions": ["build"]},
            {"defaultRunOptions": {"memoryMbytes": "lots"}}, {"defaultRunOptions": {"memoryMbytes": 100}},
            {"defaultRunOptions": {"timeoutSecs": True}}, {"versions": "0.0"},
            {"versions": [good_version], "defaultRunOptions": {"memoryMbytes": 100}},
            {"versions": [{**good_version, "versionNumber": "latest"}]},
            {"versions": [{**good_version, "envVars": [5]}]},
            {"versions": [{**good_version, "envVars": [{"name": "A", "value": 1}]}]},
            {"versions": [{**good_version, "sourceFiles": [{"name": "main.py", "content": 5}]}]},
            {"versions": [{**good_version, "sourceFiles": [{"name": "../../etc/passwd", "content": "x"}]}]},
            {"versions": [{**good_version, "sourceFiles": [{"name": "main.py", "content": "x", "format": "ZIP"}]}]},
            # Paths in actor.json that leave the actor, and pip options the host's pip would follow.
            *({"versions": [{**good_version, "sourceFiles": [
                {"name": "main.py", "content": "x"},
                {"name": ".actor/actor.json", "content": json.dumps({key: path})}]}]}
              for key in ("dockerfile", "input") for path in ("../../../etc/passwd", "/etc/passwd")),
            *({"versions": [{**good_version, "sourceFiles": [
                {"name": "main.py", "content": "x"}, {"name": "requirements.txt", "content": f"six\n{line}\n"}]}]}
              for line in ("--index-url https://evil.example/simple", "-r /etc/passwd", "-e /tmp/x")),
        ):
            assert_error(await user.put("/actors/kept", json=body), 400)
        assert_error(await user.post("/actors/kept/versions", json={"versionNumber": 1, "sourceFiles": []}), 400)
        # A batch delete with one bad entry deletes nothing.
        rq = platform.storages.get_or_create(REQUEST_QUEUES, "kept-queue")[0]["id"]
        platform.storages.add_requests(rq, [{"url": "https://a.example"}])
        assert_error(await user.request("DELETE", f"/request-queues/{rq}/requests/batch",
                                        json=[{"uniqueKey": "https://a.example"}, 5]), 400)
        assert platform.storages.get(REQUEST_QUEUES, rq)["totalRequestCount"] == 1
        platform.storages.delete(REQUEST_QUEUES, rq)
    assert _actor_state(platform) == before
    assert snapshot(platform) == stored


async def declare_body_and_read_answer(user: httpx.AsyncClient, path: str, length: int) -> tuple[int, dict]:
    """Send only the headers of a PUT declaring ``length`` bytes and read what the server answers."""
    url = httpx.URL(str(user.base_url).rstrip("/") + path)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {user.headers['Authorization']}\r\nContent-Length: {length}\r\n\r\n")
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)  # until the server closes the connection
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b"connection: close" in rest.lower()
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])["error"]


# -- starting runs: every refusal happens before anything is stored ----------------------------------


@pytest.fixture
def sleeper(actors_app):
    define_actor(actors_app.platform, "sleeper", SLEEPER)
    return "local~sleeper"


async def test_bad_run_starts_are_400_and_store_nothing(user, actors_app, sleeper):
    async with user:
        before = snapshot(actors_app.platform)
        json_ct = {"Content-Type": "application/json"}
        for query, body, headers in (
            ("memory=100", b"{}", json_ct),
            ("memory=lots", b"{}", json_ct),
            ("memory=65536", b"{}", json_ct),
            ("timeout=-1", b"{}", json_ct),
            ("timeout=1.5", b"{}", json_ct),
            ("memory=1024&colour=blue", b"{}", json_ct),
            ("memory=1024&waitForFinish=soon", b"{}", json_ct),
            ("memory=1024&maxItems=many", b"{}", json_ct),
            ("memory=1024&restartOnError=perhaps", b"{}", json_ct),
            ("memory=1024&maxTotalChargeUsd=-3", b"{}", json_ct),
            ("memory=1024", b'{"broken": ', json_ct),
            ("memory=1024", b'{"big": "' + b"x" * MAX_INPUT_CHARS + b'"}', json_ct),
            ("memory=1024", gzip.compress(b'{"big": "' + b"x" * MAX_INPUT_CHARS + b'"}'),
             {**json_ct, "Content-Encoding": "gzip"}),
            ("memory=1024&contentType=text%2Fplain%0D%0AX-Evil%3A%201", b"hello", {}),
            ("memory=1024&build=9.9.9", b"{}", json_ct),
            # Unicode digits: "²".isdigit() is True but int("²") raises.
            ("memory=%C2%B2", b"{}", json_ct),
            ("memory=1024&timeout=%C2%B2", b"{}", json_ct),
            ("memory=1024&timeout=%EF%BC%91", b"{}", json_ct),  # a fullwidth 1: int() reads it, we do not
            ("memory=" + "9" * 5000, b"{}", json_ct),
            # Timeouts whose deadline no date can hold: refused before the default storages exist.
            ("memory=1024&timeout=18446744073709551616", b"{}", json_ct),
            ("memory=1024&timeout=300000000000", b"{}", json_ct),
            ("memory=1024&waitForFinish=18446744073709551616", b"{}", json_ct),
            ("memory=1024", b"[" * 100_000 + b"]" * 100_000, json_ct),  # json.loads: RecursionError
        ):
            response = await user.post(f"/actors/{sleeper}/runs?{query}", content=body, headers=headers)
            assert_error(response, 404 if "build=" in query else 400)
        assert snapshot(actors_app.platform) == before
        assert actors_app.platform.list_runs() == []


async def test_illegal_lifecycle_transitions_are_409(user, actors_app, sleeper):
    async with user:
        started = await user.post(f"/actors/{sleeper}/runs?memory={TEST_MEMORY_MB}")
        assert started.status_code == 201
        run_id = started.json()["data"]["id"]
        wait_until(lambda: actors_app.platform.get_run(run_id)["status"] == "RUNNING", 60)
        assert_error(await user.post(f"/actor-runs/{run_id}/resurrect"), 409)
        aborted = await user.post(f"/actor-runs/{run_id}/abort")
        assert aborted.status_code == 200
        finished = await user.get(f"/actor-runs/{run_id}?waitForFinish=30")
        assert finished.json()["data"]["status"] == "ABORTED"
        before = snapshot(actors_app.platform)
        assert_error(await user.post(f"/actor-runs/{run_id}/abort"), 409)
        assert_error(await user.put(f"/actor-runs/{run_id}", json={"statusMessage": "too late"}), 409)
        assert_error(await user.post(f"/actor-runs/{run_id}/resurrect?memory=100"), 400)
        assert_error(await user.post(f"/actor-runs/{run_id}/resurrect?colour=red"), 400)
        assert_error(await user.post(f"/actor-runs/{run_id}/abort?gracefully=perhaps"), 400)
        assert snapshot(actors_app.platform) == before


# -- the actor-facing API: what a run's token may not do ---------------------------------------------


@pytest.fixture
def two_runs(platform_factory):
    """A platform whose quota fits exactly two sleeper runs, with both of them running."""
    platform = platform_factory(memory_limit_mb=2 * TEST_MEMORY_MB)
    define_actor(platform, "sleeper", SLEEPER)
    runs = [platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB) for _ in range(2)]
    for run in runs:
        wait_until(lambda run=run: platform.get_run(run["id"])["status"] == "RUNNING", 60)
    # The registry keeps only the tokens' hashes: the plain token is what start_run handed back.
    return platform, [{**platform.get_run(run["id"]), "token": run["token"]} for run in runs]


def actor_client(platform, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{platform.actor_api_url}/v2", headers=headers, timeout=60)


def test_a_run_token_cannot_touch_another_runs_things(two_runs):
    platform, (mine, theirs) = two_runs
    storages = platform.storages
    their_named = storages.get_or_create(KEY_VALUE_STORES, "their-named", run_id=theirs["id"])[0]["id"]
    storages.set_record(theirs["default_key_value_store_id"], "SECRET", b"theirs", "text/plain")
    before = snapshot(platform)
    with actor_client(platform, mine["token"]) as client:
        kvs, ds, rq = (theirs[f"default_{k}_id"] for k in ("key_value_store", "dataset", "request_queue"))
        for method, path, body in (
            ("GET", f"/key-value-stores/{kvs}", None),
            ("GET", f"/key-value-stores/{kvs}/records/SECRET", None),
            ("GET", f"/key-value-stores/{kvs}/keys", None),
            ("PUT", f"/key-value-stores/{kvs}/records/OUTPUT", b'{"hacked": true}'),
            ("DELETE", f"/key-value-stores/{kvs}", None),
            ("GET", f"/datasets/{ds}/items", None),
            ("POST", f"/datasets/{ds}/items", b'[{"hacked": true}]'),
            ("POST", f"/request-queues/{rq}/requests/batch", b'[{"url": "https://evil.example"}]'),
            ("GET", f"/actor-runs/{theirs['id']}", None),
            ("GET", f"/actor-runs/{theirs['id']}/log", None),
            ("GET", f"/actor-runs/{theirs['id']}/key-value-store/records/SECRET", None),
            ("POST", f"/actor-runs/{theirs['id']}/dataset/items", b'{"hacked": true}'),
            ("PUT", f"/actor-runs/{theirs['id']}", b'{"statusMessage": "hacked"}'),
            ("POST", f"/actor-runs/{theirs['id']}/abort", None),
            ("DELETE", "/actors/sleeper", None),
            ("PUT", "/actors/sleeper", b'{"title": "hacked"}'),
            ("POST", "/actors", b'{"name": "evil", "versions": []}'),
            ("POST", "/actors/sleeper/builds", None),
            ("DELETE", f"/key-value-stores/{their_named}", None),
            ("PUT", f"/key-value-stores/{their_named}", b'{"name": "renamed"}'),
        ):
            assert_error(client.request(method, path, content=body), 403, "insufficient-permissions")
        listed = client.get("/actor-runs").json()["data"]["items"]
        assert [run["id"] for run in listed] == [mine["id"]]
        # Named storages are shared on purpose: reading and writing records of one is allowed.
        assert client.put(f"/key-value-stores/{their_named}/records/shared", content=b"1").status_code == 201
    storages.delete_record(their_named, "shared")
    assert snapshot(platform) == before
    assert platform.get_run(theirs["id"])["status"] == "RUNNING"
    assert platform.get_actor("sleeper")["title"] is None


def test_run_tokens_own_run_and_bad_updates(two_runs):
    platform, (mine, _) = two_runs
    with actor_client(platform, mine["token"]) as client:
        for body in (b'{"statusMessage": 5}', b'{"statusMessage": ["a"]}', b'{"statusMessage": "x" * 1001}',
                     b'{"statusMessage": "x", "isStatusMessageTerminal": "yes"}', b'{"status": "SUCCEEDED"}',
                     b'"just text"', b"{oops", ('{"statusMessage": "' + "x" * 1001 + '"}').encode()):
            assert_error(client.put(f"/actor-runs/{mine['id']}", content=body), 400)
        assert platform.get_run(mine["id"])["status_message"] == "Running"
        ok = client.put(f"/actor-runs/{mine['id']}",
                        json={"statusMessage": "Working", "isStatusMessageTerminal": False})
        assert ok.status_code == 200 and ok.json()["data"]["statusMessage"] == "Working"


def test_missing_unknown_and_finished_tokens_are_401(two_runs):
    platform, (mine, _) = two_runs
    for token in (None, "not-a-token", mine["id"]):
        with actor_client(platform, token) as client:
            assert_error(client.get(f"/actor-runs/{mine['id']}"), 401)
            assert_error(client.post("/key-value-stores?name=sneaky"), 401)
    platform.abort_run(mine["id"])
    wait_until(lambda: platform.get_run(mine["id"])["status"] == "ABORTED", 30)
    before = snapshot(platform)
    with actor_client(platform, mine["token"]) as client:
        assert_error(client.get(f"/actor-runs/{mine['id']}"), 401, "user-or-token-not-found")
        assert_error(client.put(f"/key-value-stores/{mine['default_key_value_store_id']}/records/late",
                                content=b"x"), 401)
    assert snapshot(platform) == before


def test_memory_quota_refusal_from_inside_a_run(two_runs):
    platform, (mine, _) = two_runs
    before = snapshot(platform)
    with actor_client(platform, mine["token"]) as client:
        refused = client.post(f"/actors/local~sleeper/runs?memory={TEST_MEMORY_MB}", json={"n": 1})
        error = assert_error(refused, 402, "actor-memory-limit-exceeded")
        assert f"{2 * TEST_MEMORY_MB} MB" in error["message"]
    assert snapshot(platform) == before


# -- bad numbers and deep nesting: 400, never 500 -----------------------------------------------------

HUGE = str(2**64)


async def test_bad_numbers_are_400_never_500(user, actors_app, stores, sleeper):
    async with user:
        kvs, ds, rq = stores[KEY_VALUE_STORES], stores[DATASETS], stores[REQUEST_QUEUES]
        before = snapshot(actors_app.platform)
        lists = ["/actors", "/acts", "/actor-runs", f"/actors/{sleeper}/runs", f"/acts/{sleeper}/builds",
                 "/key-value-stores", "/datasets", "/request-queues", f"/datasets/{ds}/items",
                 f"/key-value-stores/{kvs}/keys", f"/request-queues/{rq}/head", f"/request-queues/{rq}/requests"]
        for path in lists:
            for query in (f"offset={HUGE}", f"limit={HUGE}", f"offset={2**63}", "offset=%C2%B2", "limit=%C2%B2",
                          "limit=1_0", "offset=1e3"):
                if "offset" in query and path.endswith(("/keys", "/head", "/requests")):
                    continue  # these page by cursor, not by offset
                assert_error(await user.get(f"{path}?{query}"), 400)
        # The largest accepted values are answered as empty pages, not by an overflow in SQLite or orjson.
        top = 2**63 - 1
        for path in ("/actors", "/actor-runs", "/key-value-stores", f"/datasets/{ds}/items"):
            page = await user.get(f"{path}?offset={top}&limit={top}")
            assert page.status_code == 200, (path, page.text[:300])
        stream = await user.get(f"{str(user.base_url).split('/v2')[0]}/stream/runs?limit={HUGE}")
        assert_error(stream, 400)
        assert_error(await user.get("/actor-runs?status=AAA"), 400)
        assert_error(await user.get(f"/actors/{sleeper}/runs/last?status=done"), 400)
        status, error = await raw_request(user, "PUT", f"/key-value-stores/{kvs}/records/k", "Content-Length: \u00b2")
        assert status == 400 and error["type"] == "invalid-input"
        assert snapshot(actors_app.platform) == before
        assert actors_app.platform.list_runs() == []


async def raw_request(user: httpx.AsyncClient, method: str, path: str, header: str) -> tuple[int, dict]:
    """A request with a header no HTTP client library would send, and the server's answer."""
    url = httpx.URL(str(user.base_url).rstrip("/") + path)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (f"{method} {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Authorization: {user.headers['Authorization']}\r\n{header}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])["error"]


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_deep_nesting_is_400_or_stored_whole(user, actors_app, stores):
    """orjson reads 1024 levels and writes 254; Python's json recurses: none of them may become a 500."""
    async with user:
        kvs, ds, rq = stores[KEY_VALUE_STORES], stores[DATASETS], stores[REQUEST_QUEUES]
        before = snapshot(actors_app.platform)
        for depth in (300, 1500, 100_000):
            assert_error(await user.post(f"/datasets/{ds}/items", content=b"[" + nested(depth) + b"]"), 400)
            deep_request = b'{"url": "https://a.example", "userData": ' + nested(depth) + b"}"
            assert_error(await user.post(f"/request-queues/{rq}/requests/batch",
                                         content=b"[" + deep_request + b"]"), 400)
            assert_error(await user.post(f"/request-queues/{rq}/requests", content=deep_request), 400)
        assert snapshot(actors_app.platform) == before
        # A JSON record is stored as its bytes and served back unchanged, however deep.
        deep = nested(100_000)
        put = await user.put(f"/key-value-stores/{kvs}/records/deep", content=deep,
                             headers={"Content-Type": "application/json"})
        assert put.status_code == 201
        assert (await user.get(f"/key-value-stores/{kvs}/records/deep")).content == deep


async def test_request_fields_of_the_wrong_type_are_refused(user, actors_app, stores):
    """A request is stored as sent and served back to crawlee: a field of the wrong type would break every read."""
    async with user:
        rq = stores[REQUEST_QUEUES]
        before = snapshot(actors_app.platform)
        for field, value in (("retryCount", {}), ("retryCount", None), ("retryCount", "1"), ("retryCount", 2**64),
                             ("userData", "x"), ("headers", []), ("noRetry", "yes"), ("errorMessages", {}),
                             ("payload", 5)):
            request = {"url": "https://a.example/typed", field: value}
            assert_error(await user.post(f"/request-queues/{rq}/requests", json=request), 400)
            assert_error(await user.post(f"/request-queues/{rq}/requests/batch", json=[request]), 400)
        assert snapshot(actors_app.platform) == before
        added = await user.post(f"/request-queues/{rq}/requests", json={
            "url": "https://a.example/ok", "userData": {"label": "x"}, "headers": {}, "noRetry": False})
        assert added.status_code == 201
        stored = await user.get(f"/request-queues/{rq}/requests/{added.json()['data']['requestId']}")
        assert stored.json()["data"]["retryCount"] == 0


async def test_env_vars_with_is_secret_are_accepted(user, actors_app):
    """The documented envVars shape ({name, value, isSecret: bool}) on every actor write (it was a 500)."""
    files = [{"name": "main.py", "format": "TEXT", "content": "print(1)"}]
    env = [{"name": "PLAIN", "value": "p", "isSecret": False}, {"name": "HIDDEN", "value": "h", "isSecret": True}]
    async with user:
        created = await user.post("/actors", json={"name": "with-env", "versions": [
            {"versionNumber": "0.0", "sourceFiles": files, "envVars": env}]})
        assert created.status_code == 201, created.text
        updated = await user.put("/actors/with-env", json={"versions": [
            {"versionNumber": "0.1", "sourceFiles": files, "envVars": env}]})
        assert updated.status_code == 200, updated.text
        version = await user.post("/actors/with-env/versions", json={
            "versionNumber": "0.2", "sourceFiles": files, "envVars": env})
        assert version.status_code == 201, version.text
        assert version.json()["data"]["envVars"] == [{"name": "PLAIN", "isSecret": False, "value": "p"},
                                                     {"name": "HIDDEN", "isSecret": True}]
        assert_error(await user.post("/actors/with-env/versions", json={
            "versionNumber": "0.3", "sourceFiles": files, "envVars": [{"name": "X", "isSecret": "no"}]}), 400)


async def test_405_names_the_allowed_methods(user, stores):
    async with user:
        ds = stores[DATASETS]
        for method, path, allowed in (("PATCH", f"/datasets/{ds}", {"GET", "PUT", "DELETE"}),
                                      ("DELETE", "/actor-runs", {"GET"}),
                                      ("TRACE", "/actors", {"GET", "POST"})):
            response = await user.request(method, path)
            assert_error(response, 405, "method-not-allowed")
            assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed, response.headers.get("Allow")


# -- what a run token reaches: its own run, the runs it started, nothing of other actors ----------------


@pytest.fixture
def parent_and_child(platform_factory):
    """A running parent run that started a child through the API with its own token, beside another actor."""
    platform = platform_factory(memory_limit_mb=3 * TEST_MEMORY_MB)
    define_actor(platform, "sleeper", SLEEPER)
    other_build = define_actor(platform, "other", "print('other')\n",
                               env_vars=[{"name": "OTHER_SETTING", "value": "not-for-you", "isSecret": False}],
                               input_schema={"title": "Other", "type": "object", "schemaVersion": 1, "properties": {}})
    parent = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: platform.get_run(parent["id"])["status"] == "RUNNING", 60)
    with actor_client(platform, parent["token"]) as client:
        started = client.post(f"/actors/local~sleeper/runs?memory={TEST_MEMORY_MB}")
        assert started.status_code == 201, started.text
    child = started.json()["data"]
    wait_until(lambda: platform.get_run(child["id"])["status"] == "RUNNING", 60)
    return platform, parent, child, other_build


def test_a_run_token_reads_nothing_of_other_actors(parent_and_child):
    platform, parent, child, other_build = parent_and_child
    other = platform.get_actor("other")
    before = snapshot(platform)
    with actor_client(platform, parent["token"]) as client:
        for path in ("/actors", "/acts", "/actors/local~other", f"/acts/{other['id']}",
                     "/actors/local~other/versions", "/actors/local~other/versions/0.0",
                     "/actors/local~other/builds", f"/actor-builds/{other_build['id']}",
                     f"/actor-builds/{other_build['id']}/log"):
            error = assert_error(client.get(path), 403, "insufficient-permissions")
            assert "not-for-you" not in error["message"]
        # A public web server is the user's decision, not a run's.
        refused = client.post(f"/actors/local~sleeper/runs?memory={TEST_MEMORY_MB}&webServerPublic=true")
        assert_error(refused, 403, "insufficient-permissions")
        # Its own actor and build it may read (the SDK and the actor's own code may ask).
        assert client.get("/actors/local~sleeper").status_code == 200
        assert client.get(f"/actor-builds/{parent['build_id']}").status_code == 200
        # runs/last answers the newest run it may read (its child), without revealing any other.
        last = client.get("/actors/local~sleeper/runs/last")
        assert last.status_code == 200 and last.json()["data"]["id"] == child["id"]
    assert snapshot(platform) == before


def test_a_run_token_reads_and_aborts_its_children_but_changes_nothing_else(parent_and_child):
    platform, parent, child, _ = parent_and_child
    with actor_client(platform, parent["token"]) as client:
        assert client.get(f"/actor-runs/{child['id']}").status_code == 200
        for method, path, body in (
            ("PUT", f"/actor-runs/{child['id']}", b'{"statusMessage": "hijacked"}'),
            ("POST", f"/actor-runs/{child['id']}/resurrect", None),
            ("DELETE", f"/actor-runs/{child['id']}", None),
        ):
            assert_error(client.request(method, path, content=body), 403, "insufficient-permissions")
        assert platform.get_run(child["id"])["status_message"] != "hijacked"
        aborted = client.post(f"/actor-runs/{child['id']}/abort")
        assert aborted.status_code == 200, aborted.text
        wait_until(lambda: platform.get_run(child["id"])["status"] == "ABORTED", 30)
        # Finished now, and still not the parent's to delete or bring back.
        assert_error(client.delete(f"/actor-runs/{child['id']}"), 403, "insufficient-permissions")
        assert_error(client.post(f"/actor-runs/{child['id']}/resurrect"), 403, "insufficient-permissions")
    assert platform.get_run(child["id"])["status"] == "ABORTED"
    assert platform.storages.get(KEY_VALUE_STORES, child["defaultKeyValueStoreId"]) is not None


async def test_a_refused_start_creates_no_storage(user, actors_app):
    """Everything is checked before the run's three default storages exist (a late refusal leaked them)."""
    define_actor(actors_app.platform, "bad-port", SLEEPER,
                 env_vars=[{"name": "APIFY_CONTAINER_PORT", "value": "not-a-port", "isSecret": False}])
    async with user:
        before = snapshot(actors_app.platform)
        for query in (f"memory={TEST_MEMORY_MB}", f"memory={TEST_MEMORY_MB}&timeout=300000000000"):
            assert_error(await user.post(f"/actors/local~bad-port/runs?{query}", json={"n": 1}), 400)
        assert snapshot(actors_app.platform) == before
        assert actors_app.platform.list_runs() == []


# -- hostile load: what one request may make the server hold -------------------------------------------


def test_batches_pushes_and_run_bodies_are_capped(two_runs):
    """Apify's caps: 25 requests per batch, a 9 MiB body from a run (but a record up to 100 MiB), and
    a push of at most 100 000 items; each refused with 400/413 and nothing stored."""
    from jupyter_actors.api.base import MAX_BATCH_REQUESTS, MAX_RUN_BODY_BYTES
    from jupyter_actors.platform.storages.datasets import MAX_PUSH_ITEMS

    platform, (mine, _) = two_runs
    queue, dataset, kvs = (mine[f"default_{kind}_id"] for kind in ("request_queue", "dataset", "key_value_store"))
    batch = [{"url": f"https://example.com/{i}"} for i in range(MAX_BATCH_REQUESTS + 1)]
    with actor_client(platform, mine["token"]) as client:
        refused = assert_error(client.post(f"/request-queues/{queue}/requests/batch", json=batch), 400)
        assert "at most 25 requests" in refused["message"]
        assert_error(client.request("DELETE", f"/request-queues/{queue}/requests/batch",
                                    json=[{"uniqueKey": r["url"]} for r in batch]), 400)
        assert platform.storages.list_requests(queue)["items"] == []
        assert client.post(f"/request-queues/{queue}/requests/batch", json=batch[:-1]).status_code == 201
        big = b'[{"pad": "' + b"x" * MAX_RUN_BODY_BYTES + b'"}]'
        assert_error(client.post(f"/datasets/{dataset}/items", content=big,
                                 headers={"Content-Type": "application/json"}), 413)
        assert client.put(f"/key-value-stores/{kvs}/records/big", content=big,
                          headers={"Content-Type": "application/json"}).status_code == 201
        many = b"[" + b",".join([b'{"i":1}'] * (MAX_PUSH_ITEMS + 1)) + b"]"
        refused = assert_error(client.post(f"/datasets/{dataset}/items", content=many,
                                           headers={"Content-Type": "application/json"}), 400)
        assert "at most 100000 items" in refused["message"]
        tiny = b"[" + b",".join([b"{}"] * (10 * MAX_PUSH_ITEMS + 1)) + b"]"
        assert_error(client.post(f"/datasets/{dataset}/items", content=tiny,
                                 headers={"Content-Type": "application/json"}), 400)
        assert platform.storages.list_items(dataset).total == 0
        assert client.post(f"/datasets/{dataset}/items", content=many[:-9] + b"]",
                           headers={"Content-Type": "application/json"}).status_code == 201


async def test_a_live_stream_client_that_falls_behind_is_ended_not_queued_for(
        user, actors_app, jp_serverapp, monkeypatch):
    """Each /stream/runs client has a bounded queue: past it the stream ends (the client reconnects and
    gets a new snapshot) instead of the server holding every change for a client that does not read."""
    from jupyter_actors.server.runs_stream import RunsStreamHandler

    from .conftest import off

    monkeypatch.setattr(RunsStreamHandler, "max_pending", 5)
    platform = actors_app.platform
    await off(define_actor, platform, "quick", "print('done')\n")
    run = await off(platform.start_run, "quick", memory_mb=TEST_MEMORY_MB)
    await off(wait_until, lambda: platform.get_run(run["id"])["status"] == "SUCCEEDED", 120)
    row = platform.get_run(run["id"])
    changes = jp_serverapp.web_app.settings["jupyter_actors_run_events"]
    url = f"{str(user.base_url).split('/v2')[0]}/stream/runs"
    async with user.stream("GET", url) as response:
        lines = response.aiter_lines()
        while not (await asyncio.wait_for(lines.__anext__(), 30)).startswith("event: snapshot"):
            pass
        for _ in range(20):  # in one loop turn: the handler cannot drain in between
            changes._wake(row)
        events = 0
        with pytest.raises((StopAsyncIteration, httpx.RemoteProtocolError)):  # ended, mid-chunk or not
            while True:
                line = await asyncio.wait_for(lines.__anext__(), 30)
                events += line.startswith("event: run")
    assert events <= 5
