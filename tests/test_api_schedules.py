"""Schedules through the real apify-client against a real server whose schedule clock the test moves."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import create_and_build, status
from .test_schedules import FakeClock


async def eventually(check, timeout: float = 60, what: str = ""):
    """Await ``check()`` until it returns something truthy, or fail at the deadline (the server runs on
    this loop, so a blocking wait would stop it)."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def test_schedule_crud_firing_and_log(api_url, api_token, actors_app):
    clock = FakeClock(dt.datetime(2030, 6, 1, 9, 59, 50, tzinfo=dt.timezone.utc))
    actors_app.platform.schedules.clock = clock
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "sched-api", "import os\nprint('task', os.environ['APIFY_ACTOR_TASK_ID'])\n")
    actor = await client.actor("local/sched-api").get()
    task = await client.tasks().create(actor_id=actor.id, name="sched-api-task", task_input={"t": 1},
                                       memory_mbytes=TEST_MEMORY_MB)
    schedules = client.schedules()
    assert (await schedules.list()).items == []

    created = await schedules.create(
        name="api-schedule", cron_expression="0 12 * * *", timezone="Europe/Prague", is_enabled=True,
        is_exclusive=False, title="Noon in Prague", actions=[
            {"type": "RUN_ACTOR", "actorId": actor.id,
             "runInput": {"body": '{"a": 1}', "contentType": "application/json"},
             "runOptions": {"memoryMbytes": TEST_MEMORY_MB, "timeoutSecs": 100}},
            {"type": "RUN_ACTOR_TASK", "actorTaskId": task.id, "input": {"u": 2}},
        ])
    assert created.cron_expression == "0 12 * * *" and created.timezone == "Europe/Prague"
    assert created.next_run_at == dt.datetime(2030, 6, 1, 10, 0, tzinfo=dt.timezone.utc)  # 12:00 CEST
    assert [action.type for action in created.actions] == ["RUN_ACTOR", "RUN_ACTOR_TASK"]
    assert created.actions[0].actor_id == actor.id and created.actions[1].actor_task_id == task.id
    other = await schedules.create(name="api-other", cron_expression="@daily", is_enabled=False, is_exclusive=True)
    assert other.next_run_at is None and other.actions == []
    assert [s.name for s in (await schedules.list()).items] == ["api-schedule", "api-other"]
    assert [s.name for s in (await schedules.list(desc=True, limit=1)).items] == ["api-other"]
    schedule = client.schedule(created.id)
    assert (await client.schedule("local~api-schedule").get()).id == created.id
    assert await schedule.get_log() == []

    # Ten seconds later (on the schedule clock) it fires: an actor run and a task run, both SCHEDULER's.
    clock.advance(seconds=10)
    actors_app.platform.scheduler.wake()
    log = await eventually(lambda: _log_of(schedule, 2), what="the firing's log")
    assert all(entry.level == "INFO" and entry.message.startswith("Started run") for entry in log), log
    assert log[0].created_at == dt.datetime(2030, 6, 1, 10, 0, tzinfo=dt.timezone.utc)
    task_run = await client.task(task.id).last_run(origin="SCHEDULER").get()
    assert (await client.actor(actor.id).last_run(origin="SCHEDULER").get()).id == task_run.id  # started second
    runs = (await client.actor(actor.id).runs().list()).items
    assert [run.actor_task_id for run in runs] == [None, task.id]  # the actions' order
    actor_run = runs[0]
    assert actor_run.meta.origin == "SCHEDULER"
    assert (await client.run(actor_run.id).get()).options.timeout_secs == 100
    assert task_run.actor_task_id == task.id
    record = await client.key_value_store(task_run.default_key_value_store_id).get_record("INPUT")
    assert record["value"] == {"t": 1, "u": 2}
    record = await client.key_value_store(actor_run.default_key_value_store_id).get_record("INPUT")
    assert record["value"] == {"a": 1}
    fired = await schedule.get()
    assert fired.last_run_at == dt.datetime(2030, 6, 1, 10, 0, tzinfo=dt.timezone.utc)
    assert fired.next_run_at == dt.datetime(2030, 6, 2, 10, 0, tzinfo=dt.timezone.utc)
    for run in (actor_run, task_run):
        finished = await client.run(run.id).wait_for_finish(wait_duration=dt.timedelta(seconds=60))
        assert status(finished) == "SUCCEEDED"

    # Updates: disabling clears the next firing, a new expression counts from now.
    disabled = await schedule.update(is_enabled=False)
    assert disabled.is_enabled is False and disabled.next_run_at is None
    moved = await schedule.update(is_enabled=True, cron_expression="*/5 * * * *", timezone="UTC")
    assert moved.next_run_at == dt.datetime(2030, 6, 1, 10, 5, tzinfo=dt.timezone.utc)
    await client.schedule(other.id).delete()
    assert await client.schedule(other.id).get() is None
    assert [s.name for s in (await schedules.list()).items] == ["api-schedule"]


async def _log_of(schedule, count: int):
    entries = await schedule.get_log()
    return entries if len(entries) >= count else None


async def test_schedule_refusals_in_apify_shape(api_url, api_token, actors_app):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    with pytest.raises(ApifyApiError, match="e-mail"):
        await client.schedules().create(name="mailer", cron_expression="@daily", is_enabled=True, is_exclusive=False,
                                        notifications_email=True)
    with pytest.raises(ApifyApiError, match="five fields"):
        await client.schedules().create(name="bad-cron", cron_expression="* * *", is_enabled=True, is_exclusive=False)
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        cases = [
            ({"name": "x", "cronExpression": "@daily", "surprise": 1}, "surprise"),
            ({"name": "x", "cronExpression": "@daily", "timezone": "Nowhere/Land"}, "time zone"),
            ({"name": "x", "cronExpression": "@daily", "isEnabled": "yes"}, "true or false"),
            ({"name": "x", "cronExpression": "@daily", "actions": [{"type": "RUN_ACTOR", "actorId": "x",
                                                                   "runOptions": {"maxItems": 0}}]}, "maxItems"),
        ]
        for body, message in cases:
            response = await http.post("/schedules", json=body)
            assert response.status_code == 400 and message in response.json()["error"]["message"], response.text
        assert (await http.get("/schedules/nope/log")).status_code == 404
    assert (await client.schedules().list()).items == []
