"""Schedules on a real platform with a clock the test moves: firing actors and tasks, isExclusive,
the log, and the rule for firings missed while no server ran (once at start, never more)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from jupyter_actors.platform.errors import InvalidInput
from jupyter_actors.platform.schedules import next_firing
from jupyter_actors.platform.tasks import TaskOptions

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"
UTC = dt.timezone.utc


class FakeClock:
    """The platform's schedules read the time from here; tests move it, then wake the scheduler."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def log_of(platform, name: str) -> list[tuple[str, str]]:
    return [(entry["level"], entry["message"]) for entry in platform.schedule_log(name)]


def wait_for_log(platform, name: str, count: int) -> list[tuple[str, str]]:
    """The schedule's log once it has ``count`` entries (the scheduler thread writes them)."""
    return wait_until(lambda: len(entries := log_of(platform, name)) >= count and entries, 60,
                      message=f"{count} log entries of {name}")  # type: ignore[return-value]


def test_next_firing_reads_the_expression_in_its_time_zone():
    after = dt.datetime(2030, 3, 30, 12, 0, tzinfo=UTC)
    assert next_firing("0 8 * * *", "UTC", after) == dt.datetime(2030, 3, 31, 8, 0, tzinfo=UTC)
    # 08:00 in Prague is 07:00 UTC in winter and 06:00 UTC after the switch to summer time (31 March 2030).
    assert next_firing("0 8 * * *", "Europe/Prague", after) == dt.datetime(2030, 3, 31, 6, 0, tzinfo=UTC)
    assert next_firing("@hourly", "UTC", after) == dt.datetime(2030, 3, 30, 13, 0, tzinfo=UTC)


def test_schedule_fires_an_actor_and_a_task_and_logs_it(platform_factory):
    clock = FakeClock(dt.datetime(2030, 1, 1, 11, 59, 30, tzinfo=UTC))
    platform = platform_factory(clock=clock)
    define_actor(platform, "sched-echo", "import os\nprint('task', os.environ.get('APIFY_ACTOR_TASK_ID'))\n")
    task = platform.create_task("sched-echo", "sched-task", input={"from": "task"},
                                options=TaskOptions(memory_mb=TEST_MEMORY_MB))
    schedule = platform.create_schedule({"name": "every-minute", "cron_expression": "* * * * *", "actions": [
        {"type": "RUN_ACTOR", "actorId": "sched-echo", "runOptions": {"memoryMbytes": TEST_MEMORY_MB},
         "runInput": {"body": '{"from": "actor"}', "contentType": "application/json"}},
        {"type": "RUN_ACTOR_TASK", "actorTaskId": "sched-task", "input": {"extra": 1}},
    ]})
    assert schedule["next_run_at"] == "2030-01-01T12:00:00.000Z"
    platform.start_scheduler()
    assert platform.schedules.fire_due() == []  # not due yet
    assert log_of(platform, "every-minute") == []

    clock.advance(seconds=30)
    platform.scheduler.wake()
    entries = wait_for_log(platform, "every-minute", 2)
    assert [level for level, _ in entries] == ["INFO", "INFO"], entries
    runs = platform.list_runs(desc=False)
    assert [(run["origin"], run["actor_task_id"]) for run in runs] == [("SCHEDULER", None), ("SCHEDULER", task["id"])]
    assert entries[0][1].startswith(f"Started run {runs[0]['id']} of actor sched-echo")
    assert entries[1][1].startswith(f"Started run {runs[1]['id']} of task sched-task")
    inputs = [json.loads(platform.storages.get_record(run["default_key_value_store_id"], "INPUT")[0]) for run in runs]
    assert inputs == [{"from": "actor"}, {"from": "task", "extra": 1}]
    for run in runs:
        assert platform.wait_run(run["id"], timeout=120)["status"] == "SUCCEEDED"
    assert f"task {task['id']}" in platform.run_log(runs[1]["id"]).decode()
    fired = platform.get_schedule("every-minute")
    assert (fired["last_run_at"], fired["next_run_at"]) == ("2030-01-01T12:00:00.000Z", "2030-01-01T12:01:00.000Z")

    # A deleted task: the firing says so in the log, and the other action still starts.
    platform.update_schedule("every-minute", {"actions": [
        {"type": "RUN_ACTOR_TASK", "actorTaskId": "sched-task"},
        {"type": "RUN_ACTOR", "actorId": "sched-echo", "runOptions": {"memoryMbytes": TEST_MEMORY_MB}}]})
    platform.delete_task("sched-task")
    clock.advance(minutes=1)
    platform.scheduler.wake()
    entries = wait_for_log(platform, "every-minute", 4)[2:]
    assert entries[0][0] == "ERROR" and "Actor task" in entries[0][1] and "was not found" in entries[0][1]
    assert entries[1][0] == "INFO" and "of actor sched-echo" in entries[1][1]
    wait_until(lambda: all(r["status"] == "SUCCEEDED" for r in platform.list_runs()), 120, message="runs done")


def test_exclusive_schedule_skips_while_its_run_runs(platform_factory):
    clock = FakeClock(dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC))
    platform = platform_factory(clock=clock)
    define_actor(platform, "sched-sleeper", SLEEPER)
    platform.create_schedule({"name": "exclusive", "cron_expression": "* * * * *", "is_exclusive": True,
                              "actions": [{"type": "RUN_ACTOR", "actorId": "sched-sleeper",
                                           "runOptions": {"memoryMbytes": TEST_MEMORY_MB}}]})
    platform.start_scheduler()
    clock.advance(minutes=1)
    platform.scheduler.wake()
    first = wait_for_log(platform, "exclusive", 1)[0]
    run_id = platform.list_runs()[0]["id"]
    assert first[1].startswith(f"Started run {run_id}")
    clock.advance(minutes=1)
    platform.scheduler.wake()
    skipped = wait_for_log(platform, "exclusive", 2)[1]
    assert skipped == ("INFO", f"Skipped (isExclusive): run {run_id} of the previous firing is still running.")
    assert len(platform.list_runs()) == 1
    platform.abort_run(run_id)
    platform.wait_run(run_id, timeout=60)
    clock.advance(minutes=1)
    platform.scheduler.wake()
    assert wait_for_log(platform, "exclusive", 3)[2][1].startswith("Started run")
    second = platform.list_runs()[0]["id"]
    assert second != run_id
    platform.abort_run(second)


def test_missed_firings_fire_once_at_start_across_a_restart(platform_factory, tmp_path):
    clock = FakeClock(dt.datetime(2030, 1, 1, 12, 30, tzinfo=UTC))
    data_dir = tmp_path / "shared-data"
    first = platform_factory(data_dir=data_dir, clock=clock)
    define_actor(first, "sched-hourly", "print('hourly')\n")
    first.create_schedule({"name": "hourly", "cron_expression": "@hourly", "timezone": "Europe/Prague",
                           "actions": [{"type": "RUN_ACTOR", "actorId": "sched-hourly",
                                        "runOptions": {"memoryMbytes": TEST_MEMORY_MB}}]})
    first.create_schedule({"name": "disabled", "cron_expression": "@hourly", "is_enabled": False})
    first.start_scheduler()
    assert first.get_schedule("hourly")["next_run_at"] == "2030-01-01T13:00:00.000Z"
    first.close()  # the server stops; three firings (13:00, 14:00, 15:00) fall due while it is down

    clock.advance(hours=3)
    second = platform_factory(data_dir=data_dir, clock=clock)
    assert second.list_runs() == []
    second.start_scheduler()
    entries = wait_for_log(second, "hourly", 2)
    assert entries[0] == ("WARNING", "The firing due at 2030-01-01T13:00:00.000Z was missed while no server was "
                                     "running; it fires once now.")
    assert entries[1][0] == "INFO" and entries[1][1].startswith("Started run")
    runs = second.list_runs()
    assert len(runs) == 1 and runs[0]["origin"] == "SCHEDULER"
    assert second.get_schedule("hourly")["next_run_at"] == "2030-01-01T16:00:00.000Z"
    assert second.schedules.fire_due() == []  # once, never more
    assert log_of(second, "disabled") == [] and second.get_schedule("disabled")["next_run_at"] is None
    assert second.wait_run(runs[0]["id"], timeout=120)["status"] == "SUCCEEDED"
    assert len(log_of(second, "hourly")) == 2 and len(second.list_runs()) == 1


def test_bad_schedules_are_refused_and_nothing_is_stored(platform_factory):
    platform = platform_factory(serve_api=False)
    define_actor(platform, "sched-bad", "print(1)\n")
    cases = [
        ({"cron_expression": "* * * * *"}, "needs a name"),
        ({"name": "x"}, "cronExpression is required"),
        ({"name": "x", "cron_expression": "* * * *"}, "five fields"),
        ({"name": "x", "cron_expression": "*/5 * * * * *"}, "five fields"),
        ({"name": "x", "cron_expression": "61 * * * *"}, "not valid"),
        ({"name": "x", "cron_expression": "@sometimes"}, "macro"),
        ({"name": "x", "cron_expression": "@daily", "timezone": "Mars/Olympus"}, "time zone"),
        ({"name": "x", "cron_expression": "@daily", "actions": [{"type": "RUN_SCRIPT"}]}, "RUN_ACTOR or"),
        ({"name": "x", "cron_expression": "@daily", "actions": [{"type": "RUN_ACTOR", "actorId": "nope"}]},
         "was not found"),
        ({"name": "x", "cron_expression": "@daily", "actions": [
            {"type": "RUN_ACTOR", "actorId": "sched-bad", "runOptions": {"maxTotalChargeUsd": 1}}]},
         "maxTotalChargeUsd"),
        ({"name": "x", "cron_expression": "@daily", "actions": [
            {"type": "RUN_ACTOR", "actorId": "sched-bad",
             "runInput": {"body": "{", "contentType": "application/json"}}]},
         "not valid JSON"),
        ({"name": "x", "cron_expression": "@daily", "actions": [
            {"type": "RUN_ACTOR_TASK", "actorTaskId": "nope"}]}, "was not found"),
    ]
    for fields, message in cases:
        with pytest.raises(Exception, match=message) as raised:
            platform.create_schedule(fields)
        assert raised.value.status in (400, 404), fields
    assert platform.list_schedules() == []
    with pytest.raises(InvalidInput):
        platform.create_schedule({"name": "Bad Name", "cron_expression": "@daily"})
