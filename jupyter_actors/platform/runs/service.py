"""Runs: started (validated, admitted against the quota, recorded READY, handed to a watcher),
resurrected, aborted, waited for, and restarted when the engine lost them.

Over 400 lines on purpose: every move in a run's life (start, resurrect, restart, metamorph and reboot
hand-overs, abort) goes through this one service, because it owns the watchers that carry them out.

The service owns the watchers of live runs; every run change it makes is stored first, then told to
listeners (``Changes``). Its methods block: async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .. import limits as limits_mod
from ..backends.base import Backend
from ..actors import ActorService
from ..build_service import BuildService
from ..changes import RUN_CREATED, Changes, run_event_type
from ..clock import iso, utcnow
from ..config import PlatformConfig
from ..errors import Conflict, InvalidInput, NotFound
from ..input_schema import InputCheck, check_input, invalid_input
from ..ids import new_id, new_token, token_hash
from ..lifecycle import (ACTIVE_STATUSES, HANDOVER_INTENTS, STOP_ABORT, STOP_METAMORPH, STOP_MIGRATE, STOP_REBOOT,
                         RunStatus, stop_outcome)
from ..limits import ContainerLimits
from ..models import Actor, Build, Run, Version
from ..quota import Admission
from ..registry import dumps
from ..retention import Retention
from ..runlog import run_log_path
from ..storages import NEW_STORAGE_BYTES, PushResult, Storages
from ..storages.schemas import check_record
from ..stores import Stores
from .container import NETWORK_NAME, Endpoints, container_port, container_spec
from .handover import MAX_METAMORPHS, current_actor_id, metamorph_input_key, metamorphs
from .reconcile import ReconcileReport, expired, reconcile
from .status_messages import StatusMessages
from .watcher import RunWatcher

log = logging.getLogger(__name__)

#: Delivers an actor event (persistState, migrating, aborting...) to a run's websocket; set by the API.
EventSink = Callable[[str, str, "dict[str, Any] | None"], bool]


class RunService:
    def __init__(self, stores: Stores, actors: ActorService, builds: BuildService, storages: Storages,
                 backend: Backend, admission: Admission, changes: Changes, retention: Retention, *,
                 config: PlatformConfig, instance_id: str, logs_dir: Path) -> None:
        self.stores = stores
        self.runs = stores.runs
        self.actors = actors
        self.builds = builds
        self.storages = storages
        self.backend = backend
        self.admission = admission
        self.changes = changes
        self.retention = retention
        self.config = config
        self.instance_id = instance_id
        self.logs_dir = logs_dir
        self.endpoints = Endpoints(actor_api_url=config.actor_api_url, web_base_url=config.web_base_url)
        self.event_sink: EventSink | None = None
        self.watchers: dict[str, RunWatcher] = {}
        #: True once a run's disk use must be measured by the platform (the engine cannot cap it).
        self.disk_measured = False
        self._network: str | None = None
        self._unwatched: set[str] = set()  # live runs no watcher followed at the last periodic pass
        self.status_messages = StatusMessages(config.status_message_rate, self._write_status_message)
        storages.on_items_dropped = self._items_dropped

    def log_path(self, run_id: str) -> Path:
        return run_log_path(self.logs_dir, run_id)

    # -- records ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        row = self.runs.find(run_id)
        if row is None:
            raise NotFound(self.retention.tombstone_message(run_id, "Run") or f"Run {run_id!r} was not found.",
                           type="record-not-found")
        return row

    def transition(self, run_id: str, target: RunStatus, **values: Any) -> Run:
        """Move a run to ``target`` if the lifecycle allows it (else Conflict), with other fields, atomically."""
        values = {key: iso(value) if isinstance(value, dt.datetime) else value for key, value in values.items()}
        previous = self.runs.transition(run_id, target, values)
        run = self.get_run(run_id)
        self.changes.notify(run)
        event = run_event_type(previous, run["status"])
        if event is not None:
            self.changes.event(event, run)
        return run

    def update_run(self, run_id: str, **values: Any) -> Run:
        self.runs.update(run_id, values)
        run = self.get_run(run_id)
        self.changes.notify(run)
        return run

    # -- starting ---------------------------------------------------------------------------------

    def start(self, actor: str, *, build: str | None = None, memory_mb: int | str | None = None,
              timeout_secs: int | str | None = None, input: bytes | str | dict[str, Any] | list[Any] | None = None,
              content_type: str | None = None, origin: str = "API", parent_run_id: str | None = None,
              web_public: bool = False, actor_task_id: str | None = None, max_items: int | None = None,
              restart_on_error: bool = False) -> Run:
        """Validate, admit against the quota, record (READY) and hand the run to a watcher thread.

        ``actor_task_id``: the task the run is started from (its run record and APIFY_ACTOR_TASK_ID say so).
        ``max_items``: Apify's ``maxItems``, the most items the run's default dataset keeps.
        ``restart_on_error``: a run that fails is started again (``restart_failed``)."""
        actor_row = self.actors.get(actor)
        build_row = self.builds.resolve(actor_row, build)
        version = self.actors.version(actor_row["id"], build_row["version_number"])
        memory = limits_mod.validate_memory(memory_mb if memory_mb is not None else actor_row["default_memory_mb"])
        limits_mod.check_memory_in_range(memory, actor_row.get("min_memory_mb"), actor_row.get("max_memory_mb"))
        timeout = limits_mod.validate_timeout(
            timeout_secs if timeout_secs is not None else actor_row["default_timeout_secs"]
        )
        body, content_type = checked_input(version, *input_body(input, content_type))
        if body is not None:  # INPUT must fit the default store's collections too: refused before anything is made
            check_record(version["key_value_store_schema"], "INPUT", body, content_type or "application/octet-stream")
        max_items = validate_max_items(max_items)
        limits = limits_mod.limits_for(memory, cpu_mode=self.config.cpu_mode, pids=self.config.pids_limit)
        port = container_port(version, self.config.container_port)  # may refuse: before anything is stored
        token = new_token()
        self.backend.require_engine()  # refused (503) before anything is stored while the engine is away
        # The default storages and the input must fit the storage quota (507), else none of them is made.
        self.storages.quota.check(3 * NEW_STORAGE_BYTES + len(body or b""), reserve=False)
        self.ensure_network()
        with self.admission.lock:
            self.admission.check(memory, what="run")
            run_id = new_id()
            # The version's storage schemas (actor.json storages) go with them: dataset views, store collections.
            kvs = self.storages.create_kvs(run_id=run_id, actor_id=actor_row["id"],
                                           schema=_loaded(version["key_value_store_schema"]))
            dataset = self.storages.create_dataset(run_id=run_id, actor_id=actor_row["id"], max_items=max_items,
                                                   schema=_loaded(version["dataset_schema"]))
            queue = self.storages.create_request_queue(run_id=run_id, actor_id=actor_row["id"])
            if body is not None:
                self.storages.set_record(kvs["id"], "INPUT", body, content_type)
            started = utcnow()
            self.runs.insert({
                "id": run_id,
                "actor_id": actor_row["id"],
                "build_id": build_row["id"],
                "build_number": build_row["build_number"],
                "status": RunStatus.READY.value,
                "status_message": "Starting",
                "created_at": iso(started),
                "started_at": iso(started),
                "timeout_secs": timeout,
                "timeout_at": iso(started + dt.timedelta(seconds=timeout)) if timeout else None,
                "memory_mb": memory,
                "disk_mb": limits.disk_mb,
                "cpu_cores": limits.cpu_cores,
                "cpu_mode": limits.cpu_mode,
                "input_key": "INPUT",
                "content_type": content_type,
                "default_key_value_store_id": kvs["id"],
                "default_dataset_id": dataset["id"],
                "default_request_queue_id": queue["id"],
                "token_hash": token_hash(token),
                "container_name": f"jupyter-actors-{self.instance_id}-{run_id}",
                "origin": origin,
                "parent_run_id": parent_run_id,
                "actor_task_id": actor_task_id,
                "options": dumps({"build": build or actor_row["default_build"], "maxItems": max_items,
                                  "restartOnError": bool(restart_on_error)}),
                "web_id": secrets.token_urlsafe(18),
                "web_public": int(bool(web_public)),
                "container_port": port,
            })
        run = self.get_run(run_id)
        self.changes.event(RUN_CREATED, run)
        return self._launch(run, actor_row, build_row, version, limits, token=token)

    def validate_input(self, actor: str, input: bytes | str | dict[str, Any] | list[Any] | None, *,
                       content_type: str | None = None, build: str | None = None) -> InputCheck:
        """What starting the actor with ``input`` would say about it, without starting anything."""
        actor_row = self.actors.get(actor)
        try:
            version_number: str | None = self.builds.resolve(actor_row, build)["version_number"]
        except NotFound:
            if build is not None:
                raise
            version_number = None  # not built yet: the newest version's schema
        version = self.actors.version(actor_row["id"], version_number)
        body, content_type = input_body(input, content_type)
        if not version.get("input_schema"):
            return InputCheck(value={}, errors=[])
        return check_version_input(version, body, content_type)

    def _launch(self, run: Run, actor: Actor, build: Build, version: Version, limits: ContainerLimits, *,
                token: str, mode: str = "new") -> Run:
        """Start the run's container; ``token`` is the run's API token in plain (the registry has only its hash).

        The returned run carries ``token``: the caller that started the run may hand it on.
        """
        spec = container_spec(run, actor, build, version, limits, token, instance_id=self.instance_id,
                              config=self.config, backend=self.backend, network=self._network,
                              endpoints=self.endpoints)
        self.disk_measured = not self.backend.disk_quota_supported(spec.image)
        watcher = RunWatcher(self, run["id"])
        self.watchers[run["id"]] = watcher
        self.changes.notify(run)
        watcher.launch(spec, mode=mode)
        return cast(Run, {**run, "token": token})

    def resurrect(self, run_id: str, *, build: str | None = None, memory_mb: int | str | None = None,
                  timeout_secs: int | str | None = None, restart_on_error: bool | None = None) -> Run:
        """A finished run goes back to RUNNING in a new container with the same storages.

        The old log is discarded, the timeout counts from now, and the duration includes the pause.
        ``restart_on_error`` (None: as the run had it) sets the run's ``restartOnError`` from now on.
        """
        run = self.get_run(run_id)
        if not RunStatus(run["status"]).is_terminal:
            raise Conflict(
                f"Run {run_id} is {run['status']}; only a finished run (SUCCEEDED, FAILED, TIMED-OUT, ABORTED) "
                "can be resurrected.", type="run-not-finished",
            )
        actor_row = self.actors.get(current_actor_id(run))  # after a metamorph: the target's builds
        build_row = self.builds.resolve(actor_row, build) if build else self.builds.get(run["build_id"])
        version = self.actors.version(actor_row["id"], build_row["version_number"])
        memory = limits_mod.validate_memory(memory_mb if memory_mb is not None else run["memory_mb"])
        timeout = limits_mod.validate_timeout(timeout_secs if timeout_secs is not None else run["timeout_secs"])
        limits = limits_mod.limits_for(memory, cpu_mode=self.config.cpu_mode, pids=self.config.pids_limit)
        self.backend.require_engine()  # refused (503) before anything changes while the engine is away
        self.ensure_network()
        if run["container_id"]:
            self.backend.remove(run["container_id"])
        token = new_token()  # only the hash of the old one is kept; a new container gets a new token
        options = json.loads(run["options"] or "{}")
        if restart_on_error is not None:
            options["restartOnError"] = bool(restart_on_error)
        with self.admission.lock:
            self.admission.check(memory, what="run")
            now = utcnow()
            run = self.transition(
                run_id, RunStatus.RUNNING,
                build_id=build_row["id"], build_number=build_row["build_number"],
                memory_mb=memory, disk_mb=limits.disk_mb, cpu_cores=limits.cpu_cores, cpu_mode=limits.cpu_mode,
                timeout_secs=timeout, timeout_at=iso(now + dt.timedelta(seconds=timeout)) if timeout else None,
                finished_at=None, exit_code=None, stop_intent=None, container_id=None, host_port=None, web_host=None,
                status_message="Resurrected", status_message_terminal=0,
                resurrect_count=run["resurrect_count"] + 1, token_hash=token_hash(token), options=dumps(options),
                # A new name: the old container may still be being removed by the engine.
                container_name=f"jupyter-actors-{self.instance_id}-{run_id}-r{run['resurrect_count'] + 1}",
            )
        return self._launch(run, actor_row, build_row, version, limits, token=token, mode="resurrect")

    def restart_lost(self, run: Run, reason: str) -> None:
        """A lost run starts again in a new container: same id, storages and environment (migration)."""
        run_id = run["id"]
        if run["status"] == RunStatus.TIMING_OUT:
            self.transition(run_id, RunStatus.TIMED_OUT, finished_at=utcnow(), status_message_terminal=1,
                            status_message=f"The run timed out after {run['timeout_secs']} seconds")
            return
        if run["status"] == RunStatus.ABORTING:
            self.transition(run_id, RunStatus.ABORTED, finished_at=utcnow(), status_message_terminal=1,
                            status_message="The run was aborted")
            return
        if run["stop_intent"] in HANDOVER_INTENTS:  # lost while making way for its next container: start that one
            self.hand_over(run)
            return
        if run["restart_count"] >= self.config.max_restarts:
            self.transition(run_id, RunStatus.FAILED, finished_at=utcnow(), status_message_terminal=1,
                            status_message=f"The run was lost {run['restart_count'] + 1} times ({reason}); "
                                           f"not restarted again")
            return
        if self._timed_out_meanwhile(run, f" (it was lost: {reason})"):
            return
        count = run["restart_count"] + 1
        self._relaunch(run, f"l{count}", mode="restart" if run["status"] == RunStatus.RUNNING else "new",
                       restart_count=count, status_message=f"Restarted: {reason}")

    def restart_failed(self, run: Run, reason: str) -> bool:
        """A run started with ``restartOnError`` whose process failed starts again in a new container (same
        id, storages and log), at most ``max_restarts`` times in all; False: it is not restarted (it fails)."""
        options = json.loads(run["options"] or "{}")
        if not options.get("restartOnError") or run["restart_count"] >= self.config.max_restarts:
            return False
        if expired(run):
            return False  # its time is up: it fails now rather than start again only to time out
        count = run["restart_count"] + 1
        self._relaunch(run, f"e{count}", mode="restart", restart_count=count,
                       status_message=f"Restarted after an error ({reason}, restartOnError)")
        return True

    def _timed_out_meanwhile(self, run: Run, why: str) -> bool:
        """A running run whose timeout passed while it had no container ends TIMED-OUT instead of starting one."""
        if not (expired(run) and run["status"] == RunStatus.RUNNING):
            return False
        self.transition(run["id"], RunStatus.TIMING_OUT, stop_intent="timeout")
        self.transition(run["id"], RunStatus.TIMED_OUT, finished_at=utcnow(), status_message_terminal=1,
                        status_message=f"The run timed out after {run['timeout_secs']} seconds{why}")
        return True

    def _relaunch(self, run: Run, name_suffix: str, *, mode: str, **values: Any) -> None:
        """The run goes on in a new container of its current build (the last metamorph's, if any), with a new
        token: only the hash of the old one is kept, and the old container took the plain one."""
        token = new_token()
        relaunched = self.update_run(
            run["id"], token_hash=token_hash(token), stop_intent=None, container_id=None, host_port=None,
            web_host=None, exit_code=None, status_message_terminal=0,
            container_name=f"jupyter-actors-{self.instance_id}-{run['id']}-{name_suffix}", **values,
        )
        build_row = self.builds.get(relaunched["build_id"])
        actor_row = self.actors.get(build_row["actor_id"])
        version = self.actors.version(actor_row["id"], build_row["version_number"])
        limits = limits_mod.limits_for(run["memory_mb"], cpu_mode=run["cpu_mode"], pids=self.config.pids_limit)
        self.ensure_network()
        self._launch(relaunched, actor_row, build_row, version, limits, token=token, mode=mode)

    def hand_over(self, run: Run) -> None:
        """The run's container was stopped to make way for another (metamorph, reboot): the run goes on, RUNNING,
        in a new container; its log continues."""
        if self._timed_out_meanwhile(run, ""):
            return
        intent = run["stop_intent"]
        if intent == STOP_METAMORPH:
            suffix, message = f"m{len(metamorphs(run))}", "Metamorphed"
        else:
            suffix, message = f"b{run['reboot_count']}", "Rebooted"
        self._relaunch(run, suffix, mode="restart", status_message=message)

    def metamorph(self, run_id: str, target_actor: str, *, build: str | None = None,
                  input: bytes | str | dict[str, Any] | list[Any] | None = None,
                  content_type: str | None = None) -> Run:
        """Turn a running run into a run of ``target_actor`` (Apify's metamorph): the same id, storages and
        timeout; its container is stopped and one of the target's build starts in its place. The new input
        is stored under INPUT-METAMORPH-n, which the new container's APIFY_INPUT_KEY names."""
        run = self._require_running(run_id, "metamorphed")
        if len(metamorphs(run)) >= MAX_METAMORPHS:
            raise InvalidInput(f"Run {run_id} was metamorphed {MAX_METAMORPHS} times, the most a run may be.",
                               type="max-metamorphs-exceeded")
        actor_row = self.actors.get(target_actor)
        build_row = self.builds.resolve(actor_row, build)
        version = self.actors.version(actor_row["id"], build_row["version_number"])
        body, content_type = checked_input(version, *input_body(input, content_type))
        port = container_port(version, self.config.container_port)
        key = metamorph_input_key(run)
        if body is not None:  # stored before the run says so: the next container reads it at once
            self.storages.set_record(run["default_key_value_store_id"], key, body, content_type)
        done = [*metamorphs(run), {"createdAt": iso(utcnow()), "actorId": actor_row["id"], "buildId": build_row["id"],
                                   "inputKey": key}]
        changes = {"metamorphs": dumps(done), "build_id": build_row["id"], "build_number": build_row["build_number"],
                   "input_key": key, "content_type": content_type, "container_port": port}
        self._stop_for(run, STOP_METAMORPH, f"Metamorphing into {actor_row['username']}/{actor_row['name']}",
                       changes)
        return self.get_run(run_id)

    def reboot(self, run_id: str) -> Run:
        """Restart a running run's container (Apify's reboot): the same input, storages and timeout."""
        run = self._require_running(run_id, "rebooted")
        self._stop_for(run, STOP_REBOOT, "Rebooting", {"reboot_count": run["reboot_count"] + 1})
        return self.get_run(run_id)

    def _require_running(self, run_id: str, what: str) -> Run:
        run = self.get_run(run_id)
        if run["status"] != RunStatus.RUNNING or run["stop_intent"] is not None:
            state = f"{run['status']}" + (f" and being stopped ({run['stop_intent']})" if run["stop_intent"] else "")
            raise Conflict(f"Run {run_id} is {state}; only a RUNNING run can be {what}.", type="run-not-running")
        return run

    def _stop_for(self, run: Run, intent: str, message: str, changes: dict[str, Any]) -> None:
        """Record the hand-over with ``changes`` (atomically, or Conflict), then stop the container gracefully;
        its watcher starts the next one once it is gone (or reconciliation does, if none watches it)."""
        if not self.runs.mark_stopping(run["id"], intent, message, changes):
            self._require_running(run["id"], "metamorphed or rebooted")  # says why
            raise Conflict(f"Run {run['id']} is being stopped already.", type="run-not-running")
        self.changes.notify(self.get_run(run["id"]))
        watcher = self.watchers.get(run["id"])
        if watcher is not None:
            watcher.stop_container(self.config.stop_grace_secs)

    def finish_stopped(self, run: Run) -> None:
        """A run the platform was stopping whose container is gone (lost while nobody watched it): it ends
        as its stop intended; its log holds all it printed while watched."""
        stopped = stop_outcome(run)
        assert stopped is not None, "only a run with a stop intent is finished as stopped"
        target, message = stopped
        try:
            self.transition(run["id"], target, finished_at=utcnow(), status_message=message,
                            status_message_terminal=1)
        except Conflict:
            log.warning("run %s is %s; not moving it to %s", run["id"], run["status"], target)

    # -- while it runs ----------------------------------------------------------------------------

    def set_status_message(self, run_id: str, message: str, *, terminal: bool = False) -> Run:
        """Set a live run's status message; bursts are coalesced (``status_message_rate``), the last one wins."""
        if not isinstance(message, str) or len(message) > 1000:
            raise InvalidInput("statusMessage must be a string of at most 1000 characters.")
        run = self.get_run(run_id)
        if RunStatus(run["status"]).is_terminal:
            raise Conflict(f"Run {run_id} has finished ({run['status']}); its status message is final.")
        if self.status_messages.set(run_id, message, bool(terminal)):
            return self.get_run(run_id)
        return cast(Run, {**run, "status_message": message, "status_message_terminal": int(bool(terminal))})

    def _items_dropped(self, run_id: str, push: PushResult) -> None:
        """The run's dataset reached its ``maxItems``: the run's status message says so (and stays so at the end)."""
        with contextlib.suppress(Conflict, NotFound):  # finished meanwhile, or deleted: its message is final
            self.set_status_message(run_id, f"The run's dataset reached maxItems ({push.max_items} items): "
                                            f"items pushed past it are not stored", terminal=True)

    def _write_status_message(self, run_id: str, message: str, terminal: bool) -> None:
        try:
            run = self.get_run(run_id)
            if RunStatus(run["status"]).is_terminal:  # it finished meanwhile: its message is final
                self.status_messages.forget(run_id)
                return
            self.update_run(run_id, status_message=message, status_message_terminal=int(terminal))
        except Exception:  # a coalesced write runs on a timer: log, never raise into it
            log.exception("could not store the status message of run %s", run_id)

    def abort(self, run_id: str, *, gracefully: bool = False) -> Run:
        """READY -> ABORTED at once; RUNNING -> ABORTING, then ABORTED when the container is gone."""
        run = self.get_run(run_id)
        if run["status"] == RunStatus.READY:
            try:
                return self.transition(run_id, RunStatus.ABORTED, stop_intent=STOP_ABORT, finished_at=utcnow(),
                                       status_message="The run was aborted before it started",
                                       status_message_terminal=1)
            except Conflict:
                run = self.get_run(run_id)  # it started meanwhile: abort the running container below
        run = self.transition(run_id, RunStatus.ABORTING, stop_intent=STOP_ABORT, status_message="Aborting")
        watcher = self.watchers.get(run_id)
        if watcher is not None:
            if gracefully:
                watcher.stop_container(self.config.stop_grace_secs, event="aborting")
            else:
                watcher.stop_container(0)
        elif run["container_id"]:
            self.backend.kill(run["container_id"])
        return run

    def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Block until the run is in a terminal status or ``timeout`` seconds passed; returns the run."""
        return self.changes.wait_for(lambda: self.get_run(run_id), lambda r: RunStatus(r["status"]).is_terminal,
                                     timeout)

    def log(self, run_id: str) -> bytes:
        self.get_run(run_id)
        path = self.log_path(run_id)
        return path.read_bytes() if path.exists() else b""

    def send_event(self, run_id: str, name: str, data: dict[str, Any] | None = None) -> bool:
        """Send an actor event to the run's websocket; False when no socket of the run is connected."""
        sink = self.event_sink
        return bool(sink and sink(run_id, name, data))

    # -- web servers and the network ----------------------------------------------------------------

    def web_address(self, run_id: str) -> tuple[str, int] | None:
        """Where the server reaches the run's web server (host, port); found once, then stored.

        On one engine it is the container's address on the runs' bridge; on a cluster the task's node
        or pod, known only once the engine placed it. None while unknown.
        """
        run = self.get_run(run_id)
        if run["host_port"]:
            return run["web_host"] or "127.0.0.1", run["host_port"]
        if not run["container_id"] or RunStatus(run["status"]).is_terminal:
            return None
        state = self.backend.inspect(run["container_id"])
        if state is None or not state.host_port:
            return None
        self.update_run(run_id, host_port=state.host_port, web_host=state.web_host)
        return state.web_host or "127.0.0.1", state.host_port

    def forget_web_address(self, run_id: str) -> None:
        """A cluster may move the run (a pod replaced after a disruption): look it up again next time."""
        if not self.backend.runs_on_this_host:
            self.update_run(run_id, host_port=None, web_host=None)

    def network_gateway(self) -> str:
        """The host's address on the runs' network: where the actor-facing API listens."""
        if not self.backend.has_network:
            raise InvalidInput(
                f"The {self.config.backend} backend has no network on this machine: set actor_api_host (the "
                "address the actor API listens on) and actor_api_url (the address the cluster's pods reach it at)."
            )
        self.ensure_network()
        gateway = self.backend.network_gateway(NETWORK_NAME)
        assert gateway is not None, "a backend with a network has a gateway on it"
        return gateway

    def ensure_network(self) -> None:
        if self._network is None and self.backend.has_network:
            self.backend.ensure_network(NETWORK_NAME)
            self._network = NETWORK_NAME

    # -- watchers, adoption, shutdown -------------------------------------------------------------

    def is_watched(self, run_id: str) -> bool:
        return run_id in self.watchers

    def forget_watcher(self, run_id: str, watcher: RunWatcher) -> None:
        if self.watchers.get(run_id) is watcher:
            del self.watchers[run_id]
            if not watcher.detached:
                self.status_messages.forget(run_id)

    def adopt(self, run: Run, container_id: str) -> None:
        """Watch an existing container again: the log continues from its stored tail, the timeout is re-armed."""
        self.disk_measured = self.disk_measured or not self.backend.disk_quota_supported(self.config.base_image)
        watcher = RunWatcher(self, run["id"])
        self.watchers[run["id"]] = watcher
        watcher.adopt(container_id)
        if run["status"] in (RunStatus.TIMING_OUT, RunStatus.ABORTING):  # finish the stop the last server began
            watcher.stop_container(self.config.stop_grace_secs,
                                   event="aborting" if run["status"] == RunStatus.TIMING_OUT else None)

    def reconcile(self, last_seen: dt.datetime | None) -> ReconcileReport:
        """Match unfinished runs with the engine's containers (adopt, finish or restart them)."""
        self.ensure_network()
        return reconcile(self.runs, self.backend, self, instance_id=self.instance_id, last_seen=last_seen,
                         orphan_grace_secs=self.config.orphan_grace_secs, log_path=self.log_path)

    def reconcile_unwatched(self) -> ReconcileReport | None:
        """While the server runs: reconcile the live runs no watcher follows (its engine restarted or
        was unreachable). A run must be unwatched at two passes in a row: one that is being launched
        has no watcher for an instant. Raises while the engine does not answer."""
        unwatched = {run["id"] for run in self.runs.in_statuses(ACTIVE_STATUSES) if not self.is_watched(run["id"])}
        ripe, self._unwatched = unwatched & self._unwatched, unwatched
        if not ripe:
            return None
        self.ensure_network()
        return reconcile(self.runs, self.backend, self, instance_id=self.instance_id, last_seen=None,
                         orphan_grace_secs=self.config.orphan_grace_secs, log_path=self.log_path, only=ripe)

    def migrate_all(self) -> None:
        """Tell running actors ``migrating``, give them ``migrate_grace_secs`` to persist, and stop them:
        they are restarted at the next start."""
        stopping = []
        for run_id, watcher in list(self.watchers.items()):
            if self.runs.mark_stopping(run_id, STOP_MIGRATE, "Migrating: the server is stopping"):
                watcher.stop_container(self.config.migrate_grace_secs, event="migrating")
                stopping.append(watcher)
        deadline = time.monotonic() + self.config.migrate_grace_secs + 10
        for watcher in stopping:
            watcher.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop watching; containers keep running (they belong to the engine, not to this process)."""
        for watcher in list(self.watchers.values()):
            watcher.close()
        for watcher in list(self.watchers.values()):
            watcher.thread.join(timeout=5)


def validate_max_items(value: object) -> int | None:
    """Apify's ``maxItems``: a positive whole number of dataset items, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"maxItems must be a whole number of items of at least 1, not {value!r}.")
    return value


def checked_input(version: Version, body: bytes | None,
                  content_type: str | None) -> tuple[bytes | None, str | None]:
    """The INPUT checked against the version's input schema, with its defaults filled in (Apify's rule);
    InvalidInput naming each bad field. Without a schema the input is stored as given."""
    if not version.get("input_schema"):
        return body, content_type
    check = check_version_input(version, body, content_type)
    if not check.valid:
        raise invalid_input(check.errors)
    return json.dumps(check.value).encode("utf-8"), content_type or "application/json; charset=utf-8"


def check_version_input(version: Version, body: bytes | None, content_type: str | None) -> InputCheck:
    """Check a start's input against the version's schema (which it must have)."""
    schema = json.loads(version["input_schema"] or "{}")
    if body is not None and (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise InvalidInput(f"This actor has an input schema, so its input must be a JSON object "
                           f"(application/json), not {content_type}.", type="invalid-input")
    return check_input(schema, json.loads(body) if body is not None else None)


def input_body(value: bytes | str | dict[str, Any] | list[Any] | None,
               content_type: str | None) -> tuple[bytes | None, str | None]:
    """The INPUT record as bytes with its content type; JSON input is checked to be JSON."""
    if value is None:
        return None, None
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
        content_type = content_type or "application/json; charset=utf-8"
    content_type = content_type or "application/json; charset=utf-8"
    limits_mod.validate_input(value)
    body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"Input is not valid JSON ({exc}); fix it or pass another content type.") from None
        except RecursionError:
            raise InvalidInput("Input is nested too deeply to be read as JSON; flatten it.") from None
    return body, content_type


__all__ = ["EventSink", "RunService", "check_version_input", "checked_input", "input_body", "validate_max_items"]


def _loaded(text: str | None) -> Any:
    return json.loads(text) if text else None
