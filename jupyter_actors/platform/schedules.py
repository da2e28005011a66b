"""Schedules: a cron expression in a time zone, and the actor or task runs it starts when it fires.

Apify's semantics: ``cronExpression`` has five fields (minute hour day-of-month month day-of-week) or
is one of ``@yearly @annually @monthly @weekly @daily @hourly``, read in ``timezone`` (an IANA name,
daylight-saving changes included); ``isExclusive`` skips a firing while a run the previous firing
started is still running; actions ``RUN_ACTOR`` (``actorId``, ``runInput`` {body, contentType},
``runOptions`` as a task's options) and ``RUN_ACTOR_TASK`` (``actorTaskId``, ``input`` laid over the
task's). Each firing is written to the schedule's log. Runs start through the run and task services,
with origin SCHEDULER.

Missed firings: schedules fire only while a server runs. A schedule whose firing fell due while no
server was running fires **once** when the scheduler starts, however many firings it missed, and then
goes on from the current time; the log says it was a late firing. A firing is moved on to the next
time before its runs start, so a crash can lose a firing but never repeat one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .actors import ActorService
from .clock import iso, parse_iso, utcnow
from .errors import Conflict, InvalidInput, NotFound, PlatformError
from .ids import new_id
from .lifecycle import ACTIVE_STATUSES
from .models import Schedule, ScheduleLogEntry
from .registry import dumps
from .runs.service import RunService
from .sources import ACTOR_NAME_RE
from .stores import Stores
from .tasks import TaskOptions, TaskService

log = logging.getLogger(__name__)

#: Apify's cron macros (croniter knows them too); anything else must have exactly five fields.
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly")
#: The longest the scheduler sleeps without looking again (a changed clock or a missed wake-up).
MAX_SLEEP_SECS = 60.0
ACTION_FIELDS = {
    "RUN_ACTOR": {"type", "id", "actorId", "runInput", "runOptions"},
    "RUN_ACTOR_TASK": {"type", "id", "actorTaskId", "input"},
}

Clock = Callable[[], dt.datetime]


def validate_cron(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput("cronExpression is required: five fields such as \"0 8 * * 1-5\", or @daily, @hourly...")
    expression = " ".join(expression.split())
    if expression.startswith("@"):
        if expression not in MACROS:
            raise InvalidInput(f"cronExpression {expression!r} is not a known macro; use one of {', '.join(MACROS)}.")
        return expression
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise InvalidInput(f"cronExpression {expression!r} is not valid: use five fields (minute hour day-of-month "
                           "month day-of-week), for example \"*/15 * * * *\", or a macro such as @daily.")
    return expression


def validate_timezone(name: object) -> str:
    if name is None:
        return "UTC"
    try:
        if not isinstance(name, str) or not name:
            raise ValueError
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone {name!r} is not a time zone; use an IANA name such as UTC or "
                           "Europe/Prague.") from None
    return name


def next_firing(expression: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` that ``expression`` matches in ``timezone`` (in UTC)."""
    local = after.astimezone(ZoneInfo(timezone))
    following: dt.datetime = croniter(expression, local).get_next(dt.datetime)
    return following.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class Fired:
    """One firing's outcome, as the log has it."""

    schedule_id: str
    run_ids: list[str]
    entries: list[tuple[str, str]]


class ScheduleService:
    """Schedules' records and their firing; ``clock`` is the time the schedules live by (injectable)."""

    def __init__(self, stores: Stores, actors: ActorService, tasks: TaskService, runs: RunService, *,
                 clock: Clock = utcnow) -> None:
        self.stores = stores
        self.actors = actors
        self.tasks = tasks
        self.runs = runs
        self.clock = clock
        #: Called after every change that may move the next firing (the scheduler wakes up).
        self.on_change: Callable[[], None] = lambda: None

    # -- records ----------------------------------------------------------------------------------

    def get(self, ref: str) -> Schedule:
        row = self.stores.schedules.find(ref)
        if row is None:
            raise NotFound(f"Schedule {ref!r} was not found.", type="record-not-found")
        return row

    def all(self) -> list[Schedule]:
        return self.stores.schedules.all()

    def log(self, ref: str) -> list[ScheduleLogEntry]:
        return self.stores.schedules.log(self.get(ref)["id"])

    def create(self, fields: dict[str, Any]) -> Schedule:
        """``fields`` in the registry's columns (see ``checked_fields``); cron_expression and name required."""
        values = self.checked_fields(fields, create=True)
        now = self.clock()
        schedule_id = new_id()
        values.setdefault("timezone", "UTC")
        values.setdefault("is_enabled", 1)
        values.setdefault("is_exclusive", 0)
        values.setdefault("actions", "[]")
        values["next_run_at"] = self._next_run_at(values, now)
        self.stores.schedules.insert({"id": schedule_id, **values, "created_at": iso(now), "modified_at": iso(now)})
        self.on_change()
        return self.get(schedule_id)

    def update(self, ref: str, fields: dict[str, Any]) -> Schedule:
        """Only what ``fields`` has changes; a new expression, zone or enabling counts from now."""
        schedule = self.get(ref)
        values = self.checked_fields(fields, create=False, schedule_id=schedule["id"])
        now = self.clock()
        if {"cron_expression", "timezone", "is_enabled"} & set(values):
            values["next_run_at"] = self._next_run_at({**schedule, **values}, now)
        if values:
            self.stores.schedules.update(schedule["id"], {**values, "modified_at": iso(now)})
            self.on_change()
        return self.get(schedule["id"])

    def delete(self, ref: str) -> None:
        self.stores.schedules.delete(self.get(ref)["id"])
        self.on_change()

    def checked_fields(self, fields: dict[str, Any], *, create: bool,
                       schedule_id: str | None = None) -> dict[str, Any]:
        """Columns from checked values: name, cron_expression, timezone, is_enabled, is_exclusive, title,
        description, actions (Apify's action objects; actors and tasks must exist)."""
        values: dict[str, Any] = {}
        if create and "name" not in fields:
            raise InvalidInput("A schedule needs a name, for example {\"name\": \"nightly\", "
                               "\"cronExpression\": \"0 3 * * *\", \"actions\": [...]}.")
        if create and "cron_expression" not in fields:
            validate_cron(None)
        if "name" in fields:
            name = fields["name"]
            if not isinstance(name, str) or not ACTOR_NAME_RE.match(name):
                raise InvalidInput(f"Schedule name {name!r} is not allowed: use 1-63 lowercase letters, digits and "
                                   "dashes, starting and ending with a letter or digit (e.g. nightly-crawl).")
            if self.stores.schedules.name_taken(name, other_than=schedule_id):
                raise Conflict(f"A schedule named {name!r} exists already.", type="record-or-token-already-exists")
            values["name"] = name
        if "cron_expression" in fields:
            values["cron_expression"] = validate_cron(fields["cron_expression"])
        if "timezone" in fields:
            values["timezone"] = validate_timezone(fields["timezone"])
        for flag in ("is_enabled", "is_exclusive"):
            if flag in fields:
                if not isinstance(fields[flag], bool):
                    raise InvalidInput(f"{_camel(flag)} must be true or false.")
                values[flag] = int(fields[flag])
        for text in ("title", "description"):
            if text in fields:
                if fields[text] is not None and not isinstance(fields[text], str):
                    raise InvalidInput(f"{text} must be a string.")
                values[text] = fields[text]
        if "actions" in fields:
            values["actions"] = dumps(self.checked_actions(fields["actions"]))
        return values

    def checked_actions(self, actions: object) -> list[dict[str, Any]]:
        """Apify's action objects, each with an id, the actor or task resolved to its id."""
        if actions is None:
            return []
        if not isinstance(actions, list):
            raise InvalidInput("actions must be a list of {\"type\": \"RUN_ACTOR\", \"actorId\": ...} or "
                               "{\"type\": \"RUN_ACTOR_TASK\", \"actorTaskId\": ...} objects.")
        checked = []
        for action in actions:
            kind = action.get("type") if isinstance(action, dict) else None
            if kind not in ACTION_FIELDS:
                raise InvalidInput("Each action needs a type: RUN_ACTOR or RUN_ACTOR_TASK.")
            unknown = set(action) - ACTION_FIELDS[kind]
            if unknown:
                raise InvalidInput(f"Unknown field(s) of a {kind} action: {', '.join(sorted(unknown))}. "
                                   f"Allowed: {', '.join(sorted(ACTION_FIELDS[kind]))}.")
            action_id = action.get("id") if isinstance(action.get("id"), str) else new_id()
            if kind == "RUN_ACTOR":
                checked.append(self._checked_run_actor(action, action_id))
            else:
                task_ref = action.get("actorTaskId")
                if not isinstance(task_ref, str):
                    raise InvalidInput("A RUN_ACTOR_TASK action needs actorTaskId (the task's id or name).")
                task_input = action.get("input")
                if task_input is not None and not isinstance(task_input, dict):
                    raise InvalidInput("A RUN_ACTOR_TASK action's input must be a JSON object (it overrides the "
                                       "task input's fields).")
                checked.append({"id": action_id, "type": kind, "actorTaskId": self.tasks.get(task_ref)["id"],
                                "input": task_input})
        return checked

    def _checked_run_actor(self, action: dict[str, Any], action_id: str) -> dict[str, Any]:
        actor_ref = action.get("actorId")
        if not isinstance(actor_ref, str):
            raise InvalidInput("A RUN_ACTOR action needs actorId (the actor's id or username~name).")
        run_input = action.get("runInput")
        if run_input is not None:
            if not isinstance(run_input, dict) or set(run_input) - {"body", "contentType"}:
                raise InvalidInput("runInput must be {\"body\": \"...\", \"contentType\": \"application/json\"}.")
            body, content_type = run_input.get("body"), run_input.get("contentType")
            if not isinstance(body, (str, type(None))) or not isinstance(content_type, (str, type(None))):
                raise InvalidInput("runInput.body and runInput.contentType must be strings.")
            if body is not None and (content_type or "application/json").split(";")[0].strip() == "application/json":
                try:
                    json.loads(body)
                except ValueError:
                    raise InvalidInput("runInput.body is not valid JSON; fix it or give another contentType.") from None
        options = TaskOptions.parse(action.get("runOptions"))
        return {"id": action_id, "type": "RUN_ACTOR", "actorId": self.actors.get(actor_ref)["id"],
                "runInput": run_input, "runOptions": options.to_json()}

    def _next_run_at(self, values: dict[str, Any], now: dt.datetime) -> str | None:
        if not values.get("is_enabled", 1):
            return None
        return iso(next_firing(values["cron_expression"], values.get("timezone") or "UTC", now))

    # -- firing -----------------------------------------------------------------------------------

    def fire_due(self, *, started_at: dt.datetime | None = None) -> list[Fired]:
        """Fire every schedule due now, once each; a firing due before ``started_at`` (the scheduler's
        start) was missed while no server ran, and is logged as such."""
        now = self.clock()
        fired = []
        for schedule in self.stores.schedules.due(iso(now)):  # type: ignore[arg-type]
            outcome = self.fire(schedule, now, started_at=started_at)
            if outcome is not None:
                fired.append(outcome)
        return fired

    def fire(self, schedule: Schedule, now: dt.datetime, *, started_at: dt.datetime | None = None) -> Fired | None:
        due_at = schedule["next_run_at"]
        assert due_at is not None, "only due schedules fire"
        following = iso(next_firing(schedule["cron_expression"], schedule["timezone"], now))
        if not self.stores.schedules.claim(schedule["id"], due_at, following, iso(now)):  # type: ignore[arg-type]
            return None  # changed or fired meanwhile
        entries: list[tuple[str, str]] = []
        due = parse_iso(due_at)
        if started_at is not None and due is not None and due < started_at:
            entries.append(("WARNING", f"The firing due at {due_at} was missed while no server was running; "
                                       "it fires once now."))
        still_running = [run_id for run_id in json.loads(schedule["last_run_ids"])
                         if (run := self.stores.runs.find(run_id)) is not None and run["status"] in ACTIVE_STATUSES]
        if schedule["is_exclusive"] and still_running:
            entries.append(("INFO", f"Skipped (isExclusive): run {', '.join(still_running)} of the previous "
                                    "firing is still running."))
            self.stores.schedules.record(schedule["id"], None, entries, iso(now))  # type: ignore[arg-type]
            return Fired(schedule["id"], [], entries)
        run_ids = []
        for action in json.loads(schedule["actions"]):
            try:
                run_id, what = self._start(action)
            except PlatformError as exc:
                entries.append(("ERROR", f"Action {action['id']} ({action['type']}) did not start: {exc.message}"))
                continue
            run_ids.append(run_id)
            entries.append(("INFO", f"Started run {run_id} of {what} (action {action['id']})."))
        if not json.loads(schedule["actions"]):
            entries.append(("INFO", "Fired with no actions: nothing to start."))
        self.stores.schedules.record(schedule["id"], run_ids, entries, iso(now))  # type: ignore[arg-type]
        return Fired(schedule["id"], run_ids, entries)

    def _start(self, action: dict[str, Any]) -> tuple[str, str]:
        """Start one action's run; returns its id and what it runs."""
        if action["type"] == "RUN_ACTOR_TASK":
            task = self.tasks.get(action["actorTaskId"])
            run = self.tasks.start(task["id"], input=action.get("input"), origin="SCHEDULER")
            return run["id"], f"task {task['name']}"
        actor = self.actors.get(action["actorId"])
        options = TaskOptions.parse(action.get("runOptions"))
        run_input = action.get("runInput") or {}
        run = self.runs.start(actor["id"], build=options.build, memory_mb=options.memory_mb,
                              timeout_secs=options.timeout_secs, input=run_input.get("body"),
                              content_type=run_input.get("contentType"), origin="SCHEDULER",
                              max_items=options.max_items, restart_on_error=options.restart_on_error)
        return run["id"], f"actor {actor['name']}"

    def seconds_until_next(self) -> float | None:
        at = parse_iso(self.stores.schedules.next_due_at())
        return None if at is None else (at - self.clock()).total_seconds()


class Scheduler:
    """The serving process's thread that fires due schedules: it sleeps until the next firing, or until a
    schedule changes (``wake``), and never starts runs other than through the schedule service."""

    def __init__(self, service: ScheduleService) -> None:
        self.service = service
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: dt.datetime | None = None
        service.on_change = self.wake

    def start(self) -> None:
        """Start the thread (once); firings missed before now fire once, at its first look."""
        if self._thread is not None:
            return
        self.started_at = self.service.clock()
        self._thread = threading.Thread(target=self._loop, name="jupyter-actors-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the schedules now (after a change, or after a test moved the clock)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.clear()
            try:
                self.service.fire_due(started_at=self.started_at)
                delay = self.service.seconds_until_next()
            except Exception:  # the registry closing under it, a bug: log, and look again later
                log.exception("scheduler: firing due schedules failed")
                delay = MAX_SLEEP_SECS
            self._wake.wait(MAX_SLEEP_SECS if delay is None else min(MAX_SLEEP_SECS, max(0.0, delay)))

    def stop(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)
