"""The contract with the real Python ``apify-client``: every public method of its resource and collection
clients, found by introspection, is called against a real server.

Each method has an entry in ``CONTRACT`` saying how to call it and what passes: it works with Apify's
semantics, or (``refused``) it answers 400/501 in Apify's error shape saying it is not supported here.
Never a 404 for a missing route, a 405 or a 5xx. A method the table does not list fails the first test by
name, so a new client version shows what it added.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import apify_client
import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client._resource_clients import (
    ActorClientAsync,
    BuildClientAsync,
    DatasetClientAsync,
    KeyValueStoreClientAsync,
    LogClientAsync,
    RequestQueueClientAsync,
    RunClientAsync,
)
from apify_client.errors import ApifyApiError
from apify_client.http_clients import ImpitHttpClientAsync

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import source_version, status
from .webhook_receiver import Receiver

#: Writes OUTPUT, two items and a request from its input; sleeps (until stopped) when asked to.
CONTRACT_ACTOR = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input() or {}
        await Actor.set_value("OUTPUT", {"n": actor_input.get("n")})
        await Actor.push_data([{"n": actor_input.get("n"), "i": i} for i in range(2)])
        if actor_input.get("sleep"):
            await Actor.set_status_message("sleeping")
            print("sleeping", flush=True)
            await asyncio.sleep(600)

asyncio.run(main())
"""


# -- what the installed client offers -------------------------------------------------------------------


def _client_class(method: Any) -> type | None:
    """The client class a method returns (its annotation is a string naming one), else None."""
    annotation = inspect.signature(method).return_annotation
    if isinstance(annotation, str):
        for namespace in (sys.modules[method.__module__], apify_client._resource_clients, apify_client):
            if isinstance(getattr(namespace, annotation, None), type):
                annotation = getattr(namespace, annotation)
                break
    return annotation if isinstance(annotation, type) and annotation.__name__.endswith("ClientAsync") else None


def client_methods() -> dict[str, type | None]:
    """Every public method reachable from ``ApifyClientAsync`` through the clients its methods return,
    as ``Class.method``, with the client class it returns (None when it makes a call)."""
    found: dict[str, type | None] = {}
    queue: list[type] = [ApifyClientAsync]
    seen: set[type] = set()
    while queue:
        cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        for name, method in inspect.getmembers(cls, callable):
            if name.startswith("_") or isinstance(method, type):
                continue
            made = _client_class(method)
            found[f"{cls.__name__}.{name}"] = made
            if made is not None:
                queue.append(made)
    return found


# -- the table -----------------------------------------------------------------------------------------


class Ctx:
    """What the steps share: the client, the ids they made, an HTTP client for public URLs."""

    def __init__(self, api_url: str, token: str, http: httpx.AsyncClient, receiver: Receiver) -> None:
        self.api_url = api_url
        self.token = token
        self.client = ApifyClientAsync(token=token, api_url=api_url, api_public_url=api_url, max_retries=0)
        self.http = http
        self.receiver = receiver
        self.ids: dict[str, str] = {}

    @property
    def actor(self) -> ActorClientAsync:
        return self.client.actor(self.ids["actor"])

    def run(self, key: str = "run") -> RunClientAsync:
        return self.client.run(self.ids[key])

    @property
    def dataset(self) -> DatasetClientAsync:
        return self.client.dataset(self.ids["dataset"])

    @property
    def store(self) -> KeyValueStoreClientAsync:
        return self.client.key_value_store(self.ids["store"])

    @property
    def queue(self) -> RequestQueueClientAsync:
        return self.client.request_queue(self.ids["queue"])


Step = Callable[[Ctx], Awaitable[None]]
#: ``Class.method`` -> the step that calls it; run in this order (later steps use what earlier ones made).
CONTRACT: dict[str, Step] = {}


def covers(*names: str) -> Callable[[Step], Step]:
    """Register a step as the call of each method it names."""

    def register(step: Step) -> Step:
        for name in names:
            assert name not in CONTRACT, name
            CONTRACT[name] = step
        return step

    return register


def refused(name: str, call: Callable[[Ctx], Awaitable[Any]], words: str) -> None:
    """A method not supported here: it must answer 400/501 in Apify's shape with ``words`` in the message."""

    async def step(ctx: Ctx) -> None:
        with pytest.raises(ApifyApiError) as raised:
            await call(ctx)
        error = raised.value
        assert error.status_code in (400, 501) and error.type and words in error.message, (
            error.status_code, error.type, error.message)

    covers(name)(step)


def factory(name: str, make: Callable[[Ctx], Any]) -> None:
    """A method that only makes a client (its methods have entries of their own)."""

    async def step(ctx: Ctx) -> None:
        made = make(ctx)
        if inspect.isawaitable(made):
            made = await made
        assert type(made).__name__ == (client_methods()[name] or type(None)).__name__, (name, made)

    covers(name)(step)


async def refusal(call: Awaitable[Any], words: str) -> None:
    """An option not supported here: 400 in Apify's shape, saying so."""
    with pytest.raises(ApifyApiError) as raised:
        await call
    assert raised.value.status_code == 400 and words in raised.value.message, raised.value.message


async def collect(iterator: Any) -> list:
    return [item async for item in iterator]


async def until(condition: Callable[[], Awaitable[Any]], timeout: float = 90, what: str = "") -> Any:
    """Await ``condition`` until it is truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return value


def _factories() -> None:
    top = {"actor": lambda c: c.client.actor(c.ids["actor"]), "build": lambda c: c.client.build(c.ids["build"]),
           "dataset": lambda c: c.client.dataset(c.ids["dataset"]), "log": lambda c: c.client.log(c.ids["run"]),
           "key_value_store": lambda c: c.client.key_value_store(c.ids["store"]),
           "request_queue": lambda c: c.client.request_queue(c.ids["queue"]),
           "run": lambda c: c.client.run(c.ids["run"]), "schedule": lambda c: c.client.schedule("x"),
           "task": lambda c: c.client.task("x"), "user": lambda c: c.client.user(),
           "webhook": lambda c: c.client.webhook("x"), "webhook_dispatch": lambda c: c.client.webhook_dispatch("x")}
    for name in ("actors", "builds", "datasets", "key_value_stores", "request_queues", "runs", "schedules",
                 "store", "tasks", "webhooks", "webhook_dispatches"):
        top[name] = lambda c, name=name: getattr(c.client, name)()
    for name, make in top.items():
        factory(f"ApifyClientAsync.{name}", make)
    for name in ("builds", "runs", "versions", "webhooks"):
        factory(f"ActorClientAsync.{name}", lambda c, name=name: getattr(c.actor, name)())
    factory("ActorClientAsync.version", lambda c: c.actor.version("0.0"))
    factory("ActorClientAsync.last_run", lambda c: c.actor.last_run())
    factory("ActorVersionClientAsync.env_var", lambda c: c.actor.version("0.0").env_var("X"))
    factory("ActorVersionClientAsync.env_vars", lambda c: c.actor.version("0.0").env_vars())
    factory("BuildClientAsync.log", lambda c: c.client.build(c.ids["build"]).log())
    for name in ("dataset", "key_value_store", "request_queue", "log"):
        factory(f"RunClientAsync.{name}", lambda c, name=name: getattr(c.run(), name)())
    for name in ("runs", "webhooks"):
        factory(f"TaskClientAsync.{name}", lambda c, name=name: getattr(c.client.task(c.ids["task"]), name)())
    factory("TaskClientAsync.last_run", lambda c: c.client.task(c.ids["task"]).last_run())
    factory("WebhookClientAsync.dispatches", lambda c: c.client.webhook(c.ids["webhook"]).dispatches())


# Actors, their versions and environment variables, builds ---------------------------------------------


@covers("ActorCollectionClientAsync.create")
async def _create_actor(c: Ctx) -> None:
    actor = await c.client.actors().create(name="contract", versions=[source_version(CONTRACT_ACTOR)])
    assert actor.name == "contract"
    c.ids["actor"] = actor.id


@covers("ActorCollectionClientAsync.list", "ActorCollectionClientAsync.iterate")
async def _list_actors(c: Ctx) -> None:
    assert c.ids["actor"] in [a.id for a in (await c.client.actors().list(my=True, sort_by="createdAt")).items]
    assert c.ids["actor"] in [a.id for a in await collect(c.client.actors().iterate())]
    await refusal(c.client.actors().list(sort_by="stats.lastRunStartedAt"), "only createdAt")


@covers("ActorClientAsync.get", "ActorClientAsync.update")
async def _get_update_actor(c: Ctx) -> None:
    assert (await c.actor.update(title="Contract")).title == "Contract"
    for unsupported, field in (({"is_public": True}, "isPublic"), ({"seo_title": "x"}, "seoTitle"),
                               ({"actor_standby_is_enabled": True}, "actorStandby"),
                               ({"default_run_max_items": 5}, "defaultRunOptions.maxItems")):
        await refusal(c.actor.update(**unsupported), field)
    assert (await c.actor.get()).title == "Contract"


@covers("ActorClientAsync.build", "BuildClientAsync.get", "BuildClientAsync.wait_for_finish")
async def _build(c: Ctx) -> None:
    build = await c.actor.build(version_number="0.0", wait_for_finish=120)
    build = await c.client.build(build.id).wait_for_finish(wait_duration=timedelta(seconds=120))
    assert status(build) == "SUCCEEDED", await c.client.build(build.id).log().get()
    c.ids["build"] = build.id
    assert (await c.client.build(build.id).get()).id == build.id


@covers("ActorClientAsync.default_build")
async def _default_build(c: Ctx) -> None:
    assert (await (await c.actor.default_build()).get()).id == c.ids["build"]


@covers("BuildClientAsync.get_open_api_definition")
async def _build_openapi(c: Ctx) -> None:
    assert "paths" in await c.client.build(c.ids["build"]).get_open_api_definition()


@covers("BuildCollectionClientAsync.list", "BuildCollectionClientAsync.iterate")
async def _list_builds(c: Ctx) -> None:
    assert c.ids["build"] in [b.id for b in (await c.actor.builds().list()).items]
    assert c.ids["build"] in [b.id for b in await collect(c.client.builds().iterate())]


@covers("BuildClientAsync.abort", "BuildClientAsync.delete")
async def _abort_delete_build(c: Ctx) -> None:
    # A source of its own (the same source would reuse the first build), under a tag of its own.
    await c.actor.versions().create(version_number="0.9", source_type="SOURCE_FILES", build_tag="aborted",
                                    source_files=source_version(CONTRACT_ACTOR + "# another\n")["sourceFiles"])
    build = await c.actor.build(version_number="0.9")
    assert build.id != c.ids["build"]
    assert (await c.client.build(build.id).abort()).id == build.id
    await until(lambda: _finished(c.client.build(build.id)), what="the aborted build to end")
    assert status(await c.client.build(build.id).get()) == "ABORTED"
    await c.client.build(build.id).delete()
    assert await c.client.build(build.id).get() is None
    await c.actor.version("0.9").delete()


async def _finished(job: BuildClientAsync | RunClientAsync) -> bool:
    got = await job.get()
    return got is not None and status(got) not in ("READY", "RUNNING", "ABORTING", "TIMING-OUT")


@covers("ActorClientAsync.validate_input")
async def _validate_input(c: Ctx) -> None:
    assert await c.actor.validate_input({"n": 1}) is True


@covers("ActorVersionCollectionClientAsync.create", "ActorVersionCollectionClientAsync.list",
        "ActorVersionCollectionClientAsync.iterate", "ActorVersionClientAsync.get",
        "ActorVersionClientAsync.update", "ActorVersionClientAsync.delete")
async def _versions(c: Ctx) -> None:
    made = await c.actor.versions().create(version_number="0.1", source_type="SOURCE_FILES",
                                           source_files=[{"name": "main.py", "format": "TEXT", "content": "1"}])
    assert made.version_number == "0.1"
    assert [v.version_number for v in (await c.actor.versions().list()).items] == ["0.0", "0.1"]
    assert len(await collect(c.actor.versions().iterate())) == 2
    assert (await c.actor.version("0.1").update(build_tag="beta")).build_tag == "beta"
    assert (await c.actor.version("0.1").get()).build_tag == "beta"
    await c.actor.version("0.1").delete()
    assert await c.actor.version("0.1").get() is None


@covers("ActorEnvVarCollectionClientAsync.create", "ActorEnvVarCollectionClientAsync.list",
        "ActorEnvVarCollectionClientAsync.iterate", "ActorEnvVarClientAsync.get",
        "ActorEnvVarClientAsync.update", "ActorEnvVarClientAsync.delete")
async def _env_vars(c: Ctx) -> None:
    version = c.actor.version("0.0")
    await version.env_vars().create(name="PLAIN", value="a")
    assert [v.name for v in (await version.env_vars().list()).items] == ["PLAIN"]
    assert [v.name for v in await collect(version.env_vars().iterate())] == ["PLAIN"]
    assert (await version.env_var("PLAIN").update(name="PLAIN", value="b")).value == "b"
    assert (await version.env_var("PLAIN").get()).value == "b"
    await version.env_var("PLAIN").delete()
    assert await version.env_var("PLAIN").get() is None


# Runs, their logs, storages, metamorph and reboot -------------------------------------------------------


@covers("ActorClientAsync.call")
async def _call(c: Ctx) -> None:
    run = await c.actor.call(run_input={"n": 1}, memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert status(run) == "SUCCEEDED", await c.client.run(run.id).log().get()
    c.ids.update(run=run.id, dataset=run.default_dataset_id, store=run.default_key_value_store_id,
                 queue=run.default_request_queue_id)


@covers("RunClientAsync.get", "RunClientAsync.wait_for_finish", "RunClientAsync.iterate_dataset_items")
async def _run(c: Ctx) -> None:
    assert (await c.run().get()).id == c.ids["run"]
    assert status(await c.run().wait_for_finish(wait_duration=timedelta(seconds=5))) == "SUCCEEDED"
    assert [item["i"] for item in await collect(c.run().iterate_dataset_items())] == [0, 1]


@covers("RunCollectionClientAsync.list", "RunCollectionClientAsync.iterate")
async def _list_runs(c: Ctx) -> None:
    assert [r.id for r in (await c.actor.runs().list(status="SUCCEEDED")).items] == [c.ids["run"]]
    assert c.ids["run"] in [r.id for r in await collect(c.client.runs().iterate())]


@covers("LogClientAsync.get", "LogClientAsync.get_as_bytes", "LogClientAsync.stream")
async def _log(c: Ctx) -> None:
    log: LogClientAsync = c.client.log(c.ids["run"])
    text = await log.get()
    assert text and text.encode() == await log.get_as_bytes()
    async with log.stream() as response:
        assert response is not None and b"".join([chunk async for chunk in response.aiter_bytes()])


@covers("ActorClientAsync.start", "RunClientAsync.update", "RunClientAsync.get_streamed_log",
        "RunClientAsync.get_status_message_watcher")
async def _start_a_sleeper(c: Ctx) -> None:
    await refusal(c.actor.start(force_permission_level="LIMITED_PERMISSIONS"), "forcePermissionLevel")
    run = await c.actor.start(run_input={"sleep": True}, memory_mbytes=TEST_MEMORY_MB)
    c.ids["sleeper"] = run.id
    sleeper = c.run("sleeper")
    await until(lambda: _log_has(sleeper, "sleeping"), what="the sleeper to sleep")
    assert (await sleeper.update(status_message="told so")).status_message == "told so"
    await refusal(sleeper.update(general_access="ANYONE_WITH_NAME_CAN_READ"), "not supported")
    async with await sleeper.get_streamed_log():
        pass
    async with await sleeper.get_status_message_watcher():
        pass


async def _log_has(run: RunClientAsync, words: str, times: int = 1) -> bool:
    return (await run.log().get() or "").count(words) >= times


@covers("RunClientAsync.reboot")
async def _reboot(c: Ctx) -> None:
    sleeper = c.run("sleeper")
    before = (await sleeper.log().get() or "").count("sleeping")
    rebooted = await sleeper.reboot()
    assert rebooted.id == c.ids["sleeper"] and status(rebooted) == "RUNNING"
    await until(lambda: _log_has(sleeper, "sleeping", before + 1), what="the rebooted run to sleep again")


@covers("RunClientAsync.metamorph")
async def _metamorph(c: Ctx) -> None:
    sleeper = c.run("sleeper")
    morphed = await sleeper.metamorph(target_actor_id=c.ids["actor"], run_input={"n": 3})
    assert morphed.id == c.ids["sleeper"]
    run = await sleeper.wait_for_finish(wait_duration=timedelta(seconds=120))
    assert status(run) == "SUCCEEDED" and run.stats.metamorph == 1, await sleeper.log().get()
    assert (await sleeper.key_value_store().get_record("INPUT-METAMORPH-1"))["value"] == {"n": 3}


@covers("RunClientAsync.resurrect", "RunClientAsync.abort")
async def _resurrect_abort(c: Ctx) -> None:
    sleeper = c.run("sleeper")
    await sleeper.resurrect()  # it runs its last input ({"n": 3}) again and ends
    assert status(await sleeper.wait_for_finish(wait_duration=timedelta(seconds=120))) == "SUCCEEDED"
    run = await c.actor.start(run_input={"sleep": True}, memory_mbytes=TEST_MEMORY_MB)
    aborted = await c.client.run(run.id).abort()
    assert status(aborted) in ("ABORTING", "ABORTED")
    assert status(await c.client.run(run.id).wait_for_finish()) == "ABORTED"
    c.ids["aborted"] = run.id


refused("RunClientAsync.charge", lambda c: c.run().charge("event"), "not supported")


@covers("RunClientAsync.delete")
async def _delete_run(c: Ctx) -> None:
    await c.run("aborted").delete()
    assert await c.run("aborted").get() is None


# Datasets ---------------------------------------------------------------------------------------------


@covers("DatasetCollectionClientAsync.get_or_create", "DatasetCollectionClientAsync.list",
        "DatasetCollectionClientAsync.iterate", "DatasetClientAsync.get", "DatasetClientAsync.update")
async def _datasets(c: Ctx) -> None:
    made = await c.client.datasets().get_or_create(name="contract-items")
    assert (await c.client.datasets().get_or_create(name="contract-items")).id == made.id
    assert made.id in [d.id for d in (await c.client.datasets().list(ownership="ownedByMe")).items]
    assert (await c.client.datasets().list(ownership="sharedWithMe")).items == []  # one user: nothing shared
    assert made.id in [d.id for d in await collect(c.client.datasets().iterate())]
    c.ids["own dataset"] = made.id
    assert (await c.client.dataset(made.id).update(title="Items", general_access="RESTRICTED")).title == "Items"
    await refusal(c.client.dataset(made.id).update(general_access="ANYONE_WITH_ID_CAN_READ"), "not supported")
    assert (await c.client.dataset(made.id).get()).title == "Items"


@covers("DatasetClientAsync.push_items", "DatasetClientAsync.list_items", "DatasetClientAsync.iterate_items",
        "DatasetClientAsync.get_items_as_bytes", "DatasetClientAsync.stream_items",
        "DatasetClientAsync.get_statistics")
async def _items(c: Ctx) -> None:
    dataset = c.client.dataset(c.ids["own dataset"])
    await dataset.push_items([{"a": 1}, {"a": 2}])
    assert (await dataset.list_items(desc=True)).items == [{"a": 2}, {"a": 1}]
    assert await collect(dataset.iterate_items(limit=1)) == [{"a": 1}]
    assert (await dataset.get_items_as_bytes(item_format="csv")).decode().split() == ["\ufeffa", "1", "2"]  # BOM
    async with dataset.stream_items(item_format="json") as response:
        assert response is not None and b'"a"' in b"".join([chunk async for chunk in response.aiter_bytes()])
    assert (await dataset.get_statistics()) is not None


@covers("DatasetClientAsync.create_items_public_url")
async def _items_public_url(c: Ctx) -> None:
    url = await c.client.dataset(c.ids["own dataset"]).create_items_public_url(item_format="json")
    response = await c.http.get(url)  # no token: the signature is the permission
    assert response.status_code == 200 and response.json() == [{"a": 1}, {"a": 2}], response.text


@covers("DatasetClientAsync.delete")
async def _delete_dataset(c: Ctx) -> None:
    await c.client.dataset(c.ids["own dataset"]).delete()
    assert await c.client.dataset(c.ids["own dataset"]).get() is None


# Key-value stores ---------------------------------------------------------------------------------------


@covers("KeyValueStoreCollectionClientAsync.get_or_create", "KeyValueStoreCollectionClientAsync.list",
        "KeyValueStoreCollectionClientAsync.iterate", "KeyValueStoreClientAsync.get",
        "KeyValueStoreClientAsync.update")
async def _stores(c: Ctx) -> None:
    made = await c.client.key_value_stores().get_or_create(name="contract-records")
    assert made.id in [s.id for s in (await c.client.key_value_stores().list()).items]
    assert made.id in [s.id for s in await collect(c.client.key_value_stores().iterate())]
    c.ids["own store"] = made.id
    assert (await c.client.key_value_store(made.id).update(title="Records")).title == "Records"
    assert (await c.client.key_value_store(made.id).get()).title == "Records"


@covers("KeyValueStoreClientAsync.set_record", "KeyValueStoreClientAsync.get_record",
        "KeyValueStoreClientAsync.get_record_as_bytes", "KeyValueStoreClientAsync.record_exists",
        "KeyValueStoreClientAsync.stream_record", "KeyValueStoreClientAsync.list_keys",
        "KeyValueStoreClientAsync.iterate_keys", "KeyValueStoreClientAsync.delete_record")
async def _records(c: Ctx) -> None:
    store = c.client.key_value_store(c.ids["own store"])
    await store.set_record("doc", {"x": 1})
    await store.set_record("text", "hello", content_type="text/plain")
    assert (await store.get_record("doc"))["value"] == {"x": 1}
    assert (await store.get_record_as_bytes("text"))["value"] == b"hello"
    assert await store.record_exists("doc") and not await store.record_exists("nope")
    async with store.stream_record("text") as record:
        assert record is not None and await record["value"].aread() == b"hello"
    assert [k.key for k in (await store.list_keys()).items] == ["doc", "text"]
    assert [k.key for k in await collect(store.iterate_keys(prefix="te"))] == ["text"]
    await store.delete_record("doc")
    assert await store.get_record("doc") is None


@covers("KeyValueStoreClientAsync.get_record_public_url", "KeyValueStoreClientAsync.create_keys_public_url")
async def _store_public_urls(c: Ctx) -> None:
    store = c.client.key_value_store(c.ids["own store"])
    record = await c.http.get(await store.get_record_public_url("text"))
    assert record.status_code == 200 and record.text == "hello", record.text
    keys = await c.http.get(await store.create_keys_public_url())
    assert keys.status_code == 200 and [k["key"] for k in keys.json()["data"]["items"]] == ["text"], keys.text


@covers("KeyValueStoreClientAsync.delete")
async def _delete_store(c: Ctx) -> None:
    await c.client.key_value_store(c.ids["own store"]).delete()
    assert await c.client.key_value_store(c.ids["own store"]).get() is None


# Request queues -----------------------------------------------------------------------------------------


@covers("RequestQueueCollectionClientAsync.get_or_create", "RequestQueueCollectionClientAsync.list",
        "RequestQueueCollectionClientAsync.iterate", "RequestQueueClientAsync.get",
        "RequestQueueClientAsync.update")
async def _queues(c: Ctx) -> None:
    made = await c.client.request_queues().get_or_create(name="contract-queue")
    assert made.id in [q.id for q in (await c.client.request_queues().list()).items]
    assert made.id in [q.id for q in await collect(c.client.request_queues().iterate())]
    c.ids["own queue"] = made.id
    assert (await c.client.request_queue(made.id).update(title="Queue")).title == "Queue"
    assert (await c.client.request_queue(made.id).get()).title == "Queue"


@covers("RequestQueueClientAsync.add_request", "RequestQueueClientAsync.batch_add_requests",
        "RequestQueueClientAsync.get_request", "RequestQueueClientAsync.update_request",
        "RequestQueueClientAsync.list_head", "RequestQueueClientAsync.list_requests",
        "RequestQueueClientAsync.iterate_requests", "RequestQueueClientAsync.list_and_lock_head",
        "RequestQueueClientAsync.prolong_request_lock", "RequestQueueClientAsync.delete_request_lock",
        "RequestQueueClientAsync.unlock_requests", "RequestQueueClientAsync.batch_delete_requests",
        "RequestQueueClientAsync.delete_request")
async def _requests(c: Ctx) -> None:
    queue = c.client.request_queue(c.ids["own queue"], client_key="contract")
    added = await queue.add_request({"url": "https://example.com/1", "uniqueKey": "1"})
    batch = await queue.batch_add_requests([{"url": f"https://example.com/{i}", "uniqueKey": str(i)}
                                            for i in (2, 3)])
    assert len(batch.processed_requests) == 2 and not batch.unprocessed_requests
    request = await queue.get_request(added.request_id)
    assert request.url == "https://example.com/1"
    await queue.update_request({"id": request.id, "url": request.url, "uniqueKey": request.unique_key,
                                "userData": {"label": "first"}})
    assert (await queue.get_request(added.request_id)).user_data.label == "first"
    assert len((await queue.list_head(limit=10)).items) == 3
    assert len((await queue.list_requests()).items) == 3
    assert len(await collect(queue.iterate_requests())) == 3
    locked = await queue.list_and_lock_head(lock_duration=timedelta(seconds=60), limit=2)
    assert len(locked.items) == 2
    first, second = (item.id for item in locked.items)
    third = next(r.id for r in (await queue.list_requests()).items if r.id not in (first, second))
    assert (await queue.prolong_request_lock(first, lock_duration=timedelta(seconds=60))).lock_expires_at
    await queue.delete_request_lock(first)
    assert (await queue.unlock_requests()).unlocked_count == 1
    deleted = await queue.batch_delete_requests([{"id": second}])
    assert len(deleted.processed_requests) == 1
    await queue.delete_request(first)
    assert [r.id for r in (await queue.list_requests()).items] == [third]


@covers("RequestQueueClientAsync.delete")
async def _delete_queue(c: Ctx) -> None:
    await c.client.request_queue(c.ids["own queue"]).delete()
    assert await c.client.request_queue(c.ids["own queue"]).get() is None


# Tasks, schedules, webhooks ---------------------------------------------------------------------------------


@covers("TaskCollectionClientAsync.create", "TaskCollectionClientAsync.list", "TaskCollectionClientAsync.iterate",
        "TaskClientAsync.get", "TaskClientAsync.update", "TaskClientAsync.get_input",
        "TaskClientAsync.update_input", "TaskClientAsync.unpublish")
async def _tasks(c: Ctx) -> None:
    task = await c.client.tasks().create(actor_id=c.ids["actor"], name="contract-task", task_input={"n": 2},
                                         memory_mbytes=TEST_MEMORY_MB)
    c.ids["task"] = task.id
    assert task.id in [t.id for t in (await c.client.tasks().list()).items]
    assert task.id in [t.id for t in await collect(c.client.tasks().iterate())]
    client = c.client.task(task.id)
    assert (await client.update(title="Task")).title == "Task"
    assert (await client.get()).title == "Task"
    assert await client.get_input() == {"n": 2}
    assert await client.update_input(task_input={"n": 4}) == {"n": 4}
    assert (await client.unpublish()).id == task.id


refused("TaskClientAsync.publish", lambda c: c.client.task(c.ids["task"]).publish(), "not published here")


@covers("TaskClientAsync.call", "TaskClientAsync.start")
async def _task_runs(c: Ctx) -> None:
    task = c.client.task(c.ids["task"])
    run = await task.call()
    assert status(run) == "SUCCEEDED"
    assert (await c.client.run(run.id).key_value_store().get_record("OUTPUT"))["value"] == {"n": 4}
    started = await task.start(task_input={"n": 5})
    assert (await task.last_run().get()).id == started.id
    assert status(await c.client.run(started.id).wait_for_finish()) == "SUCCEEDED"
    assert started.id in [r.id for r in (await task.runs().list()).items]


@covers("ScheduleCollectionClientAsync.create", "ScheduleCollectionClientAsync.list",
        "ScheduleCollectionClientAsync.iterate", "ScheduleClientAsync.get", "ScheduleClientAsync.update",
        "ScheduleClientAsync.get_log", "ScheduleClientAsync.delete")
async def _schedules(c: Ctx) -> None:
    made = await c.client.schedules().create(
        cron_expression="0 0 1 1 *", is_enabled=False, is_exclusive=False, name="contract-schedule",
        actions=[{"type": "RUN_ACTOR_TASK", "actorTaskId": c.ids["task"]}])
    assert made.id in [s.id for s in (await c.client.schedules().list()).items]
    assert made.id in [s.id for s in await collect(c.client.schedules().iterate())]
    schedule = c.client.schedule(made.id)
    assert (await schedule.update(cron_expression="0 0 2 1 *")).cron_expression == "0 0 2 1 *"
    assert (await schedule.get()).name == "contract-schedule"
    assert await schedule.get_log() == []
    await schedule.delete()
    assert await schedule.get() is None


@covers("WebhookCollectionClientAsync.create", "WebhookCollectionClientAsync.list",
        "WebhookCollectionClientAsync.iterate", "WebhookClientAsync.get", "WebhookClientAsync.update",
        "WebhookClientAsync.test", "WebhookDispatchCollectionClientAsync.list",
        "WebhookDispatchCollectionClientAsync.iterate", "WebhookDispatchClientAsync.get",
        "WebhookClientAsync.delete")
async def _webhooks(c: Ctx) -> None:
    made = await c.client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=c.receiver.url(),
                                            actor_id=c.ids["actor"])
    c.ids["webhook"] = made.id
    assert made.id in [w.id for w in (await c.client.webhooks().list()).items]
    assert made.id in [w.id for w in await collect(c.actor.webhooks().iterate())]
    webhook = c.client.webhook(made.id)
    assert str((await webhook.update(request_url=c.receiver.url("/other"))).request_url) == c.receiver.url("/other")
    assert (await webhook.get()).id == made.id
    dispatch = await webhook.test()
    assert dispatch.id in [d.id for d in (await webhook.dispatches().list()).items]
    assert dispatch.id in [d.id for d in await collect(c.client.webhook_dispatches().iterate())]
    assert (await c.client.webhook_dispatch(dispatch.id).get()).id == dispatch.id
    await webhook.delete()
    assert await webhook.get() is None


@covers("TaskClientAsync.delete")
async def _delete_task(c: Ctx) -> None:
    await c.client.task(c.ids["task"]).delete()
    assert await c.client.task(c.ids["task"]).get() is None


# The user and the Store --------------------------------------------------------------------------------------


@covers("UserClientAsync.get", "UserClientAsync.limits", "UserClientAsync.monthly_usage")
async def _user(c: Ctx) -> None:
    user = c.client.user()
    assert (await user.get()) is not None
    assert (await user.limits()) is not None
    assert (await user.monthly_usage()) is not None


@covers("UserClientAsync.update_limits")
async def _update_limits(c: Ctx) -> None:
    await c.client.user().update_limits()  # nothing to change is a no-op
    with pytest.raises(ApifyApiError) as raised:
        await c.client.user().update_limits(max_monthly_usage_usd=10)
    assert raised.value.status_code == 400 and "not supported" in raised.value.message


refused("StoreCollectionClientAsync.list", lambda c: c.client.store().list(), "Store")
refused("StoreCollectionClientAsync.iterate", lambda c: collect(c.client.store().iterate()), "Store")


@covers("ApifyClientAsync.with_custom_http_client")
async def _custom_http_client(c: Ctx) -> None:
    other = ApifyClientAsync.with_custom_http_client(c.token, api_url=c.api_url,
                                                     http_client=ImpitHttpClientAsync(token=c.token))
    assert (await other.actor(c.ids["actor"]).get()).name == "contract"


@covers("ActorClientAsync.delete")
async def _delete_actor(c: Ctx) -> None:
    await c.actor.delete()
    assert await c.actor.get() is None


_factories()


# -- the tests ------------------------------------------------------------------------------------------------


def test_the_table_lists_every_client_method():
    """No server needed: a method of the installed client with no entry fails here, by name."""
    found = set(client_methods())
    missing = sorted(found - set(CONTRACT))
    stale = sorted(set(CONTRACT) - found)
    assert not missing, f"apify-client {apify_client.__version__} has methods the contract table does not list " \
                        f"(add an entry saying how to call each, or refuse it with 400/501): {missing}"
    assert not stale, f"the contract table lists methods apify-client {apify_client.__version__} lacks: {stale}"



async def test_every_client_method_against_a_real_server(api_url, api_token, actors_app, receiver):
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        ctx = Ctx(api_url, api_token, http, receiver)
        for step in dict.fromkeys(CONTRACT.values()):  # each step once, in the table's order
            names = [n for n, s in CONTRACT.items() if s is step]
            try:
                await step(ctx)
            except ApifyApiError as exc:
                failures.append(f"{names}: {exc.status_code} {exc.type}: {exc.message}")
            except Exception as exc:  # every failure is collected, so one run shows them all
                failures.append(f"{names}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
