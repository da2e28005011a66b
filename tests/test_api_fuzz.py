"""Property-based fuzzing of the whole user API and actor API against ``api/openapi.yaml`` (schemathesis).

A real Jupyter server with the extension, seeded so that generated requests reach more than 404: an
actor with a build, finished runs whose default storages hold content, named storages with a record,
items and requests, and a running run whose token fuzzes the actor API. DELETE operations aim at
"victim" copies so that later cases still find the seeded things. Run starts are bounded by the memory
quota: the running run holds all of it, so every generated start and resurrect is validated and then
refused (429) instead of starting a container. The budget is fixed (seeded generation, a few examples
per operation and mode) so that the test takes about a minute or two on two cores.

Checks: no 5xx, status code, content type and body match the document; the server answers at the end.
"""

from __future__ import annotations

import collections

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import TEST_MEMORY_MB, extension_config, define_actor, wait_until
from .test_api_hostile import SLEEPER
from .test_api_openapi import DOCUMENT

EXAMPLES = 4  # per operation, per generation mode, per API: about 2 x 2 x 110 x 4 = 1760 cases
SEED = 19
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
QUOTA_MB = 2 * TEST_MEMORY_MB  # room for a build (2 GB); the sleeper run takes all of it
KINDS = {"key-value-store": "key_value_stores", "dataset": "datasets", "request-queue": "request_queues"}


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    # One sleeper run fills the quota: generated starts are validated, then refused without a container.
    return extension_config(tmp_path / "server-data", memory_limit_mb=QUOTA_MB)


def seed_storages(storages, kvs: str, dataset: str, queue: str) -> str:
    """Content in the three stores; returns the id of a request in the queue."""
    storages.set_record(kvs, "seeded", b'{"a": 1}', "application/json")
    storages.push_items(dataset, [{"a": 1, "b": "x"}, {"a": 2}])
    added = storages.add_requests(queue, [{"url": "https://example.com/a"}, {"url": "https://example.com/b"}])
    return added["processedRequests"][0]["requestId"]


def seed_set(platform, actor: str, run: dict | None) -> dict:
    """Path parameters of one seeded world: an actor, its build, a run and named storages, all with content."""
    storages = platform.storages
    actor_row = platform.get_actor(actor)
    named = {kind: storages.get_or_create(kind, f"{actor}-{kind.replace('_', '-')}")[0]["id"]
             for kind in KINDS.values()}
    ids = {"actorId": actor_row["id"], "buildId": platform.list_builds(actor)[0]["id"], "versionNumber": "0.0",
           "recordKey": "seeded", "userId": "me", "store": named}
    ids["requestId"] = seed_storages(storages, named["key_value_stores"], named["datasets"], named["request_queues"])
    if run is not None:
        run = platform.get_run(run["id"])
        ids["runId"] = run["id"]
        ids["runRequestId"] = seed_storages(storages, run["default_key_value_store_id"], run["default_dataset_id"],
                                            run["default_request_queue_id"])
    return ids


def path_parameters(operation, ids: dict) -> dict:
    """The seeded value of each of the operation's path parameters (the store of the path's kind)."""
    chosen = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        if name == "storeId":
            kind = next(k for single, k in KINDS.items() if operation.path.startswith(f"/{single}s/"))
            chosen[name] = ids["store"][kind]
        elif name == "requestId" and operation.path.startswith("/actor-runs/"):
            chosen[name] = ids["runRequestId"]
        elif name in ids:
            chosen[name] = ids[name]
    return chosen


def checks_for(response: requests.Response) -> list:
    """Every check, but a 501 saying in Apify's shape that the operation is not supported here is no server error."""
    if response.status_code == 501 and response.json().get("error", {}).get("type") == "not-supported":
        return [check for check in CHECKS if check is not not_a_server_error]
    return CHECKS


def fuzz(schema, base_url: str, token: str, seeded: dict, victims: dict, slow_run: str | None) -> tuple[int, list]:
    """Every operation, positive and negative data, ``EXAMPLES`` each; returns (cases run, failures).
    The answers' status codes are printed: most should be neither 401 nor 404."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    cases = 0
    statuses: collections.Counter = collections.Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        destructive = operation.method.upper() == "DELETE" or operation.path.endswith(
            ("/abort", "/resurrect", "/metamorph", "/reboot"))
        ids = victims if destructive else seeded
        fixed = path_parameters(operation, ids)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

            @hypothesis.settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.seed(SEED)
            @hypothesis.given(case=strategy)
            def run(case) -> None:
                nonlocal cases
                query = case.query if isinstance(case.query, dict) else None
                if query is not None:
                    # Bounded waits: a follower of a running run, or waitForFinish, would hold the case.
                    query.pop("waitForFinish", None)
                    if slow_run is not None and case.path_parameters.get("runId") == slow_run:
                        query.pop("stream", None)
                cases += 1
                try:
                    response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
                except requests.RequestException as exc:
                    failures.append(f"{case.method} {case.formatted_path}: {exc!r}")
                    return
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=checks_for(response), headers=headers)
                except Exception as exc:  # noqa: BLE001 - collect every failure for one readable report
                    failures.append(f"{response.request.method} {response.request.url} -> {response.status_code}:"
                                    f" {str(exc)[:600]}")

            run()
    print(f"{base_url}: {cases} cases, statuses {sorted(statuses.items())}")
    return cases, failures


async def test_fuzz_the_user_and_actor_apis_against_the_document(api_url, api_token, actors_app):
    from .conftest import off

    platform = actors_app.platform
    for name in ("fuzzed", "victim"):
        await off(define_actor, platform, name, "print('done')\n")
    finished = {}
    for name in ("fuzzed", "victim"):
        run = await off(platform.start_run, name, memory_mb=TEST_MEMORY_MB)
        await off(wait_until, lambda r=run: platform.get_run(r["id"])["status"] == "SUCCEEDED", 120)
        finished[name] = run
    seeded = await off(seed_set, platform, "fuzzed", finished["fuzzed"])
    victims = await off(seed_set, platform, "victim", finished["victim"])
    await off(define_actor, platform, "sleeper", SLEEPER)
    sleeper = await off(platform.start_run, "sleeper", memory_mb=QUOTA_MB)
    await off(wait_until, lambda: platform.get_run(sleeper["id"])["status"] == "RUNNING", 120)
    own = {**seeded, **(await off(seed_set, platform, "sleeper", sleeper))}
    own["store"] = {kind: platform.get_run(sleeper["id"])[f"default_{field}_id"]
                    for kind, field in (("key_value_stores", "key_value_store"), ("datasets", "dataset"),
                                        ("request_queues", "request_queue"))}

    schema = schemathesis.openapi.from_path(str(DOCUMENT))
    user_cases, user_failures = await off(fuzz, schema, f"{api_url}/v2", api_token, seeded, victims, None)
    actor_cases, actor_failures = await off(fuzz, schema, f"{platform.actor_api_url}/v2", sleeper["token"],
                                            own, victims, sleeper["id"])
    print(f"fuzzed {user_cases} user API cases and {actor_cases} actor API cases")

    # Alive at the end: both listeners answer, and the actor API still knows its run.
    status = await off(requests.get, api_url.removesuffix("/actors/api") + "/api/status",
                       headers={"Authorization": f"token {api_token}"}, timeout=10)
    assert status.status_code == 200
    mine = await off(requests.get, f"{platform.actor_api_url}/v2/actor-runs/{sleeper['id']}",
                     headers={"Authorization": f"Bearer {sleeper['token']}"}, timeout=10)
    assert mine.status_code == 200 and mine.json()["data"]["status"] == "RUNNING"
    assert user_cases > 500 and actor_cases > 500
    failures = user_failures + actor_failures
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:60])
