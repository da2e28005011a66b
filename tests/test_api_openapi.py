"""The OpenAPI document next to the handlers: valid, in step with ``routes.ROUTES`` both ways, and
true of the real server - every operation is exercised and every response validated against it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_spec_validator import validate as validate_document
from werkzeug.datastructures import Headers, ImmutableMultiDict

import jupyter_actors.api
from jupyter_actors.api.base import allowed_methods
from jupyter_actors.api.routes import ROUTES
from jupyter_actors.platform.storages.signing import content_signature, record_signature

from .conftest import TEST_MEMORY_MB, wait_until
from .test_api_hostile import SLEEPER

DOCUMENT = Path(jupyter_actors.api.__file__).with_name("openapi.yaml")
METHODS = ("get", "head", "post", "put", "delete", "patch")


def load_document() -> dict:
    return yaml.safe_load(DOCUMENT.read_text())


def route_template(regex: str) -> str:
    """``/actors/([^/]+)/runs`` -> ``/actors/{}/runs``, and ``/actors/{actorId}/runs`` likewise."""
    return re.sub(r"\(\[\^/\]\+\)|\{[^}]+\}", "{}", regex)


def handler_methods(logic: type) -> set[str]:
    return {method.lower() for method in allowed_methods(logic)}


def test_document_is_valid_openapi():
    document = load_document()
    assert document["openapi"].startswith("3.1")
    validate_document(document)
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["properties"]["error"]["required"] == ["type", "message"]


def test_every_route_and_method_is_documented_and_nothing_else():
    documented = {
        (route_template(path), method)
        for path, item in load_document()["paths"].items() for method in METHODS if method in item
    }
    served = {(route_template(path), method) for path, logic, _ in ROUTES for method in handler_methods(logic)}
    assert served - documented == set(), "routes missing from openapi.yaml"
    assert documented - served == set(), "openapi.yaml documents routes that routes.py does not serve"


# -- the real server against the document -------------------------------------------------------------


class _Request:
    """openapi-core's Request protocol over an httpx request."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(url.query, keep_blank_values=True)),
            header=Headers(list(request.headers.items())), cookie=ImmutableMultiDict(),
        )
        self.content_type = request.headers.get("content-type", "").lower()
        self.body = request.content


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(list(response.headers.items()))
        self.content_type = response.headers.get("content-type", "").lower()
        self.data = response.content


class Recorder:
    """Keeps every exchange of a client for validation after the scenario has run."""

    def __init__(self) -> None:
        self.exchanges: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append(response)


def operation_of(document: dict, path: str, method: str, base_path: str) -> tuple[str, str] | None:
    """The documented (template, method) a concrete request path hits; exact segments beat templates."""
    relative = path[len(base_path):].rstrip("/") or "/"
    segments = relative.split("/")
    best = None
    for template in document["paths"]:
        parts = template.split("/")
        if len(parts) != len(segments) or method not in document["paths"][template]:
            continue
        if all(p == s or p.startswith("{") for p, s in zip(parts, segments, strict=True)):
            score = sum(p == s for p, s in zip(parts, segments, strict=True))
            if best is None or score > best[0]:
                best = (score, template)
    return (best[1], method) if best else None


async def test_real_responses_match_the_document(api_url, api_token, actors_app):
    document = load_document()
    document["servers"] = [{"url": f"{api_url}/v2"}]
    openapi = OpenAPI.from_dict(document)
    recorder = Recorder()
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"},
                                 timeout=120, event_hooks={"response": [recorder]}) as client:
        await walk_every_route(client, actors_app.platform)

    base_path = urlsplit(f"{api_url}/v2").path
    exercised = set()
    failures = []
    for response in recorder.exchanges:
        request = _Request(response.request)
        try:
            openapi.validate_response(request, _Response(response))
            if response.is_success and request.method != "head":
                openapi.validate_request(request)
        except Exception as exc:  # collect them all for one readable failure
            failures.append(f"{request.method.upper()} {request.path} -> {response.status_code}: {exc!r}"
                            f" {getattr(exc, '__cause__', '')!r} {response.text[:300]}")
        operation = operation_of(document, request.path, request.method, base_path)
        # 501 is the documented answer of an operation not supported here; other 5xx exercise nothing.
        if operation is not None and (response.status_code < 500 or response.status_code == 501):
            exercised.add(operation)
    assert not failures, "\n".join(failures)
    documented = {(path, method) for path, item in document["paths"].items() for method in METHODS if method in item}
    assert documented - exercised == set(), "operations the scenario never exercised"


async def walk_every_route(client: httpx.AsyncClient, platform) -> None:
    """One pass over every documented operation, in both actor spellings and both storage addressings."""

    async def call(method: str, path: str, expected: int | tuple[int, ...], **kwargs) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert response.status_code in allowed, (method, path, response.status_code, response.text[:500])
        return response

    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
               "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": SLEEPER}]}
    for spelling, name in (("actors", "doc"), ("acts", "doc-acts")):
        await call("GET", f"/{spelling}?my=true&sortBy=createdAt", 200)
        await call("GET", f"/{spelling}?sortBy=stats.lastRunStartedAt", 400)
        await call("POST", f"/{spelling}", 201, json={"name": name, "versions": [version]})
        await call("GET", f"/{spelling}/local~{name}", 200)
        await call("PUT", f"/{spelling}/{name}", 200, json={"title": f"Doc {spelling}"})
        await call("PUT", f"/{spelling}/{name}", 400, json={"isPublic": True})
        await call("GET", f"/{spelling}/{name}/versions", 200)
        await call("POST", f"/{spelling}/{name}/versions", 201, json=version)
        await call("GET", f"/{spelling}/{name}/versions/0.0", 200)
        env = f"/{spelling}/{name}/versions/0.0/env-vars"
        await call("POST", env, 201, json={"name": "DOC_SECRET", "value": "s", "isSecret": True})
        await call("POST", env, 409, json={"name": "DOC_SECRET", "value": "s"})
        await call("POST", env, 400, json={"name": "1bad", "value": "s"})
        await call("GET", env, 200)
        await call("GET", f"{env}/DOC_SECRET", 200)
        await call("PUT", f"{env}/DOC_SECRET", 200, json={"value": "t"})
        await call("DELETE", f"{env}/DOC_SECRET", 204)
        await call("GET", f"{env}/DOC_SECRET", 404)
        await call("PUT", f"/{spelling}/{name}/versions/0.0", 200, json={"buildTag": "latest"})
        await call("PUT", f"/{spelling}/{name}/versions/0.0", 400, json={"applyEnvVarsToBuild": True})
        await call("POST", f"/{spelling}/{name}/versions", 201, json={**version, "versionNumber": "0.1"})
        await call("DELETE", f"/{spelling}/{name}/versions/0.1", 204)
        await call("DELETE", f"/{spelling}/{name}/versions/0.0", 409)
        await call("POST", f"/{spelling}/{name}/validate-input", 200, json={"n": 1})
        build = (await call("POST", f"/{spelling}/{name}/builds?waitForFinish=60", 201)).json()["data"]
        build = wait_until(lambda b=build: platform.get_build(b["id"])["status"] == "SUCCEEDED" and b, 120)
        await call("GET", f"/{spelling}/{name}/builds", 200)
        await call("GET", f"/{spelling}/{name}/builds/default?waitForFinish=1", 200)
        await call("POST", f"/actor-builds/{build['id']}/abort", 200)
        await call("GET", f"/actor-builds/{build['id']}/openapi.json", 200)
        await call("GET", "/actor-builds?limit=5&desc=true", 200)
        await call("PUT", f"/{spelling}/{name}", 200, json={"taggedBuilds": {"doc": {"buildId": build["id"]}}})
        await call("PUT", f"/{spelling}/{name}", 200, json={"taggedBuilds": {"doc": None}, "name": f"{name}-renamed"})
        await call("PUT", f"/{spelling}/{name}-renamed", 200, json={"name": name})
        await call("PUT", f"/{spelling}/{name}", 400, json={"taggedBuilds": {"doc": {"buildId": "nope"}}})
        await call("GET", f"/actor-builds/{build['id']}?waitForFinish=1", 200)
        await call("GET", f"/actor-builds/{build['id']}/log", 200)
        await call("GET", f"/actor-builds/{build['id']}/log?stream=true", 200)
        await call("GET", f"/logs/{build['id']}?stream=1", 200)
        ad_hoc = base64.b64encode(json.dumps([{"eventTypes": ["ACTOR.RUN.CREATED"],
                                                "requestUrl": "http://127.0.0.1:9/"}]).encode()).decode()
        await call("POST", f"/{spelling}/{name}/runs?memory={TEST_MEMORY_MB}&webhooks={ad_hoc}", 201, json={"n": 1})
        await call("GET", f"/{spelling}/{name}/runs", 200)
        await call("GET", f"/{spelling}/{name}/runs/last", 200)
        await call("POST", f"/{spelling}/{name}/runs?memory=100", 400)

    runs = (await call("GET", "/actor-runs?desc=true", 200)).json()["data"]["items"]
    run_id, other_id = runs[0]["id"], runs[1]["id"]

    def logged():
        return b"sleeping" in platform.run_log(run_id)

    wait_until(logged, 60)
    await call("PUT", f"/actor-runs/{run_id}", 200, json={"statusMessage": "documented"})
    await call("POST", f"/actor-runs/{run_id}/resurrect", 409)
    await call("POST", f"/actor-runs/{run_id}/abort?gracefully=false", 200)
    await call("GET", f"/actor-runs/{run_id}?waitForFinish=30", 200)
    await call("POST", f"/actor-runs/{run_id}/abort", 409)
    await call("POST", f"/actor-runs/{run_id}/resurrect?memory={TEST_MEMORY_MB}", 200)
    wait_until(logged, 60)
    await call("POST", f"/actor-runs/{run_id}/abort", 200)
    await call("GET", f"/actor-runs/{run_id}?waitForFinish=30", 200)
    await call("GET", f"/actor-runs/{run_id}/log?stream=true", 200)
    await call("GET", f"/logs/{run_id}", 200)
    await call("GET", f"/actor-runs/{run_id}/stats-samples", 200)
    await call("GET", "/actors/doc/runs/last/stats-samples", 200)
    await call("GET", "/acts/doc-acts/runs/last/stats-samples", 200)
    for charged in (f"/actor-runs/{run_id}", "/actors/doc/runs/last", "/acts/doc-acts/runs/last"):
        await call("POST", f"{charged}/charge", 501, json={"eventName": "doc"})
    await call("POST", "/actor-runs/nope/charge", 404, json={"eventName": "doc"})
    await call("GET", "/store", 501)
    await call("GET", "/actor-runs/nope", 404)
    await call("POST", "/actor-builds/nope/abort", 404)
    await call("GET", "/acts/nope/builds/default", 404)
    assert (await call("GET", "/users/me", 200)).json()["data"]["proxy"]["password"]
    await call("GET", "/users/someone-else", 404)
    await call("GET", "/users/me/limits", 200)
    await call("PUT", "/users/me/limits", 200, json={"maxActorMemoryGbytes": platform.config.memory_limit_mb / 1024})
    await call("PUT", "/users/me/limits", 400, json={"maxMonthlyUsageUsd": None, "maxActorMemoryGbytes": -1})
    await call("GET", "/users/me/usage/monthly?date=2020-01-31", 200)
    await call("GET", "/users/local/usage/monthly", 200)

    await call("GET", "/actor-runs?status=ABORTED,SUCCEEDED&startedAfter=2020-01-01T00:00:00Z"
                      "&startedBefore=2100-01-01T00:00:00.000Z", 200)

    # The last run of each actor: doc's (other_id) still runs, doc-acts's (run_id) is aborted.
    for spelling, name in (("actors", "doc"), ("acts", "doc-acts")):
        last = f"/{spelling}/{name}/runs/last"
        await call("GET", f"{last}?status=RUNNING,ABORTED&origin=API&waitForFinish=1", 200)
        await call("GET", f"{last}?status=SUCCEEDED", 404)
        await call("PUT", last, 200 if spelling == "actors" else 409, json={"statusMessage": "last"})
        await call("GET", f"{last}/log", 200)
        await call("POST", f"/{spelling}/nope/runs/last/metamorph?targetActorId=doc", 404)
        await call("POST", f"/{spelling}/nope/runs/last/reboot", 404)
        if spelling == "actors":  # doc's last run runs: rebooted, then metamorphed into doc-acts
            await call("POST", f"{last}/reboot?status=RUNNING", 200)
            wait_until(lambda: (r := platform.get_run(other_id))["stop_intent"] is None and r["reboot_count"], 60)
            morphed = (await call("POST", f"{last}/metamorph?targetActorId=doc-acts&status=RUNNING&origin=API", 200,
                                  json={"n": 2})).json()
            assert morphed["data"]["stats"]["metamorph"] == 1 and morphed["data"]["id"] == other_id
        else:  # doc-acts's last run is aborted
            await call("POST", f"{last}/metamorph?targetActorId=doc&build=latest", 409)
            await call("POST", f"{last}/reboot", 409)
    await call("POST", f"/actor-runs/{run_id}/metamorph?targetActorId=doc&contentType=application/json", 409)
    await call("POST", f"/actor-runs/{run_id}/metamorph", 400)  # which actor?
    await call("POST", f"/actor-runs/{run_id}/reboot", 409)
    await call("POST", "/actor-runs/nope/metamorph?targetActorId=doc", 404)
    await call("POST", "/actor-runs/nope/reboot", 404)
    await call("POST", "/actors/doc/runs/last/resurrect", 409)
    await call("POST", "/actors/doc/runs/last/abort?status=ABORTED", 404)
    await call("POST", f"/acts/doc-acts/runs/last/resurrect?memory={TEST_MEMORY_MB}", 200)
    wait_until(logged, 60)
    await call("POST", "/acts/doc-acts/runs/last/abort?gracefully=false", 200)
    await call("GET", "/acts/doc-acts/runs/last?waitForFinish=30", 200)

    task_last_run = await walk_task_routes(call, platform)
    await walk_schedule_routes(call)
    # Webhooks: created on an actor (again with its idempotency key), tested, listed, changed, deleted.
    hook_body = {"eventTypes": ["ACTOR.RUN.SUCCEEDED"], "condition": {"actorId": "doc"},
                 "requestUrl": "http://127.0.0.1:9/hook", "idempotencyKey": "doc-hook",
                 "payloadTemplate": '{"id": {{resource.id}}}'}
    hook = (await call("POST", "/webhooks", 201, json=hook_body)).json()["data"]
    await call("POST", "/webhooks", 200, json=hook_body)
    await call("POST", "/webhooks", 400, json={**hook_body, "eventTypes": ["ACTOR.RUN.DONE"]})
    await call("GET", "/webhooks?limit=10&desc=true", 200)
    await call("GET", f"/webhooks/{hook['id']}", 200)
    await call("PUT", f"/webhooks/{hook['id']}", 200, json={"description": "documented", "condition": {}})
    dispatch = (await call("POST", f"/webhooks/{hook['id']}/test", 201)).json()["data"]
    await call("GET", f"/webhooks/{hook['id']}/dispatches?limit=5", 200)
    await call("GET", "/webhook-dispatches?desc=true", 200)
    await call("GET", f"/webhook-dispatches/{dispatch['id']}", 200)
    await call("GET", "/webhook-dispatches/nope", 404)
    for spelling in ("actors", "acts"):
        await call("GET", f"/{spelling}/doc/webhooks?offset=0", 200)
    task_hook = (await call("POST", "/webhooks", 201, json={**hook_body, "idempotencyKey": None,
                                                             "condition": {"actorTaskId": "local~doc-task"}}))
    await call("GET", "/actor-tasks/doc-task/webhooks?limit=5&desc=true", 200)
    await call("GET", "/actor-tasks/nope/webhooks", 404)
    await call("DELETE", f"/webhooks/{task_hook.json()['data']['id']}", 204)
    await call("DELETE", f"/webhooks/{hook['id']}", 204)
    await call("GET", f"/webhooks/{hook['id']}", 404)

    # Storages: by id under /{collection}/..., and as the run's default under /actor-runs/{id}/...
    collections = {"key-value-stores": "key-value-store", "datasets": "dataset", "request-queues": "request-queue"}
    created = {}
    for collection in collections:
        await call("GET", f"/{collection}?unnamed=true", 200)
        await call("GET", f"/{collection}?ownership=sharedWithMe", 200)
        await call("GET", f"/{collection}?ownership=everyone", 400)
        created[collection] = (await call("POST", f"/{collection}?name=doc-{collection}", 201,
                                          json={"title": "Doc"})).json()["data"]["id"]
        await call("POST", f"/{collection}?name=doc-{collection}", 200)
        await call("POST", f"/{collection}?name=bad..name", 400)
    # Storage schemas: a dataset's views, a store's collections (an actor's runs get its own).
    await call("POST", "/datasets?name=doc-viewed", 201, json={"schema": {"views": {"one": {"transformation": {
        "limit": 1}}}}})
    await call("GET", "/datasets/doc-viewed/items?view=one", 200)
    await call("POST", "/key-value-stores?name=doc-collected", 201,
               json={"schema": {"collections": {"docs": {"keyPrefix": "doc"}}}})
    await call("GET", "/key-value-stores/doc-collected/keys?collection=docs", 200)
    # ... applied to writes: a dataset schema's fields to pushed items, a collection's rules to its records.
    await call("POST", "/datasets?name=doc-validated", 201, json={"schema": {"fields": {
        "type": "object", "required": ["name"]}}})
    refused = await call("POST", "/datasets/doc-validated/items", 400, json=[{"name": "a"}, {}])
    assert refused.json()["error"]["data"]["invalidItems"][0]["itemPosition"] == 1
    await call("POST", "/key-value-stores?name=doc-checked", 201,
               json={"schema": {"collections": {"report": {"key": "REPORT", "contentTypes": ["application/json"]}}}})
    await call("PUT", "/key-value-stores/doc-checked/records/REPORT", 400, content=b"x",
               headers={"Content-Type": "text/plain"})
    await call("GET", "/key-value-stores/doc-collected/keys?collection=nope", 400)
    await call("POST", "/request-queues?name=doc-schema", 400, json={"schema": {}})
    prefixes = [(f"/key-value-stores/{created['key-value-stores']}", f"/datasets/{created['datasets']}",
                 f"/request-queues/{created['request-queues']}"),
                tuple(f"/actor-runs/{run_id}/{single}" for single in collections.values()),
                tuple(f"/actors/doc/runs/last/{single}" for single in collections.values()),
                tuple(f"/acts/doc-acts/runs/last/{single}" for single in collections.values()),
                tuple(f"{task_last_run}/{single}" for single in collections.values())]
    for kvs, dataset, queue in prefixes:
        for prefix in (kvs, dataset, queue):
            await call("GET", prefix, 200)
            await call("PUT", prefix, 200, json={"generalAccess": None, "title": "Documented"})
            await call("PUT", prefix, 400, json={"generalAccess": "ANYONE_WITH_ID_CAN_READ"})
        await call("PUT", f"{kvs}/records/doc", 201, content=b'{"a": 1}', headers={"Content-Type": "application/json"})
        await call("POST", f"{kvs}/records/text", 201, content=b"hello", headers={"Content-Type": "text/plain"})
        await call("GET", f"{kvs}/records/doc?attachment=true", 200)
        await call("GET", f"{kvs}/records/text", 200)
        await call("HEAD", f"{kvs}/records/doc", 200)
        await call("HEAD", f"{kvs}/records/missing", 404)
        await call("GET", f"{kvs}/keys?limit=10", 200)
        if kvs.startswith("/key-value-stores/"):  # signed public URLs: on the storages' own routes
            kvs_meta = (await call("GET", kvs, 200)).json()["data"]
            ds_meta = (await call("GET", dataset, 200)).json()["data"]
            kvs_key, ds_key = kvs_meta["urlSigningSecretKey"], ds_meta["urlSigningSecretKey"]
            await call("GET", f"{kvs}/records/doc?signature={record_signature(kvs_key, 'doc')}", 200)
            await call("GET", f"{kvs}/keys?signature={content_signature(kvs_key, kvs_meta['id'])}", 200)
            await call("GET", f"{dataset}/items?signature={content_signature(ds_key, ds_meta['id'])}", 200)
        await call("DELETE", f"{kvs}/records/text", 204)
        await call("DELETE", f"{kvs}/records/text", 404)
        await call("POST", f"{dataset}/items", 201, json=[{"a": 1, "b": "x"}, {"a": 2}])
        await call("POST", f"{dataset}/items", 400, json=[1])
        for fmt in ("json", "jsonl", "csv", "xlsx", "xml", "rss", "html"):
            await call("GET", f"{dataset}/items?format={fmt}&limit=5&desc=true&attachment=true", 200)
        await call("GET", f"{dataset}/items?format=xml&unwind=a&flatten=b&skipHidden=1&xmlRoot=r&xmlRow=i&bom=0", 200)
        await call("GET", f"{dataset}/items?view=overview", 400)
        await call("GET", f"{dataset}/statistics", 200)
        await call("POST", f"{queue}/requests?forefront=true", 201, json={"url": "https://example.com/a"})
        added = (await call("POST", f"{queue}/requests/batch", 201,
                            json=[{"url": "https://example.com/b"}, {"url": "https://example.com/c"}])).json()["data"]
        request_id = added["processedRequests"][0]["requestId"]
        await call("GET", f"{queue}/requests?limit=10", 200)
        await call("GET", f"{queue}/head?limit=5", 200)
        locked = (await call("POST", f"{queue}/head/lock?lockSecs=60&limit=2&clientKey=doc", 200)).json()["data"]
        locked_id = locked["items"][0]["id"]
        await call("POST", f"{queue}/head/lock?limit=2", 400)
        await call("PUT", f"{queue}/requests/{locked_id}/lock?lockSecs=30&clientKey=doc", 200)
        await call("PUT", f"{queue}/requests/{locked_id}/lock?lockSecs=30&clientKey=other", 403)
        await call("GET", f"{queue}/requests?filter=locked", 200)
        await call("DELETE", f"{queue}/requests/{locked_id}/lock?clientKey=doc&forefront=true", 204)
        await call("POST", f"{queue}/requests/unlock?clientKey=doc", 200)
        request = (await call("GET", f"{queue}/requests/{request_id}", 200)).json()["data"]
        await call("PUT", f"{queue}/requests/{request_id}", 200,
                   json={**request, "handledAt": "2024-01-01T00:00:00.000Z"})
        await call("DELETE", f"{queue}/requests/batch", 200, json=[{"uniqueKey": "https://example.com/c"}])
        await call("DELETE", f"{queue}/requests/{request_id}", 204)
        await call("GET", f"{queue}/requests/{request_id}", 404)
    await call("PUT", f"/actor-runs/{run_id}/dataset", 200, json={"name": "renamed-default"})
    for collection, single in collections.items():
        await call("DELETE", f"/{collection}/{created[collection]}", 204)
        await call("DELETE", f"/actor-runs/{run_id}/{single}", 204)
        await call("DELETE", f"/actors/doc/runs/last/{single}", 204)
        await call("DELETE", f"/acts/doc-acts/runs/last/{single}", 404)  # deleted by run id just above
        await call("DELETE", f"{task_last_run}/{single}", 204)
        await call("GET", f"/{collection}/{created[collection]}", 404)

    wait_until(lambda: platform.get_run(other_id)["status"] == "RUNNING", 60)
    await call("POST", f"/actor-runs/{other_id}/abort", 200)
    wait_until(lambda: platform.get_run(other_id)["status"] == "ABORTED", 60)
    await call("DELETE", f"/actor-runs/{other_id}", 204)
    await call("GET", f"/actor-runs/{other_id}", 404)
    await call("DELETE", "/actors/doc/runs/last", 404)  # its only run is gone
    await call("DELETE", "/acts/doc-acts/runs/last", 204)
    await call("GET", "/acts/doc-acts/runs/last", 404)
    doc_build = platform.list_builds("doc")[0]["id"]
    await call("DELETE", f"/actor-builds/{doc_build}", 204)
    await call("DELETE", "/actors/doc", 204)
    await call("DELETE", "/acts/local~doc-acts", 204)
    await call("GET", "/acts/doc", 404)
    await call("DELETE", "/actors/doc-task-actor", 204)  # with its task
    assert json.loads((await call("GET", "/actors", 200)).text)["data"]["items"] == []


async def walk_task_routes(call, platform) -> str:
    """Every task operation, and every run operation under a task's last run; returns that last run's path
    (its storages are walked with the others)."""
    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
               "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": "print('task run')"}]}
    await call("POST", "/actors", 201, json={"name": "doc-task-actor", "versions": [version]})
    build = (await call("POST", "/actors/doc-task-actor/builds?waitForFinish=60", 201)).json()["data"]
    wait_until(lambda: platform.get_build(build["id"])["status"] == "SUCCEEDED", 120)
    await call("GET", "/actor-tasks", 200)
    body = {"actId": "local~doc-task-actor", "name": "doc-task", "input": {"a": 1}, "title": "Doc task",
            "options": {"memoryMbytes": TEST_MEMORY_MB, "timeoutSecs": 60, "build": "latest"},
            "actorStandby": {}, "publicConfig": {}}
    task_id = (await call("POST", "/actor-tasks", 201, json=body)).json()["data"]["id"]
    await call("POST", "/actor-tasks", 400, json={**body, "name": "other", "options": {"maxTotalChargeUsd": 1}})
    await call("POST", "/actor-tasks", 201, json={"actId": "doc-task-actor", "name": "doc-task-2"})
    await call("GET", "/actor-tasks?offset=0&limit=10&desc=true", 200)
    await call("GET", f"/actor-tasks/{task_id}", 200)
    await call("PUT", "/actor-tasks/local~doc-task", 200, json={"description": "doc", "options": {"build": None}})
    await call("GET", "/actor-tasks/doc-task/input", 200)
    await call("PUT", "/actor-tasks/doc-task/input", 200, json={"a": 2})
    await call("PUT", "/actor-tasks/doc-task/input", 400, json=[1])
    await call("DELETE", "/actor-tasks/doc-task-2", 204)
    await call("GET", "/actor-tasks/doc-task-2", 404)
    last = "/actor-tasks/doc-task/runs/last"
    await call("GET", last, 404)
    await call("POST", "/actor-tasks/doc-task/runs?waitForFinish=60", 201, json={"b": 1})
    await call("POST", "/actor-tasks/doc-task/runs?maxItems=0", 400)
    await call("GET", "/actor-tasks/doc-task/runs?desc=true&status=SUCCEEDED,RUNNING", 200)
    await call("GET", f"{last}?status=SUCCEEDED&origin=API&waitForFinish=30", 200)
    await call("PUT", last, 409, json={"statusMessage": "finished already"})
    await call("GET", f"{last}/log", 200)
    await call("GET", f"{last}/stats-samples", 200)
    await call("POST", f"{last}/charge", 501, json={"eventName": "doc"})
    await call("POST", f"{last}/abort", 409)
    await call("POST", f"{last}/metamorph?targetActorId=doc", 409)  # finished
    await call("POST", f"{last}/reboot", 409)
    await call("POST", "/actor-tasks/nope/runs/last/metamorph?targetActorId=doc", 404)
    await call("POST", "/actor-tasks/nope/runs/last/reboot", 404)
    await call("POST", f"{last}/resurrect?memory={TEST_MEMORY_MB}", 200)
    await call("GET", f"{last}?waitForFinish=30", 200)
    second = (await call("POST", "/actor-tasks/doc-task/runs?waitForFinish=60", 201)).json()["data"]
    wait_until(lambda: platform.get_run(second["id"])["status"] == "SUCCEEDED", 60)
    await call("DELETE", last, 204)  # the second run; the first becomes the last again
    return last


async def walk_schedule_routes(call) -> None:
    """Every schedule operation (firing is tested with a moved clock in test_api_schedules.py)."""
    await call("GET", "/schedules", 200)
    body = {"name": "doc-schedule", "cronExpression": "0 3 * * *", "timezone": "Europe/Prague", "isEnabled": True,
            "isExclusive": True, "title": "Doc", "notifications": {"email": False}, "actions": [
                {"type": "RUN_ACTOR", "actorId": "doc-task-actor", "runInput": {"body": "{}", "contentType": None},
                 "runOptions": {"memoryMbytes": TEST_MEMORY_MB}},
                {"type": "RUN_ACTOR_TASK", "actorTaskId": "doc-task", "input": {"c": 3}}]}
    schedule_id = (await call("POST", "/schedules", 201, json=body)).json()["data"]["id"]
    await call("POST", "/schedules", 400, json={**body, "name": "doc-bad", "cronExpression": "* * *"})
    await call("POST", "/schedules", 201, json={"name": "doc-schedule-2", "cronExpression": "@daily"})
    await call("GET", "/schedules?offset=0&limit=5&desc=true", 200)
    await call("GET", f"/schedules/{schedule_id}", 200)
    await call("PUT", "/schedules/local~doc-schedule", 200, json={"isEnabled": False, "description": "off"})
    await call("PUT", "/schedules/doc-schedule", 400, json={"timezone": "Nowhere/Land"})
    await call("GET", "/schedules/doc-schedule/log", 200)
    await call("GET", "/schedules/nope/log", 404)
    await call("DELETE", "/schedules/doc-schedule-2", 204)
    await call("DELETE", f"/schedules/{schedule_id}", 204)
    await call("GET", f"/schedules/{schedule_id}", 404)


async def test_what_the_document_forbids_the_api_refuses_and_the_other_way_round(api_url, api_token, actors_app):
    """Each request here breaks a rule the API enforces: the document states the rule (openapi-core
    rejects the request) and the real server answers 400. Found apart by fuzzing the API against the
    document (schemathesis checks ST201 and ST202)."""
    from .conftest import define_actor

    platform = actors_app.platform
    define_actor(platform, "strict", SLEEPER)
    storages = platform.storages
    kvs = storages.get_or_create("key_value_stores", "strict-kvs")[0]["id"]
    ds = storages.get_or_create("datasets", "strict-ds")[0]["id"]
    rq = storages.get_or_create("request_queues", "strict-rq")[0]["id"]
    storages.set_record(kvs, "r", b"x", "text/plain")
    document = load_document()
    document["servers"] = [{"url": f"{api_url}/v2"}]
    openapi = OpenAPI.from_dict(document)
    files = [{"name": "main.py", "format": "TEXT", "content": "print(1)"}]
    cases = [
        ("POST", "/key-value-stores?name=bad..name", None),
        ("POST", "/datasets?name=" + "n" * 300, None),
        ("GET", f"/key-value-stores/{kvs}/keys?limit=0", None),
        ("GET", f"/request-queues/{rq}/head?limit=0", None),
        ("GET", f"/request-queues/{rq}/requests?limit=0", None),
        ("GET", f"/actors?offset={2**64}", None),
        ("GET", f"/key-value-stores?limit={2**63}", None),
        ("POST", "/actors/strict/runs?memory=1000", None),
        ("POST", f"/actors/strict/runs?memory={TEST_MEMORY_MB}&timeout={2**31}", None),
        ("POST", f"/request-queues/{rq}/requests", {"url": "https://a.example", "handledAt": "2024-13-45T99:00:00Z"}),
        ("POST", f"/request-queues/{rq}/requests", {"url": "https://a.example", "retryCount": {}}),
        ("POST", f"/request-queues/{rq}/requests", {"url": "https://a.example", "userData": "x"}),
        ("DELETE", f"/request-queues/{rq}/requests/batch", [{"url": "https://a.example"}]),
        ("POST", "/actors/strict/versions", {"versionNumber": "0.1"}),
        ("POST", "/actors", {"name": "no-versions"}),
        ("PUT", "/actors/strict", {"versions": [{"versionNumber": "0.2", "sourceFiles": []}]}),
        ("PUT", f"/key-value-stores/{kvs}", None),
        ("GET", "/actor-runs?status=AAA", None),
        ("GET", "/actors/strict/runs?status=done", None),
        ("GET", f"/datasets/{ds}/items?format=csv&delimiter=", None),
        ("GET", f"/datasets/{ds}/items?format=csv&delimiter=%22", None),
        ("GET", f"/key-value-stores/{kvs}/records/r?attachment=", None),
        ("GET", "/actor-runs/nope/log?raw=null", None),
        ("POST", "/webhooks", {"eventTypes": ["ACTOR.RUN.DONE"], "condition": {"actorId": "strict"},
                               "requestUrl": "http://127.0.0.1:9/"}),
        ("POST", "/actors/strict/builds?useCache=null", None),
        ("POST", "/actors", {"name": "env", "versions": [{"versionNumber": "0.0", "sourceFiles": files,
                                                          "envVars": [{"name": "A", "isSecret": "no"}]}]}),
    ]
    before = (platform.list_actors(), platform.list_runs(), [storages.list_keys(kvs)["items"]])
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"},
                                 timeout=60) as client:
        for method, path, body in cases:
            response = await client.request(method, path, **({} if body is None else {"json": body}))
            assert response.status_code == 400, (method, path, response.status_code, response.text[:300])
            try:
                openapi.validate_request(_Request(response.request))
            except Exception:  # any validation error: the document forbids it too
                continue
            raise AssertionError(f"openapi.yaml allows {method} {path} {body!r}, which the API refuses")
        # The control: a request within the rules passes the same validation.
        fine = await client.get(f"/actor-runs?status=SUCCEEDED&offset={2**63 - 1}&limit=1")
        assert fine.status_code == 200
        openapi.validate_request(_Request(fine.request))
        fine = await client.post(f"/request-queues/{rq}/requests", json={
            "url": "https://a.example/ok", "handledAt": "2024-01-31T12:00:00.000Z", "userData": {}})
        assert fine.status_code == 201
        openapi.validate_request(_Request(fine.request))
        # The HEAD of a record without a token is 401, and documented.
        async with httpx.AsyncClient(timeout=60) as anonymous:
            head = await anonymous.head(f"{api_url}/v2/key-value-stores/{kvs}/records/r")
        assert head.status_code == 401
        openapi.validate_response(_Request(head.request), _Response(head))
    assert (platform.list_actors(), platform.list_runs(), [storages.list_keys(kvs)["items"]]) == before
