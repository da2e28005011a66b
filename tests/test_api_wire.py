"""Exact wire behaviour of the user API in a real Jupyter server: compression on every write endpoint,
envelopes vs bare bodies, pagination headers, record content types, the shapes apify-client's own
pydantic models demand, run logs, ``waitForFinish``, id spellings and the run-chained storage paths.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
import time
import zlib

import brotli
import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client import _models as models
from pydantic import BaseModel

from jupyter_actors.api import base
from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES, REQUEST_QUEUES

from .conftest import TEST_MEMORY_MB, define_actor, wait_until
from .test_api_hostile import SLEEPER, user_client

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
BUILD_NUMBER = re.compile(r"^\d{1,2}\.\d{1,2}\.[1-9]\d{0,4}$")
ENCODERS = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data)[2:-4],  # some clients send deflate without the zlib wrapper
}
QUICK = "print('quick', flush=True)\n"
CHATTY = """
import sys
print('first line')
print('second line', file=sys.stderr)
print()
print('multi\\nline\\nprint', flush=True)
sys.stdout.write('no newline at the end')
"""


@pytest.fixture
def user(api_url, api_token):
    return user_client(api_url, api_token)


def data(response: httpx.Response, model: type[BaseModel], status: int = 200) -> dict:
    """The ``{"data": ...}`` envelope, validated by apify-client's own model, with tz-aware timestamps."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"data"}, body
    assert_aware(model.model_validate(body))
    return body["data"]


def assert_aware(value: object) -> None:
    """Every datetime anywhere in a validated model carries a timezone (pydantic's AwareDatetime too)."""
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, value
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            assert_aware(getattr(value, field))
    elif isinstance(value, (list, tuple)):
        for item in value:
            assert_aware(item)
    elif isinstance(value, dict):
        for item in value.values():
            assert_aware(item)


def encode(encoding: str, payload: bytes) -> tuple[bytes, dict]:
    header = "deflate" if encoding == "raw-deflate" else encoding
    return ENCODERS[encoding](payload), {"Content-Encoding": header}


# -- compression ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
async def test_compressed_bodies_on_every_write_endpoint(user, actors_app, encoding):
    storages = actors_app.platform.storages
    async with user:
        kvs = data(await user.post("/key-value-stores?name=packed"), models.KeyValueStoreResponse, 201)["id"]
        ds = data(await user.post("/datasets?name=packed"), models.DatasetResponse, 201)["id"]
        rq = data(await user.post("/request-queues?name=packed"), models.RequestQueueResponse, 201)["id"]

        record = json.dumps({"text": "ž" * 3000}).encode()
        body, headers = encode(encoding, record)
        put = await user.put(f"/key-value-stores/{kvs}/records/packed", content=body,
                             headers={**headers, "Content-Type": "application/json; charset=utf-8"})
        assert put.status_code == 201
        assert storages.get_record(kvs, "packed") == (record, "application/json; charset=utf-8")

        items = [{"i": i, "pad": "x" * 100} for i in range(50)]
        body, headers = encode(encoding, json.dumps(items).encode())
        assert (await user.post(f"/datasets/{ds}/items", content=body, headers=headers)).status_code == 201
        assert json.loads(storages.list_items(ds).json_array()) == items

        requests = [{"url": f"https://example.com/{i}", "uniqueKey": f"k{i}"} for i in range(20)]
        body, headers = encode(encoding, json.dumps(requests).encode())
        added = data(await user.post(f"/request-queues/{rq}/requests/batch", content=body, headers=headers),
                     models.BatchAddResponse, 201)
        assert len(added["processedRequests"]) == 20
        body, headers = encode(encoding, json.dumps({"url": "https://example.com/one"}).encode())
        one = data(await user.post(f"/request-queues/{rq}/requests", content=body, headers=headers),
                   models.AddRequestResponse, 201)
        handled = {"url": "https://example.com/one", "uniqueKey": "https://example.com/one",
                   "handledAt": "2024-01-01T00:00:00.000Z"}
        body, headers = encode(encoding, json.dumps(handled).encode())
        data(await user.put(f"/request-queues/{rq}/requests/{one['requestId']}", content=body, headers=headers),
             models.UpdateRequestResponse)
        assert storages.get(REQUEST_QUEUES, rq)["handledRequestCount"] == 1

        body, headers = encode(encoding, b'{"name": "packed-renamed"}')
        renamed = data(await user.put(f"/datasets/{ds}", content=body, headers=headers), models.DatasetResponse)
        assert renamed["name"] == "packed-renamed"

        source = {"name": f"packed-{encoding}", "versions": [{
            "versionNumber": "0.0", "sourceType": "SOURCE_FILES",
            "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": QUICK + "#" * 2000}]}]}
        body, headers = encode(encoding, json.dumps(source).encode())
        data(await user.post("/actors", content=body, headers=headers), models.ActorResponse, 201)


async def test_compressed_run_input_and_status_message(user, actors_app):
    define_actor(actors_app.platform, "sleeper", SLEEPER)
    run_input = {"numbers": list(range(500))}
    async with user:
        for encoding in sorted(ENCODERS):
            body, headers = encode(encoding, json.dumps(run_input).encode())
            run = data(await user.post(f"/acts/local~sleeper/runs?memory={TEST_MEMORY_MB}", content=body,
                                       headers={**headers, "Content-Type": "application/json"}),
                       models.RunResponse, 201)
            stored = actors_app.platform.storages.get_record(run["defaultKeyValueStoreId"], "INPUT")
            assert json.loads(stored[0]) == run_input and stored[1] == "application/json"
            wait_until(lambda run=run: actors_app.platform.get_run(run["id"])["status"] == "RUNNING", 60)
            body, headers = encode(encoding, json.dumps({"statusMessage": "m" * 900}).encode())
            updated = data(await user.put(f"/actor-runs/{run['id']}", content=body, headers=headers),
                           models.RunResponse)
            assert updated["statusMessage"] == "m" * 900
            await user.post(f"/actor-runs/{run['id']}/abort")


# -- datasets: pagination headers, bare arrays, exports, options ----------------------------------------


async def test_items_pagination_headers_and_bare_array(user, actors_app, api_url, api_token):
    storages = actors_app.platform.storages
    ds = storages.get_or_create(DATASETS, "paged")[0]["id"]
    storages.push_items(ds, [{"i": i} for i in range(25)])
    async with user:
        for query, expected in (
            ("", {"Total": "25", "Offset": "0", "Count": "25", "Limit": "999999999999", "Desc": "false"}),
            ("?offset=20&limit=10", {"Total": "25", "Offset": "20", "Count": "5", "Limit": "10", "Desc": "false"}),
            ("?offset=5&limit=3&desc=true", {"Total": "25", "Offset": "5", "Count": "3", "Limit": "3",
                                            "Desc": "true"}),
            ("?offset=100", {"Total": "25", "Offset": "100", "Count": "0", "Limit": "999999999999",
                             "Desc": "false"}),
        ):
            response = await user.get(f"/datasets/{ds}/items{query}")
            assert response.status_code == 200
            for name, value in expected.items():
                assert response.headers[f"X-Apify-Pagination-{name}"] == value, (query, name)
            body = response.json()
            assert isinstance(body, list) and len(body) == int(expected["Count"])
        assert [item["i"] for item in (await user.get(f"/datasets/{ds}/items?offset=5&limit=3&desc=true")).json()] \
            == [19, 18, 17]

    client = ApifyClientAsync(token=api_token, api_url=api_url)
    page = await client.dataset(ds).list_items(offset=20, limit=10)
    assert (page.total, page.offset, page.count, page.limit, page.desc) == (25, 20, 5, 10, False)
    assert [item["i"] async for item in client.dataset(ds).iterate_items(desc=True, chunk_size=7)] == \
        list(range(24, -1, -1))


async def test_items_options_and_exports(user, actors_app):
    storages = actors_app.platform.storages
    ds = storages.get_or_create(DATASETS, "exported")[0]["id"]
    items = [{"a": 1, "b": {"deep": [1, 2]}, "#hidden": "h"}, {}, {"a": 3, "c": "x,y\n\"z\""}, {"#only": 1}]
    storages.push_items(ds, items)
    async with user:
        async def get(query: str) -> httpx.Response:
            response = await user.get(f"/datasets/{ds}/items?{query}")
            assert response.status_code == 200, response.text
            return response

        assert (await get("")).json() == items
        assert (await get("fields=a,c")).json() == [{"a": 1}, {}, {"a": 3, "c": "x,y\n\"z\""}, {}]
        assert (await get("omit=b,%23hidden")).json() == [{"a": 1}, {}, {"a": 3, "c": "x,y\n\"z\""}, {"#only": 1}]
        cleaned = await get("clean=true")
        assert cleaned.json() == [{"a": 1, "b": {"deep": [1, 2]}}, {"a": 3, "c": "x,y\n\"z\""}]
        # As in Apify, limit counts items before cleaning: the page may come back shorter than limit.
        assert (await get("clean=1&desc=1&limit=1")).json() == []
        assert (await get("clean=1&desc=1&limit=2")).json() == [{"a": 3, "c": "x,y\n\"z\""}]
        assert (await get("skipEmpty=true")).json() == [items[0], items[2], items[3]]

        as_json = await get("format=json")
        assert as_json.headers["content-type"].startswith("application/json") and as_json.json() == items
        as_jsonl = await get("format=jsonl")
        assert as_jsonl.headers["content-type"].startswith("application/jsonl")
        assert [json.loads(line) for line in as_jsonl.text.splitlines()] == items
        as_csv = await get("format=csv&clean=true&bom=false")
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert rows[0] == ["a", "b", "c"]
        assert rows[1] == ["1", '{"deep":[1,2]}', ""] and rows[2] == ["3", "", "x,y\n\"z\""]
        semicolons = await get("format=csv&fields=a&delimiter=%3B&bom=true&skipHeaderRow=true")
        assert semicolons.content.startswith(b"\xef\xbb\xbf") and semicolons.content[3:].split(b"\r\n")[0] == b"1"
        for bad in ("format=csv&delimiter=ab", "format=csv&delimiter=%22", "format=pdf", "bom=maybe"):
            response = await user.get(f"/datasets/{ds}/items?{bad}")
            assert response.status_code == 400 and set(response.json()["error"]) == {"type", "message"}


# -- records: content types verbatim, HEAD, keys -----------------------------------------------------------


async def test_records_keep_their_content_type_exactly(user, actors_app, api_url, api_token):
    kvs = actors_app.platform.storages.get_or_create(KEY_VALUE_STORES, "typed")[0]["id"]
    cases = {
        "csv": (b"a;b\r\n1;2\r\n", "text/csv; charset=windows-1250"),
        "custom": (b'{"v": 2}', "application/vnd.example+json; version=2"),
        "binary": (bytes(range(256)), "application/octet-stream"),
        "image": (b"\x89PNG\r\n\x1a\n....", "image/png"),
        "json": (b'{"x": [1, 2]}', "application/json; charset=utf-8"),
    }
    async with user:
        for key, (value, content_type) in cases.items():
            assert (await user.put(f"/key-value-stores/{kvs}/records/{key}", content=value,
                                   headers={"Content-Type": content_type})).status_code == 201
        untyped = await user.put(f"/key-value-stores/{kvs}/records/untyped", content=b"?",
                                 headers={"Content-Type": ""})
        assert untyped.status_code == 201
        cases["untyped"] = (b"?", "application/octet-stream")
        for key, (value, content_type) in cases.items():
            got = await user.get(f"/key-value-stores/{kvs}/records/{key}?attachment=true")
            assert got.status_code == 200 and got.content == value
            assert got.headers["content-type"] == content_type
            head = await user.head(f"/key-value-stores/{kvs}/records/{key}")
            assert head.status_code == 200 and head.headers["content-type"] == content_type
            assert head.headers["content-length"] == str(len(value))
        keys = data(await user.get(f"/key-value-stores/{kvs}/keys?limit=2"), models.ListOfKeysResponse)
        assert [k["key"] for k in keys["items"]] == ["binary", "csv"] and keys["isTruncated"] is True
        assert keys["nextExclusiveStartKey"] == "csv"
        rest = data(await user.get(f"/key-value-stores/{kvs}/keys?exclusiveStartKey=csv"), models.ListOfKeysResponse)
        assert [k["key"] for k in rest["items"]] == ["custom", "image", "json", "untyped"]
        assert all(k["recordPublicUrl"].split("?signature=")[0].endswith(f"/records/{k['key']}") for k in rest["items"])

    client = ApifyClientAsync(token=api_token, api_url=api_url)
    store = client.key_value_store(kvs)
    assert (await store.get_record("json"))["value"] == {"x": [1, 2]}
    assert (await store.get_record("csv"))["value"] == "a;b\r\n1;2\r\n"
    assert (await store.get_record("binary"))["value"] == bytes(range(256))
    assert await store.record_exists("image") and not await store.record_exists("nothing")
    assert await store.get_record("nothing") is None


# -- objects validated by apify-client's models, id spellings, run-chained paths ---------------------


async def test_objects_match_apify_client_models_under_every_spelling(user, actors_app):
    platform = actors_app.platform
    build = define_actor(platform, "quick", QUICK)
    actor_id = platform.get_actor("quick")["id"]
    assert BUILD_NUMBER.match(build["build_number"])
    async with user:
        for spelling in ("actors", "acts"):
            for ref in (actor_id, "quick", "local~quick"):
                actor = data(await user.get(f"/{spelling}/{ref}"), models.ActorResponse)
                assert actor["id"] == actor_id and actor["username"] == "local"
        data(await user.get("/actors"), models.ListOfActorsResponse)
        data(await user.get("/acts/local~quick/versions"), models.ListOfVersionsResponse)
        data(await user.get("/acts/local~quick/versions/0.0"), models.VersionResponse)
        builds = data(await user.get("/actors/local~quick/builds"), models.ListOfBuildsResponse)
        built = data(await user.get(f"/actor-builds/{builds['items'][0]['id']}"), models.BuildResponse)
        assert BUILD_NUMBER.match(built["buildNumber"]) and built["status"] == "SUCCEEDED"
        assert (await user.get(f"/actor-builds/{built['id']}/log")).headers["content-type"].startswith("text/plain")

        runs = []
        for path in ("/actors/quick/runs", "/acts/local~quick/runs", f"/actors/{actor_id}/runs"):
            started = data(await user.post(f"{path}?memory={TEST_MEMORY_MB}&waitForFinish=60", json={"n": 1}),
                           models.RunResponse, 201)
            assert started["status"] == "SUCCEEDED" and BUILD_NUMBER.match(started["buildNumber"])
            assert started["options"]["memoryMbytes"] == TEST_MEMORY_MB
            runs.append(started)
        listed = data(await user.get("/actor-runs?desc=true"), models.ListOfRunsResponse)
        assert [run["id"] for run in listed["items"]] == [run["id"] for run in reversed(runs)]
        data(await user.get("/acts/local~quick/runs"), models.ListOfRunsResponse)
        last = data(await user.get("/actors/local~quick/runs/last"), models.RunResponse)
        assert last["id"] == runs[-1]["id"]

        run = runs[0]
        kvs = data(await user.get(f"/actor-runs/{run['id']}/key-value-store"), models.KeyValueStoreResponse)
        assert kvs["id"] == run["defaultKeyValueStoreId"] and kvs["name"] is None
        assert (await user.get(f"/actor-runs/{run['id']}/key-value-store/records/INPUT")).json() == {"n": 1}
        keys = data(await user.get(f"/actor-runs/{run['id']}/key-value-store/keys"), models.ListOfKeysResponse)
        assert [k["key"] for k in keys["items"]] == ["INPUT"]
        dataset = data(await user.get(f"/actor-runs/{run['id']}/dataset"), models.DatasetResponse)
        assert dataset["id"] == run["defaultDatasetId"]
        pushed = await user.post(f"/actor-runs/{run['id']}/dataset/items", json=[{"via": "run"}])
        assert pushed.status_code == 201
        items = await user.get(f"/actor-runs/{run['id']}/dataset/items")
        assert items.json() == [{"via": "run"}] and items.headers["X-Apify-Pagination-Total"] == "1"
        queue = data(await user.get(f"/actor-runs/{run['id']}/request-queue"), models.RequestQueueResponse)
        assert queue["id"] == run["defaultRequestQueueId"]
        data(await user.post(f"/actor-runs/{run['id']}/request-queue/requests/batch",
                             json=[{"url": "https://example.com"}]), models.BatchAddResponse, 201)
        head = data(await user.get(f"/actor-runs/{run['id']}/request-queue/head"), models.RequestQueueHeadResponse)
        assert [r["url"] for r in head["items"]] == ["https://example.com"]
        request = data(await user.get(f"/request-queues/{queue['id']}/requests/{head['items'][0]['id']}"),
                       models.RequestResponse)
        assert request["uniqueKey"] == "https://example.com"
        data(await user.get(f"/request-queues/{queue['id']}/requests"), models.ListOfRequestsResponse)

        for kind, model in ((KEY_VALUE_STORES, models.KeyValueStoreResponse), (DATASETS, models.DatasetResponse),
                            (REQUEST_QUEUES, models.RequestQueueResponse)):
            path = {KEY_VALUE_STORES: "key-value-stores", DATASETS: "datasets", REQUEST_QUEUES: "request-queues"}[kind]
            created = data(await user.post(f"/{path}?name=spelled"), model, 201)
            again = data(await user.post(f"/{path}?name=spelled"), model, 200)
            assert again["id"] == created["id"]
            for ref in (created["id"], "spelled", "local~spelled"):
                assert data(await user.get(f"/{path}/{ref}"), model)["id"] == created["id"]
        data(await user.get("/key-value-stores?unnamed=true"), models.ListOfKeyValueStoresResponse)
        data(await user.get("/datasets"), models.ListOfDatasetsResponse)
        data(await user.get("/request-queues?desc=true"), models.ListOfRequestQueuesResponse)

        error = await user.get("/actor-runs/nope")
        assert error.status_code == 404
        models.ErrorResponse.model_validate(error.json())


# -- runs: log lines, waitForFinish cap ----------------------------------------------------------------


async def test_every_log_line_starts_with_an_iso_millisecond_timestamp(user, actors_app):
    define_actor(actors_app.platform, "chatty", CHATTY)
    async with user:
        run = data(await user.post(f"/actors/chatty/runs?memory={TEST_MEMORY_MB}&waitForFinish=60"),
                   models.RunResponse, 201)
        assert run["status"] == "SUCCEEDED"
        for query in ("", "?raw=false", "?stream=true"):
            log = await user.get(f"/actor-runs/{run['id']}/log{query}")
            assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
            lines = log.text.splitlines()
            assert len(lines) >= 7, log.text
            assert all(LOG_LINE.match(line) for line in lines), log.text
            texts = [LOG_LINE.sub("", line, count=1) for line in lines]
            for expected in ("first line", "second line", "multi", "line", "print", "no newline at the end"):
                assert expected in texts, texts
        assert (await user.get(f"/logs/{run['id']}")).text == log.text


async def test_wait_for_finish_is_capped(user, actors_app, monkeypatch):
    assert base.MAX_WAIT_SECS == 60  # Apify's cap; shortened below so the test does not wait a minute
    define_actor(actors_app.platform, "sleeper", SLEEPER)
    async with user:
        run = data(await user.post(f"/actors/sleeper/runs?memory={TEST_MEMORY_MB}"), models.RunResponse, 201)
        monkeypatch.setattr(base, "MAX_WAIT_SECS", 1)
        started = time.monotonic()
        held = data(await user.get(f"/actor-runs/{run['id']}?waitForFinish=999999"), models.RunResponse)
        elapsed = time.monotonic() - started
        assert held["status"] in ("READY", "RUNNING") and 0.9 <= elapsed < 10, elapsed
        started = time.monotonic()
        data(await user.post(f"/actors/sleeper/runs?memory={TEST_MEMORY_MB}&waitForFinish=999999"),
             models.RunResponse, 201)
        assert 0.9 <= time.monotonic() - started < 10
        for running in actors_app.platform.list_runs():
            await user.post(f"/actor-runs/{running['id']}/abort")
        monkeypatch.setattr(base, "MAX_WAIT_SECS", 60)
        started = time.monotonic()
        finished = data(await user.get(f"/actor-runs/{run['id']}?waitForFinish=999999"), models.RunResponse)
        assert finished["status"] == "ABORTED" and time.monotonic() - started < 30
