"""Webhooks: created, changed and listed; platform events turned into stored dispatches.

``on_event`` hears every run and build event (``Changes.event``), finds the webhooks whose condition
and event types match, renders each payload and stores the dispatch before the delivery thread may
send it. Its methods block: async callers run them in a thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from ..actors import ActorService
from ..changes import BUILD_CREATED, BUILD_FINISHED_EVENTS, RUN_CREATED, RUN_FINISHED_EVENTS, RUN_RESURRECTED
from ..clock import iso, utcnow
from ..errors import InvalidInput, NotFound
from ..ids import new_id
from ..lifecycle import RunStatus
from ..models import USERNAME, Build, Run
from ..registry import dumps
from ..stores import RunStore, TaskStore
from .delivery import Delivery
from .store import DISPATCH_ACTIVE, DISPATCH_FAILED, Dispatch, Webhook, WebhookStore
from .templates import DEFAULT_PAYLOAD_TEMPLATE, check_template, render

RUN_EVENT_TYPES = (RUN_CREATED, *RUN_FINISHED_EVENTS.values(), RUN_RESURRECTED)
BUILD_EVENT_TYPES = (BUILD_CREATED, *BUILD_FINISHED_EVENTS.values())
EVENT_TYPES = (*RUN_EVENT_TYPES, *BUILD_EVENT_TYPES)
TEST_EVENT = "TEST"
MAX_TEMPLATE_CHARS = 64 * 1024
MAX_URL_CHARS = 2048

#: Turns a run or build record into the object Apify's API shows (the payload's ``resource``); set by the API.
ResourceView = Callable[[str, Any], "dict[str, Any]"]


@dataclass(frozen=True)
class WebhookSettings:
    """Everything a webhook is, as the API hands it over (checked by ``WebhookService.check``)."""

    event_types: tuple[str, ...]
    request_url: str
    actor_id: str | None = None
    actor_task_id: str | None = None
    actor_run_id: str | None = None
    payload_template: str | None = None
    headers_template: str | None = None
    description: str | None = None
    is_ad_hoc: bool = False
    ignore_ssl_errors: bool = False
    do_not_retry: bool = False
    should_interpolate_strings: bool = False
    idempotency_key: str | None = None

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookSettings:
        values = {field.name: webhook[field.name] for field in dataclasses.fields(cls)}  # type: ignore[literal-required]
        values["event_types"] = tuple(json.loads(webhook["event_types"]))
        for flag in ("is_ad_hoc", "ignore_ssl_errors", "do_not_retry", "should_interpolate_strings"):
            values[flag] = bool(values[flag])
        return cls(**values)


class WebhookService:
    def __init__(self, store: WebhookStore, actors: ActorService, runs: RunStore, tasks: TaskStore,
                 delivery: Delivery) -> None:
        self.store = store
        self.actors = actors
        self.runs = runs
        self.tasks = tasks
        self.delivery = delivery
        self.resource_view: ResourceView | None = None

    # -- webhooks ---------------------------------------------------------------------------------

    def check(self, settings: WebhookSettings) -> WebhookSettings:
        """Refuse what cannot work (400), before anything is stored; an actor or task named by name becomes
        its id."""
        self.check_fields(settings)
        conditions = [value for value in (settings.actor_id, settings.actor_task_id, settings.actor_run_id) if value]
        if len(conditions) != 1:
            raise InvalidInput("condition needs exactly one of actorId, actorTaskId or actorRunId, "
                               'for example {"actorId": "my-actor"}.')
        if settings.is_ad_hoc and not settings.actor_run_id:
            raise InvalidInput("isAdHoc applies to a webhook of one run: set condition.actorRunId too.")
        if settings.actor_id:
            settings = dataclasses.replace(settings, actor_id=self.actors.get(settings.actor_id)["id"])
        if settings.actor_task_id:
            settings = dataclasses.replace(settings, actor_task_id=self._task_id(settings.actor_task_id))
        if settings.actor_run_id and self.runs.find(settings.actor_run_id) is None:
            raise NotFound(f"Run {settings.actor_run_id!r} was not found (condition.actorRunId).")
        return settings

    @staticmethod
    def check_fields(settings: WebhookSettings) -> None:
        """Everything but the condition: event types, the URL and the templates."""
        if not settings.event_types:
            raise InvalidInput(f"eventTypes needs at least one of {', '.join(EVENT_TYPES)}.")
        for event_type in settings.event_types:
            if event_type not in EVENT_TYPES:
                raise InvalidInput(f"Event type {event_type!r} is not one of {', '.join(EVENT_TYPES)}.")
        url = urlsplit(settings.request_url)
        if url.scheme not in ("http", "https") or not url.hostname or len(settings.request_url) > MAX_URL_CHARS:
            raise InvalidInput(f"requestUrl must be an absolute http(s) URL of at most {MAX_URL_CHARS} characters, "
                               f"not {settings.request_url[:200]!r}.")
        for name, template, is_headers in (("payloadTemplate", settings.payload_template, False),
                                           ("headersTemplate", settings.headers_template, True)):
            if template is None:
                continue
            if len(template) > MAX_TEMPLATE_CHARS:
                raise InvalidInput(f"{name} is longer than {MAX_TEMPLATE_CHARS} characters.")
            check_template(template, name, interpolate_strings=settings.should_interpolate_strings,
                           must_be_object=is_headers)

    def create(self, settings: WebhookSettings) -> tuple[Webhook, bool]:
        """Store a webhook (checked first); with an ``idempotency_key`` already used, the existing one (and False)."""
        settings = self.check(settings)
        now = iso(utcnow())
        row = {**self._columns(settings), "id": new_id(), "created_at": now, "modified_at": now}
        webhook = self.store.insert(row)
        return webhook, webhook["id"] == row["id"]

    def get(self, webhook_id: str) -> Webhook:
        webhook = self.store.get(webhook_id)
        if webhook is None:
            raise NotFound(f"Webhook {webhook_id!r} was not found.", type="record-not-found")
        return webhook

    def all(self, *, actor: str | None = None, task: str | None = None, desc: bool = False) -> list[Webhook]:
        """Every webhook, or those whose condition is ``actor`` or ``task`` (by id or name)."""
        actor_id = self.actors.get(actor)["id"] if actor is not None else None
        task_id = self._task_id(task) if task is not None else None
        return self.store.query(actor_id=actor_id, actor_task_id=task_id, desc=desc)

    def _task_id(self, ref: str) -> str:
        task = self.tasks.find(ref)
        if task is None:
            raise NotFound(f"Actor task {ref!r} was not found.", type="record-not-found")
        return task["id"]

    def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook:
        """Change some fields (WebhookSettings names); a new condition replaces the old one whole."""
        current = WebhookSettings.of(self.get(webhook_id))
        if {"actor_id", "actor_task_id", "actor_run_id"} & set(changes):
            current = dataclasses.replace(current, actor_id=None, actor_task_id=None, actor_run_id=None)
        settings = self.check(dataclasses.replace(current, **changes))
        self.store.update(webhook_id, self._columns(settings))
        return self.get(webhook_id)

    def delete(self, webhook_id: str) -> None:
        self.get(webhook_id)
        self.store.delete(webhook_id)

    def stats(self, webhook_id: str) -> tuple[int, Dispatch | None]:
        return self.store.stats(webhook_id)

    @staticmethod
    def _columns(settings: WebhookSettings) -> dict[str, Any]:
        columns = dataclasses.asdict(settings)
        columns["event_types"] = dumps(list(settings.event_types))
        for flag in ("is_ad_hoc", "ignore_ssl_errors", "do_not_retry", "should_interpolate_strings"):
            columns[flag] = int(columns[flag])
        return columns

    # -- ad-hoc webhooks of a run start -----------------------------------------------------------

    def check_ad_hoc(self, specs: Sequence[WebhookSettings]) -> None:
        """Check the ``webhooks`` of a run start before the run exists (all but the condition, the run's)."""
        for spec in specs:
            self.check_fields(spec)

    def attach_to_run(self, run: Run, specs: Sequence[WebhookSettings]) -> list[Webhook]:
        """Store a run start's ad-hoc webhooks, then tell them what already happened to the run (its creation,
        and its end if it ended meanwhile): dispatches are stored once per occurrence, so nothing doubles."""
        made = [self.create(dataclasses.replace(spec, actor_run_id=run["id"], actor_id=None, actor_task_id=None,
                                                is_ad_hoc=True))[0] for spec in specs]
        current = self.runs.find(run["id"]) or run
        self.on_event(RUN_CREATED, current)
        if RunStatus(current["status"]).is_terminal:
            self.on_event(RUN_FINISHED_EVENTS[current["status"]], current)
        return made

    # -- events and dispatches --------------------------------------------------------------------

    def on_event(self, event_type: str, record: Run | Build, *, happened_at: str | None = None) -> None:
        """A run or build event: store a dispatch for each matching webhook and wake the delivery.

        ``happened_at``: when a replayed event happened; webhooks created after it do not hear it.
        """
        if event_type in RUN_EVENT_TYPES:
            kind, run_id = "run", record["id"]
            data = {"actorId": record["actor_id"], "actorRunId": run_id}
            task_id = cast(Run, record)["actor_task_id"]
            if task_id:
                data["actorTaskId"] = task_id
            once = f"{run_id}:{event_type}"
            # A run is created once; it may end (and be resurrected) again after each resurrection.
            key = once if event_type == RUN_CREATED else f"{once}:{cast(Run, record)['resurrect_count']}"
        elif event_type in BUILD_EVENT_TYPES:
            kind, run_id, task_id = "build", None, None
            data = {"actorId": record["actor_id"], "actorBuildId": record["id"]}
            key = once = f"{record['id']}:{event_type}"
        else:
            return
        hooks = [hook for hook in self.store.matching(actor_id=record["actor_id"], run_id=run_id,
                                                                task_id=task_id)
                 if event_type in json.loads(hook["event_types"])
                 and (happened_at is None or hook["created_at"] <= happened_at)]
        if not hooks:
            return
        resource = self.resource_view(kind, record) if self.resource_view is not None else {
            "id": record["id"], "actId": record["actor_id"], "status": record["status"]}  # no API to show it
        for hook in hooks:
            # An ad-hoc webhook fires the first time its condition is met only (Apify): once per event type.
            self._store_dispatch(hook, event_type, data, resource, once if hook["is_ad_hoc"] else key)
        self.delivery.wake()

    def catch_up(self, since: dt.datetime | None, *, margin_secs: float) -> None:
        """Replay the events of runs and builds that changed since ``since`` (the previous server's last
        heartbeat, less ``margin_secs``): a server that died between storing a run's change and storing its
        dispatches left them unstored. Stored ones are not stored again (one per webhook and occurrence)."""
        if since is None:
            return
        cutoff = iso(since - dt.timedelta(seconds=margin_secs))
        assert cutoff is not None
        for run in self.store.runs_changed_since(cutoff):
            if run["created_at"] >= cutoff:
                self.on_event(RUN_CREATED, run, happened_at=run["created_at"])
            finished = run["finished_at"]
            if finished and finished >= cutoff and run["status"] in RUN_FINISHED_EVENTS:
                self.on_event(RUN_FINISHED_EVENTS[run["status"]], run, happened_at=finished)
        for build in self.store.builds_changed_since(cutoff):
            if build["started_at"] >= cutoff:
                self.on_event(BUILD_CREATED, build, happened_at=build["started_at"])
            finished = build["finished_at"]
            if finished and finished >= cutoff and build["status"] in BUILD_FINISHED_EVENTS:
                self.on_event(BUILD_FINISHED_EVENTS[build["status"]], build, happened_at=finished)

    def test(self, webhook_id: str) -> Dispatch:
        """A dispatch of the TEST event with a sample payload, sent like any other."""
        webhook = self.get(webhook_id)
        actor_id = webhook["actor_id"]
        if actor_id is None and webhook["actor_run_id"]:
            run = self.runs.find(webhook["actor_run_id"])
            actor_id = run["actor_id"] if run else None
        data: dict[str, Any] = {"actorId": actor_id} if actor_id else {}
        if webhook["actor_task_id"]:
            task = self.tasks.find(webhook["actor_task_id"])
            data = {"actorId": task["actor_id"], "actorTaskId": task["id"]} if task else {}
        dispatch_id = self._store_dispatch(webhook, TEST_EVENT, data or None, None, f"test:{new_id()}")
        self.delivery.wake()
        return self.dispatch(dispatch_id)

    def dispatch(self, dispatch_id: str) -> Dispatch:
        dispatch = self.store.dispatch(dispatch_id)
        if dispatch is None:
            raise NotFound(f"Webhook dispatch {dispatch_id!r} was not found.", type="record-not-found")
        return dispatch

    def dispatches(self, *, webhook_id: str | None = None, desc: bool = False) -> list[Dispatch]:
        if webhook_id is not None:
            self.get(webhook_id)
        return self.store.dispatches(webhook_id=webhook_id, desc=desc)

    def _store_dispatch(self, webhook: Webhook, event_type: str, data: dict[str, Any] | None,
                        resource: dict[str, Any] | None,
                        key: str) -> str:
        now = utcnow()
        context = {"userId": USERNAME, "createdAt": iso(now), "eventType": event_type, "eventData": data,
                   "resource": resource, "globals": {"dateISO": iso(now), "dateUnix": int(now.timestamp())}}
        interpolate = bool(webhook["should_interpolate_strings"])
        status, calls = DISPATCH_ACTIVE, []
        payload, headers = "null", "{}"
        try:
            payload = render(webhook["payload_template"] or DEFAULT_PAYLOAD_TEMPLATE, context,
                             interpolate_strings=interpolate, what="payloadTemplate")
            if webhook["headers_template"]:
                headers = render(webhook["headers_template"], context, interpolate_strings=interpolate,
                                 what="headersTemplate")
                if not isinstance(json.loads(headers), dict):
                    raise InvalidInput("headersTemplate did not render to a JSON object.")
        except InvalidInput as exc:  # nothing to send: the dispatch says why
            status = DISPATCH_FAILED
            calls = [{"startedAt": iso(now), "finishedAt": iso(now), "errorMessage": exc.message,
                      "responseStatus": None, "responseBody": None}]
        dispatch_id = new_id()
        self.store.add_dispatch({
            "id": dispatch_id, "webhook_id": webhook["id"], "event_key": key, "created_at": iso(now),
            "status": status, "event_type": event_type, "event_data": dumps(data) if data is not None else None,
            "payload": payload, "headers": headers, "calls": dumps(calls),
            "next_attempt_at": iso(now) if status == DISPATCH_ACTIVE else None,
        })
        return dispatch_id

