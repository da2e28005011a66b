"""Actor tasks through the real apify-client (CRUD, input, runs, last run) and the real SDK's call_task/start_task."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import create_and_build, status

#: Echoes its input and the task it runs for, as its container sees them.
ECHO = """
import asyncio, os
from apify import Actor

async def main():
    async with Actor:
        await Actor.set_value("OUTPUT", {"input": await Actor.get_input(),
                                         "taskEnv": [os.environ.get("APIFY_ACTOR_TASK_ID"),
                                                     os.environ.get("ACTOR_TASK_ID")]})

asyncio.run(main())
"""

#: Calls a task and starts it, from inside its own container, through the SDK.
TASK_CALLER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        task_id = (await Actor.get_input())["taskId"]
        called = await Actor.call_task(task_id, task_input={"from": "call_task"}, memory_mbytes=1024)
        started = await Actor.start_task(task_id, task_input={"from": "start_task"}, memory_mbytes=1024)
        finished = await Actor.apify_client.run(started.id).wait_for_finish()
        outputs = []
        for run in (called, finished):
            record = await Actor.apify_client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT")
            outputs.append({"status": str(run.status.value if hasattr(run.status, "value") else run.status),
                            "actorTaskId": run.actor_task_id, "output": record["value"]})
        await Actor.set_value("OUTPUT", outputs)

asyncio.run(main())
"""


async def test_task_crud_input_runs_and_last_run(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "task-echo", ECHO)
    actor = await client.actor("local/task-echo").get()
    tasks = client.tasks()
    assert (await tasks.list()).items == []

    created = await tasks.create(actor_id=actor.id, name="echo-a", task_input={"a": 1, "b": "task"},
                                 memory_mbytes=TEST_MEMORY_MB, run_timeout=timedelta(seconds=120), title="Echo A")
    second = await tasks.create(actor_id="local~task-echo", name="echo-b")
    assert created.act_id == actor.id and created.options.memory_mbytes == TEST_MEMORY_MB
    assert created.options.timeout_secs == 120 and created.input.model_dump() == {"a": 1, "b": "task"}
    assert [task.name for task in (await tasks.list()).items] == ["echo-a", "echo-b"]
    assert [task.name for task in (await tasks.list(desc=True, limit=1)).items] == ["echo-b"]
    listed = await tasks.list(offset=1)
    assert (listed.total, listed.offset, [task.id for task in listed.items]) == (2, 1, [second.id])

    task = client.task(created.id)
    assert (await client.task("local~echo-a").get()).id == created.id
    updated = await task.update(build="latest", title="Echo A, renamed", name="echo-main")
    assert (updated.name, updated.title, updated.options.memory_mbytes) == ("echo-main", "Echo A, renamed",
                                                                           TEST_MEMORY_MB)
    assert await task.get_input() == {"a": 1, "b": "task"}
    assert await task.update_input(task_input={"a": 2, "b": "task", "c": [1]}) == {"a": 2, "b": "task", "c": [1]}

    # A run: the task's input with the posted fields laid over it, the task's options, the task's id.
    run = await task.call(task_input={"b": "run", "d": True})
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    assert run.actor_task_id == created.id and run.act_id == actor.id
    assert run.options.memory_mbytes == TEST_MEMORY_MB and run.options.timeout_secs == 120
    output = (await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT"))["value"]
    assert output == {"input": {"a": 2, "b": "run", "c": [1], "d": True}, "taskEnv": [created.id, created.id]}

    # Query options override the task's; the last run and its storages; the task's run list.
    started = await task.start(run_timeout=timedelta(seconds=60))
    assert started.options.timeout_secs == 60
    finished = await task.last_run().wait_for_finish(wait_duration=timedelta(seconds=60))
    assert finished.id == started.id and status(finished) == "SUCCEEDED"
    record = await task.last_run(status="SUCCEEDED").key_value_store().get_record("OUTPUT")
    assert record["value"]["input"] == {"a": 2, "b": "task", "c": [1]}
    assert [r.id for r in (await task.runs().list()).items] == [run.id, started.id]
    assert (await client.task(second.id).runs().list()).items == []
    assert await client.task(second.id).last_run().get() is None
    assert (await task.get()).stats.total_runs == 2
    direct = await client.actor(actor.id).call(run_input={"x": 1}, memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert direct.actor_task_id is None  # an actor's own run is no task's
    direct_output = (await client.key_value_store(direct.default_key_value_store_id).get_record("OUTPUT"))["value"]
    assert direct_output["taskEnv"] == ["", ""]

    await client.task(second.id).delete()
    assert await client.task(second.id).get() is None
    assert (await client.run(run.id).get()).actor_task_id == created.id  # runs keep their task's id


async def test_task_refusals_in_apify_shape(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "task-refused", "print('hi')\n")
    task = await client.tasks().create(actor_id="local~task-refused", name="refused",
                                       memory_mbytes=TEST_MEMORY_MB)
    with pytest.raises(ApifyApiError, match="maxItems"):
        await client.task(task.id).update(max_items=0)
    with pytest.raises(ApifyApiError, match="exists already"):
        await client.tasks().create(actor_id="local~task-refused", name="refused")
    with pytest.raises(ApifyApiError, match="was not found"):
        await client.tasks().create(actor_id="no-such-actor", name="orphan")
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        cases = [
            ("POST", "/actor-tasks", {"actId": "task-refused"}, "needs actId"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "Bad Name"}, "Task name"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "x", "surprise": 1}, "surprise"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "x", "input": [1]}, "JSON object"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "x", "options": {"memoryMbytes": 100}},
             "Memory"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "x", "actorStandby": {"isEnabled": True}},
             "Standby"),
            ("PUT", "/actor-tasks/refused", {"isPublic": True}, "published"),
            ("PUT", "/actor-tasks/refused/input", [1, 2], "JSON object"),
            ("POST", "/actor-tasks/refused/runs?maxItems=0", None, "maxItems"),
            ("POST", "/actor-tasks/refused/runs?restartOnError=perhaps", None, "restartOnError"),
            ("POST", "/actor-tasks", {"actId": "task-refused", "name": "x", "options": {"maxTotalChargeUsd": 1}},
             "charged"),
            ("POST", "/actor-tasks/refused/runs?memory=100", None, "Memory"),
            ("POST", "/actor-tasks/refused/runs", [1], "JSON object"),
            ("POST", "/actors/task-refused/runs?maxTotalChargeUsd=1", None, "charged"),
        ]
        for method, path, body, message in cases:
            response = await http.request(method, path, **({} if body is None else {"json": body}))
            assert response.status_code == 400, (path, response.text)
            assert message in response.json()["error"]["message"], (path, response.text)
        text = await http.post("/actor-tasks/refused/runs", content=b"hello", headers={"Content-Type": "text/plain"})
        assert text.status_code == 400 and "must be JSON" in text.json()["error"]["message"]
        assert (await http.get("/actor-tasks/nope")).status_code == 404
    assert (await client.task(task.id).runs().list()).items == []  # nothing was started by the refusals
    assert [t.name for t in (await client.tasks().list()).items] == ["refused"]


async def test_sdk_call_task_and_start_task_inside_a_container(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "task-target", ECHO)
    await create_and_build(client, "task-caller", TASK_CALLER)
    task = await client.tasks().create(actor_id="local~task-target", name="sdk-task", task_input={"kept": 1},
                                       memory_mbytes=TEST_MEMORY_MB)
    run = await client.actor("local/task-caller").call(run_input={"taskId": task.id}, memory_mbytes=TEST_MEMORY_MB,
                                                        logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    outputs = (await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT"))["value"]
    assert outputs == [
        {"status": "SUCCEEDED", "actorTaskId": task.id,
         "output": {"input": {"kept": 1, "from": "call_task"}, "taskEnv": [task.id, task.id]}},
        {"status": "SUCCEEDED", "actorTaskId": task.id,
         "output": {"input": {"kept": 1, "from": "start_task"}, "taskEnv": [task.id, task.id]}},
    ]
    runs = (await client.task(task.id).runs().list()).items
    assert [r.meta.origin for r in runs] == ["ACTOR", "ACTOR"]
