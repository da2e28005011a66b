"""The platform's composition root: one registry, engine, storages and data dir, and the services on them.

Over 400 lines on purpose: one short delegation per public operation, so callers need one object.

``Platform`` builds the stores and services and wires them together; its methods are the platform's
public surface (the server extension, the CLI and tests use them) and only delegate. Where things
happen: ``actors.py`` (actors, versions), ``build_service.py`` and ``builds.py`` (builds),
``runs/`` (started, watched, adopted), ``retention.py`` (expired, deleted), ``housekeeping.py``
(heartbeat, disk limits). It is thread-safe and blocking; async callers run its methods in a thread.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .account import Account
from .actors import ActorService
from .backends import create_backend
from .backends.base import Backend
from .build_service import BuildService
from .builds import BUILD_STATUSES_ACTIVE, Builder
from .changes import Changes, RunListener
from .clock import parse_iso, utcnow
from .config import PlatformConfig
from .errors import NotFound
from .housekeeping import Housekeeping
from .input_schema import InputCheck
from .images import download_wheels
from .lifecycle import ACTIVE_STATUSES, LABEL_ACTOR, LABEL_INSTANCE, LABEL_RUN, LABEL_TIMEOUT_AT, RunStatus
from .models import USERNAME, Actor, Build, Run, Schedule, ScheduleLogEntry, Task, Version
from .proxy import ProxyEndpoint
from .quota import Admission
from .registry import Registry
from .retention import Retention
from .schedules import Clock, Scheduler, ScheduleService
from .runs.container import NETWORK_NAME
from .runs.reconcile import ReconcileReport
from .runs.service import EventSink, RunService
from .runs.usage import UsageSampler
from .sources import ActorDefinition
from .storages import Storages
from .stores import Stores
from .tasks import TaskOptions, TaskService
from .webhooks.delivery import Delivery
from .webhooks.service import WebhookService, WebhookSettings
from .webhooks.store import WebhookStore

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATUSES", "LABEL_ACTOR", "LABEL_INSTANCE", "LABEL_RUN", "LABEL_TIMEOUT_AT", "NETWORK_NAME",
    "USERNAME", "Platform", "RunListener",
]


class Platform:
    def __init__(self, config: PlatformConfig | None = None, *, backend: Backend | None = None,
                 storages: Storages | None = None, clock: Clock = utcnow, wait_for_engine: bool = False) -> None:
        """``clock``: the time schedules fire by (tests pass one they move). ``wait_for_engine``: a local
        engine that does not answer yet is reached later (``connect_engine``); until ``accept_runs`` the
        platform serves what it stores and refuses starts with ``EngineUnavailable``."""
        self.config = config or PlatformConfig()
        self.data_dir = self.config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.data_dir / "registry.sqlite", synchronous=self.config.sqlite_synchronous)
        self.stores = Stores(self.registry)
        self.instance_id = self._instance_id()
        #: When the previous process serving this data dir was last alive (its last heartbeat).
        self.previous_heartbeat = parse_iso(self.stores.get_meta("heartbeat"))
        self.backend = backend if backend is not None else create_backend(self.config, connect=not wait_for_engine)
        self.storages = storages if storages is not None else Storages(
            self.data_dir / "storages", fsync=self.config.storage_sqlite_synchronous != "NORMAL",
            catalog_fsync=self.config.sqlite_synchronous != "NORMAL",
            max_storage_bytes=int(self.config.storage_max_mb * 2**20),
            quota_bytes=int(self.config.storage_quota_mb * 2**20))
        logs_dir = self.data_dir / "logs"
        self.changes = Changes()
        self.admission = Admission(self.stores.runs, self.config.memory_limit_mb)
        self.account = Account(self.stores, self.admission, retention_days=self.config.retention_days)
        self.actors = ActorService(self.stores, default_memory_mb=self.config.default_memory_mb,
                                   default_timeout_secs=self.config.default_timeout_secs)
        self.builder = Builder(
            self.stores.builds, self.backend, self.instance_id, logs_dir,
            base_image=self.config.base_image, build_memory_mb=self.config.build_memory_mb,
            download_wheels=download_wheels, push_to=self.config.registry,
            network=self.config.build_network, base_image_map=self.config.base_image_map,
        )
        self.builds = BuildService(self.stores, self.actors, self.builder, self.admission, self.changes)
        self.retention = Retention(self.stores, self.storages, self.backend, logs_dir=logs_dir,
                                   retention_days=self.config.retention_days,
                                   tombstone_retention_days=self.config.tombstone_retention_days)
        self.runs = RunService(self.stores, self.actors, self.builds, self.storages, self.backend, self.admission,
                               self.changes, self.retention, config=self.config, instance_id=self.instance_id,
                               logs_dir=logs_dir)
        self.webhook_delivery = Delivery(
            WebhookStore(self.registry), timeout_secs=self.config.webhook_timeout_secs,
            max_attempts=self.config.webhook_max_attempts, retry_base_secs=self.config.webhook_retry_base_secs)
        self.webhooks = WebhookService(self.webhook_delivery.store, self.actors, self.stores.runs,
                                       self.stores.tasks, self.webhook_delivery)
        self.changes.subscribe_events(self.webhooks.on_event)
        self.tasks = TaskService(self.stores, self.actors, self.runs)
        self.schedules = ScheduleService(self.stores, self.actors, self.tasks, self.runs, clock=clock)
        self.scheduler = Scheduler(self.schedules)
        self.housekeeping = Housekeeping(self.stores, self.runs, self.retention, self.storages, self.backend,
                                         self.config)
        self.usage = UsageSampler(self.stores.runs, self.backend, self._watched_containers,
                                  self.config.usage_sample_secs)
        self._closed = False

    def _instance_id(self) -> str:
        """One id per data directory: containers are labelled with it, so instances never mix."""
        value = self.stores.get_meta("instance_id")
        if value is None:
            value = secrets.token_hex(6)
            self.stores.set_meta("instance_id", value)
        return value

    # -- what the API sets once it serves ---------------------------------------------------------

    @property
    def actor_api_url(self) -> str | None:
        return self.runs.endpoints.actor_api_url

    @actor_api_url.setter
    def actor_api_url(self, value: str | None) -> None:
        self.runs.endpoints.actor_api_url = value

    @property
    def events_url_template(self) -> str | None:
        return self.runs.endpoints.events_url_template

    @events_url_template.setter
    def events_url_template(self, value: str | None) -> None:
        self.runs.endpoints.events_url_template = value

    @property
    def proxy_endpoint(self) -> ProxyEndpoint | None:
        """Where runs reach the forward proxy; set by the actor API while it serves the proxy."""
        return self.runs.endpoints.proxy_endpoint

    @proxy_endpoint.setter
    def proxy_endpoint(self, value: ProxyEndpoint | None) -> None:
        self.runs.endpoints.proxy_endpoint = value

    @property
    def event_sink(self) -> EventSink | None:
        """Delivers actor events (persistState, migrating, aborting...) to a run's websocket; set by the API."""
        return self.runs.event_sink

    @event_sink.setter
    def event_sink(self, value: EventSink | None) -> None:
        self.runs.event_sink = value

    # -- paths and listeners ----------------------------------------------------------------------

    def log_path(self, run_id: str) -> Path:
        return self.runs.log_path(run_id)

    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(run)`` on every run change (from platform threads); returns unsubscribe."""
        return self.changes.subscribe(listener)

    # -- actors and versions ----------------------------------------------------------------------

    def subscribe_builds(self, listener: RunListener) -> Callable[[], None]:
        """``listener(build)`` when a build starts and when it ends (from platform threads); returns unsubscribe."""
        return self.changes.subscribe_builds(listener)

    def active_builds(self) -> list[Build]:
        """Builds still READY or RUNNING, of every actor, newest first."""
        active = [build for actor in self.list_actors() for build in self.list_builds(actor["id"])
                  if build["status"] in BUILD_STATUSES_ACTIVE]
        return sorted(active, key=lambda build: build["started_at"], reverse=True)

    def create_actor(self, definition: ActorDefinition) -> Actor:
        return self.actors.create(definition)

    def get_actor(self, actor: str) -> Actor:
        return self.actors.get(actor)

    def list_actors(self) -> list[Actor]:
        return self.actors.all()

    def update_actor(self, actor: str, **values: Any) -> Actor:
        return self.actors.update(actor, **values)

    def versions(self, actor: str) -> list[Version]:
        return self.actors.versions(actor)

    def get_version(self, actor_id: str, version: str | None = None) -> Version:
        return self.actors.version(actor_id, version)

    def delete_actor(self, actor: str) -> None:
        self.retention.delete_actor(self.actors.get(actor))

    # -- tasks ------------------------------------------------------------------------------------

    def create_task(self, actor: str, name: str, *, options: TaskOptions | None = None, input: object = None,
                    title: str | None = None, description: str | None = None) -> Task:
        return self.tasks.create(actor, name, options=options, input=input, title=title, description=description)

    def get_task(self, task: str) -> Task:
        return self.tasks.get(task)

    def list_tasks(self) -> list[Task]:
        return self.tasks.all()

    def update_task(self, task: str, **changes: Any) -> Task:
        return self.tasks.update(task, **changes)

    def delete_task(self, task: str) -> None:
        self.tasks.delete(task)

    def start_task(self, task: str, *, input: object = None, build: str | None = None,
                   memory_mb: int | str | None = None, timeout_secs: int | str | None = None, origin: str = "API",
                   parent_run_id: str | None = None, web_public: bool = False,
                   webhooks: Sequence[WebhookSettings] = (), max_items: int | None = None,
                   restart_on_error: bool | None = None) -> Run:
        return self._with_ad_hoc_webhooks(webhooks, lambda: self.tasks.start(
            task, input=input, build=build, memory_mb=memory_mb, timeout_secs=timeout_secs, origin=origin,
            parent_run_id=parent_run_id, web_public=web_public, max_items=max_items,
            restart_on_error=restart_on_error))

    # -- schedules --------------------------------------------------------------------------------

    def create_schedule(self, fields: dict[str, Any]) -> Schedule:
        """``fields`` by column: name, cron_expression, timezone, is_enabled, is_exclusive, title, description,
        actions (Apify's action objects)."""
        return self.schedules.create(fields)

    def get_schedule(self, schedule: str) -> Schedule:
        return self.schedules.get(schedule)

    def list_schedules(self) -> list[Schedule]:
        return self.schedules.all()

    def update_schedule(self, schedule: str, fields: dict[str, Any]) -> Schedule:
        return self.schedules.update(schedule, fields)

    def delete_schedule(self, schedule: str) -> None:
        self.schedules.delete(schedule)

    def schedule_log(self, schedule: str) -> list[ScheduleLogEntry]:
        return self.schedules.log(schedule)

    # -- builds -----------------------------------------------------------------------------------

    def build(self, actor: str, *, version: str | None = None, tag: str | None = None, wait: bool = True) -> Build:
        return self.builds.build(actor, version=version, tag=tag, wait=wait)

    def get_build(self, build_id: str) -> Build:
        return self.builds.get(build_id)

    def wait_build(self, build_id: str, timeout: float | None = None) -> Build:
        return self.builds.wait(build_id, timeout)

    def list_builds(self, actor: str) -> list[Build]:
        return self.builds.of_actor(actor)

    def build_tags(self, actor_id: str) -> dict[str, str]:
        return self.builds.tags(actor_id)

    def build_log(self, build_id: str) -> bytes:
        return self.builds.log(build_id)

    def build_log_path(self, build_id: str) -> Path:
        """Where the build's log is written as it builds (followed by the streaming log endpoints)."""
        return self.builder.log_path(build_id)

    def resolve_build(self, actor_row: Actor, build: str | None) -> Build:
        return self.builds.resolve(actor_row, build)

    def delete_build(self, build_id: str) -> None:
        self.retention.delete_build(build_id)

    def memory_in_use(self) -> int:
        return self.admission.memory_in_use()

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, actor: str, *, build: str | None = None, memory_mb: int | str | None = None,
                  timeout_secs: int | str | None = None, input: bytes | str | dict[str, Any] | list[Any] | None = None,
                  content_type: str | None = None, origin: str = "API", parent_run_id: str | None = None,
                  web_public: bool = False, actor_task_id: str | None = None,
                  webhooks: Sequence[WebhookSettings] = (), max_items: int | None = None,
                  restart_on_error: bool = False) -> Run:
        """Validate, admit against the quota, record (READY) and hand the run to a watcher thread.

        ``webhooks``: ad-hoc webhooks of this run (their condition is the run), checked before it starts.
        """
        return self._with_ad_hoc_webhooks(webhooks, lambda: self.runs.start(
            actor, build=build, memory_mb=memory_mb, timeout_secs=timeout_secs, input=input,
            content_type=content_type, origin=origin, parent_run_id=parent_run_id, web_public=web_public,
            actor_task_id=actor_task_id, max_items=max_items, restart_on_error=restart_on_error))

    def _with_ad_hoc_webhooks(self, webhooks: Sequence[WebhookSettings], start: Callable[[], Run]) -> Run:
        """Start a run with its ad-hoc webhooks, checked before anything is stored."""
        self.webhooks.check_ad_hoc(webhooks)
        run = start()
        if webhooks:
            self.webhooks.attach_to_run(run, webhooks)
        return run

    def validate_input(self, actor: str, input: bytes | str | dict[str, Any] | list[Any] | None, *,
                       content_type: str | None = None, build: str | None = None) -> InputCheck:
        """Check an input against the actor's input schema as a start would (nothing is started)."""
        return self.runs.validate_input(actor, input, content_type=content_type, build=build)

    def resurrect_run(self, run_id: str, *, build: str | None = None, memory_mb: int | str | None = None,
                      timeout_secs: int | str | None = None, restart_on_error: bool | None = None) -> Run:
        return self.runs.resurrect(run_id, build=build, memory_mb=memory_mb, timeout_secs=timeout_secs,
                                   restart_on_error=restart_on_error)

    def abort_run(self, run_id: str, *, gracefully: bool = False) -> Run:
        return self.runs.abort(run_id, gracefully=gracefully)

    def metamorph_run(self, run_id: str, target_actor: str, *, build: str | None = None,
                      input: bytes | str | dict[str, Any] | list[Any] | None = None,
                      content_type: str | None = None) -> Run:
        return self.runs.metamorph(run_id, target_actor, build=build, input=input, content_type=content_type)

    def reboot_run(self, run_id: str) -> Run:
        return self.runs.reboot(run_id)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        return self.runs.wait(run_id, timeout)

    def set_status_message(self, run_id: str, message: str, *, terminal: bool = False) -> Run:
        return self.runs.set_status_message(run_id, message, terminal=terminal)

    def transition(self, run_id: str, target: RunStatus, **values: Any) -> Run:
        return self.runs.transition(run_id, target, **values)

    def get_run(self, run_id: str) -> Run:
        return self.runs.get_run(run_id)

    def list_runs(self, actor: str | None = None, *, status: str | Sequence[str] | None = None, desc: bool = True,
                  offset: int = 0, limit: int | None = None, origin: str | None = None,
                  started_before: str | None = None, started_after: str | None = None,
                  task: str | None = None) -> list[Run]:
        """Runs of all actors, of one ``actor``, or of one ``task``."""
        actor_id = self.actors.get(actor)["id"] if actor is not None else None
        task_id = self.tasks.get(task)["id"] if task is not None else None
        return self.stores.runs.query(actor_id, status=status, desc=desc, offset=offset, limit=limit, origin=origin,
                                      started_before=started_before, started_after=started_after,
                                      actor_task_id=task_id)

    def last_run(self, actor: str | None, *, status: Sequence[str] | None = None, origin: str | None = None,
                 task: str | None = None) -> Run:
        """The actor's (or the task's) most recently started run (of these statuses and origin); NotFound if none."""
        runs = self.list_runs(actor, status=status, origin=origin, desc=True, limit=1, task=task)
        if not runs:
            which = f" with status {', '.join(status)}" if status else ""
            owner = f"Actor {actor}" if task is None else f"Actor task {task}"
            raise NotFound(f"{owner} has no run{which}{f' of origin {origin}' if origin else ''} yet.")
        return runs[0]

    def runs_in(self, statuses: tuple[str, ...]) -> list[Run]:
        return self.stores.runs.in_statuses(statuses)

    def run_for_token(self, token: str) -> Run | None:
        return self.stores.runs.by_token(token)

    def run_for_web_id(self, web_id: str) -> Run | None:
        return self.stores.runs.by_web_id(web_id)

    def child_run_ids(self, run_id: str | None) -> set[str]:
        """Runs started from inside ``run_id`` (Actor.call): the parent may read them and their storages."""
        return self.stores.runs.child_ids(run_id) if run_id is not None else set()

    def run_log(self, run_id: str) -> bytes:
        return self.runs.log(run_id)

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run with its default storages, the unnamed ones it created, and its log (named
        storages stay)."""
        self.retention.delete_run(self.runs.get_run(run_id))

    def expire_runs(self) -> list[str]:
        """Apply the retention period now (the housekeeping thread does it hourly and at start)."""
        return self.retention.expire_runs()

    def tombstone_message(self, id_: str, what: str) -> str | None:
        return self.retention.tombstone_message(id_, what)

    def send_event(self, run_id: str, name: str, data: dict[str, Any] | None = None) -> bool:
        return self.runs.send_event(run_id, name, data)

    def is_watched(self, run_id: str) -> bool:
        return self.runs.is_watched(run_id)

    # -- web servers and the network --------------------------------------------------------------

    def web_url(self, run: Run) -> str | None:
        return self.runs.endpoints.web_url(run)

    def web_address(self, run_id: str) -> tuple[str, int] | None:
        return self.runs.web_address(run_id)

    def forget_web_address(self, run_id: str) -> None:
        self.runs.forget_web_address(run_id)

    def web_unavailable_reason(self) -> str | None:
        """Why no run's web server can be reached on this engine at all (None: they can)."""
        return self.backend.web_unavailable_reason

    def network_gateway(self) -> str:
        return self.runs.network_gateway()

    # -- background work, restarts, shutdown ------------------------------------------------------

    @property
    def engine_connected(self) -> bool:
        """False while a platform made with ``wait_for_engine`` has not reached its engine (or not finished
        its start-up work on it: ``accept_runs``)."""
        return self.backend.accepting

    def connect_engine(self) -> None:
        """Reach an engine that did not answer at start; ``EngineUnavailable`` while it still does not."""
        self.backend.connect()

    def accept_runs(self) -> None:
        """The start-up work on a newly reached engine is done (network, reconciliation): starts go through."""
        self.backend.accepting = True

    def start_background(self) -> None:
        """Start the housekeeping thread (heartbeat, retention, disk limits), the usage sampler and webhook
        delivery (which resumes the dispatches a previous process left unsent); the serving process calls this once."""
        self.housekeeping.start()
        self.usage.start()
        self.webhook_delivery.start()

    def _watched_containers(self) -> list[tuple[str, str]]:
        """(run id, container id) of every run this process watches and whose container exists."""
        return [(run_id, watcher.container_id) for run_id, watcher in list(self.runs.watchers.items())
                if watcher.container_id]

    def run_samples(self, run_id: str) -> list[dict[str, Any]]:
        """The run's memory and CPU samples, oldest first (bounded; older ones thinned)."""
        self.get_run(run_id)
        return self.stores.runs.samples(run_id)

    def start_scheduler(self) -> None:
        """Fire schedules from now on (the serving process calls this once, after ``reconcile``); firings
        missed while no server ran fire once now (see ``schedules.py``)."""
        self.scheduler.start()

    def reconcile(self) -> ReconcileReport:
        """Match unfinished runs with the engine's containers (adopt, finish or restart them), and store the
        webhook dispatches of events a previous server died before storing."""
        report = self.runs.reconcile(self.previous_heartbeat)
        self.webhooks.catch_up(self.previous_heartbeat, margin_secs=self.config.heartbeat_secs)
        log.info(
            "reconciled: adopted %s, finished %s, restarted %s, removed %s containers",
            len(report.adopted), len(report.finished), len(report.restarted), len(report.removed))
        return report

    def shutdown(self) -> None:
        """A planned stop of the serving process.

        ``migrate`` (default): tell running actors ``migrating``, give them ``migrate_grace_secs`` to
        persist, stop them, and restart them at the next start - nothing depends on how long the
        server stays down. ``detach``: leave the containers running to be adopted.
        """
        self.scheduler.stop()  # first: no firing may start a run while the others are being stopped
        if self.config.on_shutdown == "migrate":
            self.runs.migrate_all()
        self.close()

    def close(self) -> None:
        """Stop watching; containers keep running (they belong to the engine, not to this process)."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.stop()
        self.housekeeping.stop()
        self.usage.stop()
        self.runs.close()
        self.webhook_delivery.stop()
        self.registry.close()
        self.storages.close()

    @property
    def closed(self) -> bool:
        return self._closed
