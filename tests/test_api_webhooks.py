"""Webhooks through the real apify-client: CRUD, run and build events delivered to a receiver on
loopback with Apify's default payload or a template, dispatches with their calls, retries with backoff."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import httpx
import pytest
from apify_client import ApifyClientAsync

from .conftest import extension_config
from .test_api_sdk import SLEEPER, create_and_build, source_version, status
from .webhook_receiver import Receiver

RETRY_BASE_SECS = 0.5
MAX_ATTEMPTS = 3


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data", webhook_retry_base_secs=RETRY_BASE_SECS,
                            webhook_max_attempts=MAX_ATTEMPTS)



async def received(receiver: Receiver, predicate, timeout: float = 90):
    return await asyncio.to_thread(receiver.wait_for, predicate, timeout)


def of_event(event_type: str, resource_id: str):
    return lambda requests: next((r for r in requests if r.json.get("eventType") == event_type
                                  and r.json["resource"]["id"] == resource_id), None)


async def test_webhook_crud_events_payloads_and_dispatches(api_url, api_token, receiver, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    actor = await client.actors().create(name="hooked", versions=[source_version("print('hooked ran')\n")])
    hook = await client.webhooks().create(
        event_types=["ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED", "ACTOR.BUILD.CREATED", "ACTOR.BUILD.SUCCEEDED"],
        request_url=receiver.url("/default"), actor_id="local~hooked", description="all defaults")
    assert hook.condition.actor_id == actor.id and hook.is_ad_hoc is False and hook.ignore_ssl_errors is False
    templated = await client.webhooks().create(
        event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/templated"), actor_id=actor.id,
        payload_template='{"run": {{resource.id}}, "text": "Run {{resource.id}} is {{resource.status}}", '
                         '"data": "{{eventData}}", "when": {{globals.dateUnix}}, "nothing": {{resource.nope}}}',
        headers_template='{"X-Secret": "s3cret", "X-Run": "{{resource.id}}", "Content-Type": "text/evil"}',
        should_interpolate_strings=True)

    build = await client.actor(actor.id).build(version_number="0.0", wait_for_finish=60)
    build_created = await received(receiver, of_event("ACTOR.BUILD.CREATED", build.id))
    build_done = await received(receiver, of_event("ACTOR.BUILD.SUCCEEDED", build.id))
    assert build_created.json["eventData"] == {"actorId": actor.id, "actorBuildId": build.id}
    assert build_done.json["resource"]["status"] == "SUCCEEDED"

    run = await client.actor(actor.id).call(memory_mbytes=1024, logger=None)
    assert status(run) == "SUCCEEDED"
    created = await received(receiver, of_event("ACTOR.RUN.CREATED", run.id))
    succeeded = await received(receiver, of_event("ACTOR.RUN.SUCCEEDED", run.id))
    payload = succeeded.json
    assert set(payload) == {"userId", "createdAt", "eventType", "eventData", "resource"}
    assert payload["eventData"] == {"actorId": actor.id, "actorRunId": run.id}
    assert payload["resource"]["status"] == "SUCCEEDED" and payload["resource"]["defaultDatasetId"]
    assert created.json["resource"]["status"] == "READY"
    assert succeeded.headers["x-apify-webhook"] == hook.id
    assert succeeded.headers["content-type"].startswith("application/json")

    custom = (await received(receiver, lambda rs: next((r for r in rs if r.path == "/templated"), None)))
    assert custom.json == {"run": run.id, "text": f"Run {run.id} is SUCCEEDED",
                           "data": {"actorId": actor.id, "actorRunId": run.id},
                           "when": custom.json["when"], "nothing": None}
    assert isinstance(custom.json["when"], int)
    assert custom.headers["x-secret"] == "s3cret" and custom.headers["x-run"] == run.id
    assert custom.headers["content-type"].startswith("application/json")  # the platform's own header wins
    assert len([r for r in receiver.requests if r.path == "/templated"]) == 1

    # The dispatches record the calls; listings by webhook, in all and by actor.
    dispatches = (await client.webhook(hook.id).dispatches().list()).items
    assert {d.event_type for d in dispatches} == {"ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED",
                                                  "ACTOR.BUILD.CREATED", "ACTOR.BUILD.SUCCEEDED"}

    async def all_succeeded():
        while True:
            items = (await client.webhook_dispatches().list()).items
            if items and all(str(d.status) in ("SUCCEEDED", "WebhookDispatchStatus.SUCCEEDED") for d in items):
                return items
            await asyncio.sleep(0.05)

    everything = await asyncio.wait_for(all_succeeded(), 30)
    assert len(everything) == 5
    one = await client.webhook_dispatch(dispatches[0].id).get()
    assert one.webhook_id == hook.id and len(one.calls) == 1 and one.calls[0].response_status == 200
    assert one.webhook.request_url is not None
    listed = (await client.actor(actor.id).webhooks().list()).items
    assert [w.id for w in listed] == [hook.id, templated.id]
    assert (await client.webhooks().list(desc=True)).items[0].id == templated.id
    got = await client.webhook(hook.id).get()
    assert got.stats.total_dispatches == 4 and str(got.last_dispatch.status).endswith("SUCCEEDED")

    # Test dispatch, update, delete.
    test = await client.webhook(hook.id).test()
    assert test.event_type == "TEST" and test.webhook_id == hook.id
    tested = await received(receiver, lambda rs: next((r for r in rs if r.json.get("eventType") == "TEST"), None))
    assert tested.json["resource"] is None and tested.json["eventData"] == {"actorId": actor.id}
    updated = await client.webhook(hook.id).update(description="changed", event_types=["ACTOR.RUN.FAILED"])
    assert updated.description == "changed" and updated.event_types == ["ACTOR.RUN.FAILED"]
    assert updated.condition.actor_id == actor.id  # the client's empty condition changes nothing
    await client.webhook(templated.id).delete()
    assert await client.webhook(templated.id).get() is None
    assert [w.id for w in (await client.webhooks().list()).items] == [hook.id]

    # Idempotency: the same key gives the same webhook.
    first = await client.webhooks().create(event_types=["ACTOR.RUN.FAILED"], request_url=receiver.url(),
                                           actor_id=actor.id, idempotency_key="only-once")
    again = await client.webhooks().create(event_types=["ACTOR.RUN.FAILED"], request_url=receiver.url(),
                                           actor_id=actor.id, idempotency_key="only-once")
    assert first.id == again.id
    assert len((await client.webhooks().list()).items) == 2


async def test_bad_webhooks_answer_400_and_store_nothing(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "hook-bad", "print(1)\n")
    good = {"eventTypes": ["ACTOR.RUN.SUCCEEDED"], "condition": {"actorId": "hook-bad"},
            "requestUrl": "http://127.0.0.1:9/x"}
    cases = [
        ({**good, "eventTypes": ["ACTOR.RUN.DONE"]}, "ACTOR.RUN.DONE"),
        ({**good, "eventTypes": []}, "eventTypes"),
        ({**good, "condition": {}}, "exactly one"),
        ({**good, "condition": {"actorId": "hook-bad", "actorRunId": "x"}}, "exactly one"),
        ({**good, "condition": {"actorName": "x"}}, "actorName"),
        ({**good, "requestUrl": "ftp://example.com"}, "requestUrl"),
        ({**good, "payloadTemplate": '{"a": {{secret}}}'}, "{{secret}}"),
        ({**good, "payloadTemplate": '{"a": {{resource}}'}, "not valid JSON"),
        ({**good, "headersTemplate": "[1]"}, "JSON object"),
        ({**good, "isAdHoc": True}, "actorRunId"),
        ({**good, "isApifyIntegration": True}, "isApifyIntegration"),
        ({**good, "doNotRetry": "yes"}, "doNotRetry"),
    ]
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        for body, words in cases:
            response = await http.post("/webhooks", json=body)
            assert response.status_code == 400, (body, response.text)
            assert words in response.json()["error"]["message"], (body, response.text)
        for condition in ({"actorId": "nope"}, {"actorTaskId": "nope"}):
            missing = await http.post("/webhooks", json={**good, "condition": condition})
            assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"], missing.text
        ad_hoc = base64.b64encode(json.dumps([{"eventTypes": ["ACTOR.RUN.SUCCEEDED"]}]).encode()).decode()
        for value, words in ((ad_hoc, "requestUrl"), ("not base64!", "base64"),
                             (base64.b64encode(b'{"a": 1}').decode(), "array")):
            response = await http.post("/acts/hook-bad/runs", params={"webhooks": value})
            assert response.status_code == 400 and words in response.json()["error"]["message"], response.text
        hook = (await http.post("/webhooks", json=good)).json()["data"]
        response = await http.put(f"/webhooks/{hook['id']}", json={"idempotencyKey": "late"})
        assert response.status_code == 400
        assert (await http.get("/webhooks/nope")).status_code == 404
        assert (await http.get("/webhook-dispatches/nope")).status_code == 404
    assert [w.id for w in (await client.webhooks().list()).items] == [hook["id"]]
    assert (await client.actor("local/hook-bad").runs().list()).items == []
    await client.actor("local/hook-bad").delete()  # its webhooks go with it: they could never fire again
    assert (await client.webhooks().list()).items == []


async def test_webhooks_on_a_task_fire_on_its_runs_and_go_with_it(api_url, api_token, receiver, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "task-hooked", "print('task hooked')\n")
    task = await client.tasks().create(actor_id="local~task-hooked", name="hooked-task", memory_mbytes=1024)
    other = await client.tasks().create(actor_id="local~task-hooked", name="other-task", memory_mbytes=1024)
    hook = await client.webhooks().create(event_types=["ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED"],
                                          request_url=receiver.url("/task"), actor_task_id="local~hooked-task")
    assert hook.condition.actor_task_id == task.id and hook.condition.actor_id is None  # the name became the id
    assert [w.id for w in (await client.task(task.id).webhooks().list()).items] == [hook.id]
    assert (await client.task("local~other-task").webhooks().list()).items == []
    assert (await client.actor("local~task-hooked").webhooks().list()).items == []

    # Runs of the actor itself and of another task are not the task's: only the task's run fires it.
    direct = await client.actor("local~task-hooked").call(memory_mbytes=1024, logger=None)
    by_other = await client.task(other.id).call()
    run = await client.task(task.id).call()
    assert status(run) == "SUCCEEDED" and run.actor_task_id == task.id
    succeeded = await received(receiver, of_event("ACTOR.RUN.SUCCEEDED", run.id))
    assert succeeded.path == "/task" and succeeded.headers["x-apify-webhook"] == hook.id
    assert succeeded.json["eventData"] == {"actorId": run.act_id, "actorRunId": run.id, "actorTaskId": task.id}
    await received(receiver, of_event("ACTOR.RUN.CREATED", run.id))
    dispatches = (await client.webhook(hook.id).dispatches().list()).items
    assert sorted(d.event_type for d in dispatches) == ["ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED"]
    assert {r.json["resource"]["id"] for r in receiver.requests} == {run.id}
    assert direct.id != run.id and by_other.id != run.id

    test = await client.webhook(hook.id).test()
    tested = await received(receiver, lambda rs: next((r for r in rs if r.json.get("eventType") == "TEST"), None))
    assert test.webhook_id == hook.id and tested.json["eventData"] == {"actorId": run.act_id, "actorTaskId": task.id}

    # The task's deletion takes its webhooks (and their dispatches) with it; other webhooks stay.
    kept = await client.webhooks().create(event_types=["ACTOR.RUN.FAILED"], request_url=receiver.url(),
                                          actor_task_id=other.id)
    await client.task(task.id).delete()
    assert await client.webhook(hook.id).get() is None
    assert [w.id for w in (await client.webhooks().list()).items] == [kept.id]
    assert (await client.webhook_dispatches().list()).items == []
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        gone = await http.get(f"/actor-tasks/{task.id}/webhooks")
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "record-not-found"


async def test_failed_calls_are_retried_with_backoff_and_do_not_retry_is_honoured(api_url, api_token, receiver,
                                                                                   actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "hook-retry", "print(1)\n")
    retried = await client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/r"),
                                             actor_id="local~hook-retry")
    once = await client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/once"),
                                          actor_id="local~hook-retry", do_not_retry=True)
    receiver.set_answer(503)
    run = await client.actor("local/hook-retry").call(memory_mbytes=1024, logger=None)
    await received(receiver, lambda rs: len([r for r in rs if r.path == "/r"]) == MAX_ATTEMPTS)

    async def finished(webhook_id: str):
        while True:
            items = (await client.webhook(webhook_id).dispatches().list()).items
            if items and not str(items[0].status).endswith("ACTIVE"):
                return items[0]
            await asyncio.sleep(0.05)

    gave_up = await asyncio.wait_for(finished(retried.id), 30)
    assert str(gave_up.status).endswith("FAILED") and len(gave_up.calls) == MAX_ATTEMPTS
    assert all(call.response_status == 503 and "503" in call.error_message for call in gave_up.calls)
    starts = [call.started_at for call in gave_up.calls]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= RETRY_BASE_SECS * 0.9 and gaps[1] >= 2 * RETRY_BASE_SECS * 0.9, gaps  # exponential
    single = await asyncio.wait_for(finished(once.id), 30)
    assert str(single.status).endswith("FAILED") and len(single.calls) == 1
    assert len([r for r in receiver.requests if r.path == "/once"]) == 1

    # A receiver that recovers gets the dispatch on a retry.
    receiver.set_answer(200)
    recovered = await client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/x"),
                                               actor_run_id=run.id)
    await client.run(run.id).resurrect(memory_mbytes=1024)
    await client.run(run.id).wait_for_finish()
    done = await asyncio.wait_for(finished(recovered.id), 30)
    assert str(done.status).endswith("SUCCEEDED") and len(done.calls) == 1
    assert done.event_data.actor_run_id == run.id


async def test_ad_hoc_webhooks_of_a_run_start(api_url, api_token, receiver, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "hook-adhoc", "print(1)\n")
    run = await client.actor("local/hook-adhoc").call(memory_mbytes=1024, logger=None, webhooks=[
        {"event_types": ["ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED"], "request_url": receiver.url("/adhoc"),
         "payload_template": '{"id": {{resource.id}}, "type": {{eventType}}}'}])
    assert status(run) == "SUCCEEDED"
    await received(receiver, lambda rs: len([r for r in rs if r.path == "/adhoc"]) == 2)
    assert sorted(r.json["type"] for r in receiver.requests) == ["ACTOR.RUN.CREATED", "ACTOR.RUN.SUCCEEDED"]
    assert {r.json["id"] for r in receiver.requests} == {run.id}
    hooks = (await client.webhooks().list()).items
    assert len(hooks) == 1 and hooks[0].is_ad_hoc and hooks[0].condition.actor_run_id == run.id
    # Ad-hoc: only the first time. A resurrected run that succeeds again dispatches nothing more (while a
    # persistent webhook of the run hears that second end: the event was handled).
    await client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/persistent"),
                                   actor_run_id=run.id)
    await client.run(run.id).resurrect(memory_mbytes=1024)
    assert status(await client.run(run.id).wait_for_finish()) == "SUCCEEDED"
    await received(receiver, lambda rs: next((r for r in rs if r.path == "/persistent"), None))
    assert len((await client.webhook(hooks[0].id).dispatches().list()).items) == 2
    assert len([r for r in receiver.requests if r.path == "/adhoc"]) == 2
    await client.run(run.id).delete()  # the run's webhooks go with it
    assert (await client.webhooks().list()).items == []


ADDS_WEBHOOK = """
import asyncio
from apify import Actor, Webhook

async def main():
    async with Actor:
        url = (await Actor.get_input())["url"]
        run_id = Actor.configuration.actor_run_id
        hook = Webhook(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=url, idempotency_key=f"{run_id}-done",
                       payload_template='{"run": {{resource.id}}, "status": {{resource.status}}}')
        await Actor.add_webhook(hook)
        await Actor.add_webhook(hook)  # a retry with the same key adds nothing
        refused = {}
        attempts = {
            "other actor": Actor.apify_client.webhooks().create(
                event_types=["ACTOR.RUN.SUCCEEDED"], request_url=url, actor_id=Actor.configuration.actor_id),
            "list": Actor.apify_client.webhooks().list(),
        }
        for name, attempt in attempts.items():
            try:
                await attempt
                refused[name] = "allowed"
            except Exception as exc:
                refused[name] = getattr(exc, "status_code", repr(exc))
        await Actor.set_value("OUTPUT", refused)

asyncio.run(main())
"""


async def test_sdk_actor_adds_a_webhook_of_its_own_run_only(api_url, api_token, receiver, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "hook-sdk", ADDS_WEBHOOK)
    run = await client.actor("local/hook-sdk").call(run_input={"url": receiver.url("/sdk")}, memory_mbytes=1024,
                                                    logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    delivered = await received(receiver, lambda rs: next((r for r in rs if r.path == "/sdk"), None))
    assert delivered.json == {"run": run.id, "status": "SUCCEEDED"}
    output = (await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT"))["value"]
    assert output == {"other actor": 403, "list": 403}
    hooks = (await client.webhooks().list()).items
    assert len(hooks) == 1 and hooks[0].is_ad_hoc and hooks[0].condition.actor_run_id == run.id
    assert hooks[0].model_extra["idempotencyKey"] == f"{run.id}-done"
    assert len([r for r in receiver.requests if r.path == "/sdk"]) == 1


async def test_every_run_ending_and_resurrection_is_an_event(api_url, api_token, receiver, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "hook-ends", SLEEPER)
    await create_and_build(client, "hook-fails", "import sys\nsys.exit(2)\n")
    for name in ("hook-ends", "hook-fails"):
        await client.webhooks().create(
            event_types=["ACTOR.RUN.SUCCEEDED", "ACTOR.RUN.FAILED", "ACTOR.RUN.ABORTED", "ACTOR.RUN.TIMED_OUT",
                         "ACTOR.RUN.RESURRECTED"],
            request_url=receiver.url(f"/{name}"), actor_id=f"local~{name}",
            payload_template='{"type": {{eventType}}, "status": {{resource.status}}, "run": {{eventData.actorRunId}}}')

    def events(path: str) -> list[tuple[str, str]]:
        return [(r.json["type"], r.json["status"]) for r in receiver.requests if r.path == path]

    failed = await client.actor("local/hook-fails").call(memory_mbytes=1024, logger=None)
    await received(receiver, lambda rs: events("/hook-fails"))
    assert events("/hook-fails") == [("ACTOR.RUN.FAILED", "FAILED")] and status(failed) == "FAILED"

    run = await client.actor("local/hook-ends").call(memory_mbytes=1024, run_timeout=timedelta(seconds=2),
                                                    logger=None)
    assert status(run) == "TIMED-OUT"
    await received(receiver, lambda rs: len(events("/hook-ends")) == 1)
    await client.run(run.id).resurrect(memory_mbytes=1024, run_timeout=timedelta(seconds=600))
    await received(receiver, lambda rs: len(events("/hook-ends")) == 2)
    await client.run(run.id).abort()
    await received(receiver, lambda rs: len(events("/hook-ends")) == 3)
    assert events("/hook-ends") == [("ACTOR.RUN.TIMED_OUT", "TIMED-OUT"), ("ACTOR.RUN.RESURRECTED", "RUNNING"),
                                    ("ACTOR.RUN.ABORTED", "ABORTED")]
    assert {r.json["run"] for r in receiver.requests if r.path == "/hook-ends"} == {run.id}


JS_ADDS_WEBHOOK = """
import { Actor } from 'apify';

await Actor.init();
const { url } = await Actor.getInput();
const options = {
    eventTypes: ['ACTOR.RUN.SUCCEEDED'], requestUrl: url, idempotencyKey: `${Actor.getEnv().actorRunId}-js`,
    payloadTemplate: '{"run": {{resource.id}}, "from": "js"}', isApifyIntegration: false,
};
await Actor.addWebhook(options);
await Actor.addWebhook(options);
await Actor.exit();
"""


async def test_javascript_actor_adds_a_webhook(api_url, api_token, receiver, apify_images, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    dockerfile = 'FROM apify/actor-node:24\nCOPY --chown=myuser:myuser . ./\nCMD ["npm", "start", "--silent"]\n'
    files = {"Dockerfile": dockerfile,
             "package.json": json.dumps({"name": "js-hook", "version": "0.0.1", "type": "module",
                                         "dependencies": {"apify": "^3"}, "scripts": {"start": "node main.js"}}),
             "main.js": JS_ADDS_WEBHOOK}
    await client.actors().create(name="js-hook", versions=[{
        "versionNumber": "0.0", "sourceType": "SOURCE_FILES",
        "sourceFiles": [{"name": name, "format": "TEXT", "content": content} for name, content in files.items()]}])
    build = await client.actor("local/js-hook").build(version_number="0.0", wait_for_finish=60)
    assert str(build.status).endswith("SUCCEEDED"), await client.build(build.id).log().get()
    run = await client.actor("local/js-hook").call(run_input={"url": receiver.url("/js")}, memory_mbytes=1024,
                                                   logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    delivered = await received(receiver, lambda rs: next((r for r in rs if r.path == "/js"), None))
    assert delivered.json == {"run": run.id, "from": "js"}
    hooks = (await client.webhooks().list()).items
    assert len(hooks) == 1 and hooks[0].is_ad_hoc and hooks[0].condition.actor_run_id == run.id
