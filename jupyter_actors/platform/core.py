"""The platform facade: actors, builds and runs on one engine, with one registry and one data dir.

Everything the server extension, the CLI and tests do goes through ``Platform``. It is thread-safe
and blocking; async callers run its methods in a thread.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import builds as builds_mod
from . import limits as limits_mod
from .backends.base import Backend, ContainerSpec
from .clock import iso, now_iso, parse_iso, utcnow
from .config import PlatformConfig
from .errors import Conflict, InvalidInput, MemoryLimitExceeded, NotFound
from .ids import new_id, new_token, token_hash
from .lifecycle import RunStatus, check_transition
from .registry import Registry, dumps
from .runs import STOP_ABORT, STOP_DISK, STOP_MIGRATE, RunWatcher
from .sources import ActorDefinition
from .environment import run_environment
from .proxy import proxy_environment

log = logging.getLogger(__name__)

LABEL_INSTANCE = "jupyter-actors.instance"
LABEL_RUN = "jupyter-actors.run-id"
LABEL_ACTOR = "jupyter-actors.actor-id"
LABEL_TIMEOUT_AT = "jupyter-actors.timeout-at"
ACTIVE_STATUSES = tuple(s.value for s in RunStatus if not s.is_terminal)
USERNAME = "local"
NETWORK_NAME = "jupyter-actors"

RunListener = Callable[[dict], None]


class Platform:
    def __init__(self, config: PlatformConfig | None = None, *, backend: Backend | None = None,
                 storages: Any = None) -> None:
        self.config = config or PlatformConfig()
        self.data_dir = self.config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.data_dir / "registry.sqlite")
        self.instance_id = self._instance_id()
        #: When the previous process serving this data dir was last alive (its last heartbeat).
        self.previous_heartbeat = parse_iso(self.registry.get_meta("heartbeat"))
        if backend is None:
            from .backends import create_backend

            backend = create_backend(self.config)
        self.backend = backend
        if storages is None:
            from .storages import Storages

            storages = Storages(self.data_dir / "storages")
        self.storages = storages
        self.builder = builds_mod.Builder(
            self.registry, backend, self.instance_id, self.data_dir / "logs",
            base_image=self.config.base_image, build_memory_mb=self.config.build_memory_mb,
            download_wheels=_wheel_downloader(), push_to=self.config.registry,
            network=self.config.build_network, base_image_map=self.config.base_image_map,
        )
        self._admission = threading.Lock()  # quota check + run/build record are one step
        self._changed = threading.Condition()
        self._watchers: dict[str, RunWatcher] = {}
        self._active_builds: dict[str, int] = {}
        self._listeners: list[RunListener] = []
        self._network: str | None = None
        self._monitor: threading.Thread | None = None
        self._disk_measured = False
        #: Delivers actor events (persistState, migrating, aborting...) to a run's websocket; set by the API.
        self.event_sink: Callable[[str, str, dict | None], bool] | None = None
        self.events_url_template: str | None = None
        self._closing = threading.Event()
        self.actor_api_url: str | None = self.config.actor_api_url

    def _instance_id(self) -> str:
        """One id per data directory: containers are labelled with it, so instances never mix."""
        value = self.registry.get_meta("instance_id")
        if value is None:
            value = secrets.token_hex(6)
            self.registry.set_meta("instance_id", value)
        return value

    # -- paths and listeners ----------------------------------------------------------------------

    def log_path(self, run_id: str) -> Path:
        return self.data_dir / "logs" / f"run-{run_id}.log"

    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(run_row)`` on every run change (from platform threads); returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, run: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(run)
            except Exception:  # noqa: BLE001 - a listener's bug must not break a run
                log.exception("run listener failed")
        with self._changed:
            self._changed.notify_all()

    # -- actors -----------------------------------------------------------------------------------

    def create_actor(self, definition: ActorDefinition) -> dict:
        """Create the actor, or update it (and its version) when one of that name exists."""
        now = now_iso()
        with self.registry.transaction() as db:
            existing = db.execute("SELECT * FROM actors WHERE name = ?", (definition.name,)).fetchone()
            values = {
                "title": definition.title,
                "description": definition.description,
                "modified_at": now,
            }
            if definition.default_memory_mb is not None:
                values["default_memory_mb"] = limits_mod.validate_memory(definition.default_memory_mb)
            values["min_memory_mb"], values["max_memory_mb"] = limits_mod.memory_range(
                values.get("default_memory_mb"), definition.min_memory_mb, definition.max_memory_mb)
            if definition.default_timeout_secs is not None:
                values["default_timeout_secs"] = limits_mod.validate_timeout(definition.default_timeout_secs)
            if existing is None:
                actor_id = new_id()
                self.registry.insert("actors", {
                    "id": actor_id, "name": definition.name, "username": USERNAME, "created_at": now,
                    "default_build": "latest",
                    "default_memory_mb": self.config.default_memory_mb,
                    "default_timeout_secs": self.config.default_timeout_secs,
                    **values,
                }, db)
            else:
                actor_id = existing["id"]
                self.registry.update("actors", {"id": actor_id}, values, db)
            db.execute("DELETE FROM versions WHERE actor_id = ? AND version_number = ?", (actor_id, definition.version))
            self.registry.insert("versions", {
                "actor_id": actor_id,
                "version_number": definition.version,
                "source_type": "SOURCE_FILES",
                "source_files": dumps(definition.files),
                "env_vars": dumps(definition.env_vars),
                "build_tag": definition.build_tag,
                "dockerfile": definition.dockerfile,
                "input_schema": dumps(definition.input_schema) if definition.input_schema is not None else None,
                "created_at": now,
                "modified_at": now,
            }, db)
        return self.get_actor(actor_id)

    def get_actor(self, actor: str) -> dict:
        """By id, name, or ``username/name`` / ``username~name``."""
        name = actor.replace("~", "/").split("/")[-1]
        row = self.registry.query_one("SELECT * FROM actors WHERE id = ? OR name = ?", (actor, name))
        if row is None:
            raise NotFound(f"Actor {actor!r} was not found.", type="record-not-found")
        return row

    def list_actors(self) -> list[dict]:
        return self.registry.query("SELECT * FROM actors ORDER BY created_at")

    def update_actor(self, actor: str, **values: Any) -> dict:
        """Change the default run configuration (default_build, default_memory_mb, default_timeout_secs)."""
        row = self.get_actor(actor)
        allowed = {"default_build", "default_memory_mb", "default_timeout_secs", "title", "description"}
        unknown = set(values) - allowed
        if unknown:
            raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}.")
        if "default_memory_mb" in values:
            values["default_memory_mb"] = limits_mod.validate_memory(values["default_memory_mb"])
        if "default_timeout_secs" in values:
            values["default_timeout_secs"] = limits_mod.validate_timeout(values["default_timeout_secs"])
        self.registry.update("actors", {"id": row["id"]}, {**values, "modified_at": now_iso()})
        return self.get_actor(row["id"])

    def versions(self, actor: str) -> list[dict]:
        row = self.get_actor(actor)
        return self.registry.query("SELECT * FROM versions WHERE actor_id = ? ORDER BY version_number", (row["id"],))

    def get_version(self, actor_id: str, version: str | None = None) -> dict:
        rows = self.registry.query(
            "SELECT * FROM versions WHERE actor_id = ? ORDER BY version_number DESC", (actor_id,)
        )
        for row in rows:
            if version is None or row["version_number"] == version:
                return row
        raise NotFound(f"Version {version or '(any)'} of actor {actor_id} was not found.")

    # -- builds -----------------------------------------------------------------------------------

    def build(self, actor: str, *, version: str | None = None, tag: str | None = None, wait: bool = True) -> dict:
        """Build a version (the newest by default); identical source reuses the existing build."""
        actor_row = self.get_actor(actor)
        version_row = self.get_version(actor_row["id"], version)
        tag = tag or version_row["build_tag"] or "latest"
        source_hash = self.builder.source_hash_of(version_row)
        reusable = self.builder.find_reusable(actor_row["id"], version_row["version_number"], source_hash)
        if reusable is not None:
            self._tag_build(actor_row["id"], tag, reusable["id"])
            return reusable
        with self._admission:
            self._check_quota(self.config.build_memory_mb, what="build")
            build = self.builder.create_record(actor_row, version_row, source_hash)
            self._active_builds[build["id"]] = build["memory_mb"]

        def run_build() -> None:
            try:
                finished = self.builder.run(actor_row, version_row, build)
                if finished["status"] == "SUCCEEDED":
                    self._tag_build(actor_row["id"], tag, build["id"])
            finally:
                self._active_builds.pop(build["id"], None)
                with self._changed:
                    self._changed.notify_all()

        if wait:
            run_build()
            return self.get_build(build["id"])
        threading.Thread(target=run_build, name=f"build-{build['id']}", daemon=True).start()
        return build

    def _tag_build(self, actor_id: str, tag: str, build_id: str) -> None:
        with self.registry.transaction() as db:
            db.execute("INSERT OR REPLACE INTO build_tags (actor_id, tag, build_id) VALUES (?, ?, ?)",
                       (actor_id, tag, build_id))

    def get_build(self, build_id: str) -> dict:
        return builds_mod.get_build(self.registry, build_id)

    def wait_build(self, build_id: str, timeout: float | None = None) -> dict:
        return self._wait_for(lambda: self.get_build(build_id), lambda b: b["status"] not in builds_mod.BUILD_STATUSES_ACTIVE, timeout)

    def list_builds(self, actor: str) -> list[dict]:
        row = self.get_actor(actor)
        return self.registry.query("SELECT * FROM builds WHERE actor_id = ? ORDER BY started_at", (row["id"],))

    def build_tags(self, actor_id: str) -> dict[str, str]:
        rows = self.registry.query("SELECT tag, build_id FROM build_tags WHERE actor_id = ?", (actor_id,))
        return {row["tag"]: row["build_id"] for row in rows}

    def build_log(self, build_id: str) -> bytes:
        self.get_build(build_id)
        path = self.builder.log_path(build_id)
        return path.read_bytes() if path.exists() else b""

    def resolve_build(self, actor_row: dict, build: str | None) -> dict:
        """A tag (``latest``) or a build number (``0.0.3``) to a finished build."""
        wanted = build or actor_row["default_build"] or "latest"
        build_id = self.build_tags(actor_row["id"]).get(wanted)
        row = None
        if build_id is not None:
            row = self.get_build(build_id)
        else:
            row = self.registry.query_one(
                "SELECT * FROM builds WHERE actor_id = ? AND (build_number = ? OR id = ?)",
                (actor_row["id"], wanted, wanted),
            )
        if row is None:
            raise NotFound(
                f"Actor {actor_row['name']} has no build {wanted!r}; build it first "
                f"(tags: {', '.join(sorted(self.build_tags(actor_row['id']))) or 'none'}).",
                type="record-not-found",
            )
        if row["status"] != "SUCCEEDED":
            raise InvalidInput(f"Build {row['build_number']} of {actor_row['name']} is {row['status']}, not SUCCEEDED.")
        return row

    # -- quota ------------------------------------------------------------------------------------

    def memory_in_use(self) -> int:
        placeholders = ",".join("?" for _ in ACTIVE_STATUSES)
        row = self.registry.query_one(
            f"SELECT COALESCE(SUM(memory_mb), 0) AS used FROM runs WHERE status IN ({placeholders})", ACTIVE_STATUSES
        )
        return int(row["used"]) + sum(self._active_builds.values())  # type: ignore[index]

    def _check_quota(self, memory_mb: int, *, what: str) -> None:
        used = self.memory_in_use()
        limit = self.config.memory_limit_mb
        if used + memory_mb > limit:
            raise MemoryLimitExceeded(
                f"Starting this {what} needs {memory_mb} MB, but {used} MB of your {limit} MB memory limit "
                f"is in use by running runs and builds ({limit - used} MB free). Wait for a run to finish, "
                "abort one, or start with less memory.",
            )

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, actor: str, *, build: str | None = None, memory_mb: int | str | None = None,
                  timeout_secs: int | str | None = None, input: bytes | str | dict | list | None = None,
                  content_type: str | None = None, origin: str = "API", parent_run_id: str | None = None,
                  web_public: bool = False) -> dict:
        """Validate, admit against the quota, record (READY) and hand the run to a watcher thread."""
        actor_row = self.get_actor(actor)
        build_row = self.resolve_build(actor_row, build)
        memory = limits_mod.validate_memory(memory_mb if memory_mb is not None else actor_row["default_memory_mb"])
        limits_mod.check_memory_in_range(memory, actor_row.get("min_memory_mb"), actor_row.get("max_memory_mb"))
        timeout = limits_mod.validate_timeout(
            timeout_secs if timeout_secs is not None else actor_row["default_timeout_secs"]
        )
        body, content_type = _input_body(input, content_type)
        limits = limits_mod.limits_for(memory, cpu_mode=self.config.cpu_mode, pids=self.config.pids_limit)
        container_port = self._container_port(actor_row, build_row)  # may refuse: before anything is stored
        token = new_token()
        self._ensure_network()
        with self._admission:
            self._check_quota(memory, what="run")
            run_id = new_id()
            kvs = self.storages.create_kvs(run_id=run_id, actor_id=actor_row["id"])
            dataset = self.storages.create_dataset(run_id=run_id, actor_id=actor_row["id"])
            queue = self.storages.create_request_queue(run_id=run_id, actor_id=actor_row["id"])
            if body is not None:
                self.storages.set_record(kvs["id"], "INPUT", body, content_type)
            started = utcnow()
            run = {
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
                "options": dumps({"build": build or actor_row["default_build"]}),
                "web_id": secrets.token_urlsafe(18),
                "web_public": int(bool(web_public)),
                "container_port": container_port,
            }
            self.registry.insert("runs", run)
        return self._launch(run_id, actor_row, build_row, limits, token=token)

    def _launch(self, run_id: str, actor_row: dict, build_row: dict, limits, *, token: str,
                mode: str = "new") -> dict:
        """Start the run's container; ``token`` is the run's API token in plain (the registry has only its hash).

        The returned run carries ``token``: the caller that started the run may hand it on.
        """
        spec = self._container_spec(self.get_run(run_id), actor_row, build_row, limits, token)
        self._disk_measured = not getattr(self.backend, "disk_quota_supported", lambda _: True)(spec.image)
        watcher = RunWatcher(self, run_id)
        self._watchers[run_id] = watcher
        self._notify(self.get_run(run_id))
        watcher.launch(spec, mode=mode)
        return {**self.get_run(run_id), "token": token}

    def resurrect_run(self, run_id: str, *, build: str | None = None, memory_mb: int | str | None = None,
                      timeout_secs: int | str | None = None) -> dict:
        """A finished run goes back to RUNNING in a new container with the same storages.

        The old log is discarded, the timeout counts from now, and the duration includes the pause.
        """
        run = self.get_run(run_id)
        if not RunStatus(run["status"]).is_terminal:
            raise Conflict(
                f"Run {run_id} is {run['status']}; only a finished run (SUCCEEDED, FAILED, TIMED-OUT, ABORTED) "
                "can be resurrected.", type="run-not-finished",
            )
        actor_row = self.get_actor(run["actor_id"])
        build_row = self.resolve_build(actor_row, build) if build else self.get_build(run["build_id"])
        memory = limits_mod.validate_memory(memory_mb if memory_mb is not None else run["memory_mb"])
        timeout = limits_mod.validate_timeout(timeout_secs if timeout_secs is not None else run["timeout_secs"])
        limits = limits_mod.limits_for(memory, cpu_mode=self.config.cpu_mode, pids=self.config.pids_limit)
        self._ensure_network()
        if run["container_id"]:
            self.backend.remove(run["container_id"])
        token = new_token()  # only the hash of the old one is kept; a new container gets a new token
        with self._admission:
            self._check_quota(memory, what="run")
            now = utcnow()
            self.transition(
                run_id, RunStatus.RUNNING,
                build_id=build_row["id"], build_number=build_row["build_number"],
                memory_mb=memory, disk_mb=limits.disk_mb, cpu_cores=limits.cpu_cores, cpu_mode=limits.cpu_mode,
                timeout_secs=timeout, timeout_at=iso(now + dt.timedelta(seconds=timeout)) if timeout else None,
                finished_at=None, exit_code=None, stop_intent=None, container_id=None, host_port=None, web_host=None,
                status_message="Resurrected", status_message_terminal=0,
                resurrect_count=run["resurrect_count"] + 1, token_hash=token_hash(token),
                # A new name: the old container may still be being removed by the engine.
                container_name=f"jupyter-actors-{self.instance_id}-{run_id}-r{run['resurrect_count'] + 1}",
            )
        return self._launch(run_id, actor_row, build_row, limits, token=token, mode="resurrect")

    def _container_port(self, actor: dict, build: dict) -> int:
        """The port the actor's web server listens on: its own APIFY_CONTAINER_PORT, else the default."""
        version = self.get_version(actor["id"], build["version_number"])
        for variable in json.loads(version["env_vars"]):
            if variable["name"] in ("APIFY_CONTAINER_PORT", "ACTOR_WEB_SERVER_PORT"):
                try:
                    return int(variable["value"])
                except (TypeError, ValueError):
                    raise InvalidInput(f"{variable['name']} must be a port number, not {variable['value']!r}.") from None
        return self.config.container_port

    def web_url(self, run: dict) -> str | None:
        return f"{self.config.web_base_url}{run['web_id']}/" if run.get("web_id") else None

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
        self._update_run(run_id, host_port=state.host_port, web_host=state.web_host)
        return state.web_host or "127.0.0.1", state.host_port

    def forget_web_address(self, run_id: str) -> None:
        """A cluster may move the run (a pod replaced after a disruption): look it up again next time."""
        if not getattr(self.backend, "runs_on_this_host", True):
            self._update_run(run_id, host_port=None, web_host=None)

    def web_unavailable_reason(self) -> str | None:
        """Why no run's web server can be reached on this engine at all (None: they can)."""
        return getattr(self.backend, "web_unavailable_reason", None)

    def run_for_web_id(self, web_id: str) -> dict | None:
        return self.registry.query_one("SELECT * FROM runs WHERE web_id = ?", (web_id,))

    def _container_spec(self, run: dict, actor: dict, build: dict, limits, token: str) -> ContainerSpec:
        version = self.get_version(actor["id"], build["version_number"])
        env = run_environment(
            {**run, "token": token}, actor, build, api_url=self.actor_api_url, container_url=self.web_url(run),
            events_url=self.events_url_template.format(run_id=run["id"], token=token)
            if self.events_url_template else None,
            persist_state_interval_secs=self.config.persist_state_interval_secs,
            container_port=run["container_port"] or self.config.container_port, custom=json.loads(version["env_vars"]),
            proxy=proxy_environment(self, {**run, "token_hash": token_hash(token)}),
        )
        labels = {
            LABEL_INSTANCE: self.instance_id,
            LABEL_RUN: run["id"],
            LABEL_ACTOR: actor["id"],
            LABEL_TIMEOUT_AT: run["timeout_at"] or "",
        }
        return ContainerSpec(
            name=run["container_name"], image=build["image"], env=env, labels=labels, limits=limits,
            user=self.config.container_user, network=self._network,
            publish_port=run["container_port"] or self.config.container_port,
            startup_nano_cpus=self._startup_nano_cpus(limits),
        )

    def _startup_nano_cpus(self, limits) -> int | None:
        """The boosted CPU of a run's first seconds, when the boost is on and would change anything."""
        if self.config.startup_boost_secs <= 0 or limits.cpu_mode != "quota" or not hasattr(self.backend, "set_cpu"):
            return None
        boosted = int(min(1.0, limits_mod.host_cores()) * 1e9)
        return boosted if boosted > limits.nano_cpus else None

    def network_gateway(self) -> str:
        """The host's address on the runs' network: where the actor-facing API listens."""
        if not hasattr(self.backend, "network_gateway"):
            raise InvalidInput(
                f"The {self.config.backend} backend has no network on this machine: set actor_api_host (the "
                "address the actor API listens on) and actor_api_url (the address the cluster's pods reach it at)."
            )
        self._ensure_network()
        return self.backend.network_gateway(NETWORK_NAME)

    def _ensure_network(self) -> None:
        if self._network is None and hasattr(self.backend, "ensure_network"):
            self.backend.ensure_network(NETWORK_NAME)
            self._network = NETWORK_NAME

    def get_run(self, run_id: str) -> dict:
        row = self.registry.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            from .retention import tombstone_message

            raise NotFound(tombstone_message(self, run_id, "Run") or f"Run {run_id!r} was not found.",
                           type="record-not-found")
        return row

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run with its default storages and log (named storages stay)."""
        from .retention import delete_run

        delete_run(self, run_id)

    def delete_build(self, build_id: str) -> None:
        from .retention import delete_build

        delete_build(self, build_id)

    def expire_runs(self) -> list[str]:
        """Apply the retention period now (the housekeeping thread does it hourly and at start)."""
        from .retention import expire_runs

        return expire_runs(self)

    def run_for_token(self, token: str) -> dict | None:
        return self.registry.query_one("SELECT * FROM runs WHERE token_hash = ?", (token_hash(token),))

    def list_runs(self, actor: str | None = None, *, status: str | Sequence[str] | None = None, desc: bool = True,
                  offset: int = 0, limit: int | None = None, origin: str | None = None,
                  started_before: str | None = None, started_after: str | None = None) -> list[dict]:
        """Runs, oldest first unless ``desc``; ``status`` is one status or several (any of them),
        ``started_before``/``started_after`` are ISO timestamps (inclusive bounds)."""
        clauses, params = [], []
        if actor is not None:
            clauses.append("actor_id = ?")
            params.append(self.get_actor(actor)["id"])
        statuses = [status] if isinstance(status, str) else list(status or ())
        if statuses:
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        for column, value in (("origin = ?", origin), ("started_at <= ?", started_before),
                              ("started_at >= ?", started_after)):
            if value is not None:
                clauses.append(column)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if desc else "ASC"
        return self.registry.query(
            f"SELECT * FROM runs {where} ORDER BY created_at {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, limit if limit is not None else -1, offset],
        )

    def last_run(self, actor: str, *, status: Sequence[str] | None = None, origin: str | None = None) -> dict:
        """The actor's most recently started run (of these statuses and origin); NotFound if none."""
        runs = self.list_runs(actor, status=status, origin=origin, desc=True, limit=1)
        if not runs:
            which = f" with status {', '.join(status)}" if status else ""
            raise NotFound(f"Actor {actor} has no run{which}{f' of origin {origin}' if origin else ''} yet.")
        return runs[0]

    def transition(self, run_id: str, target: RunStatus, **values: Any) -> dict:
        """Move a run to ``target`` if the lifecycle allows it (else Conflict), with other fields, atomically."""
        with self.registry.transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"Run {run_id!r} was not found.")
            check_transition(row["status"], target)
            values = {key: iso(value) if isinstance(value, dt.datetime) else value for key, value in values.items()}
            self.registry.update("runs", {"id": run_id}, {"status": RunStatus(target).value, **values}, db)
        run = self.get_run(run_id)
        self._notify(run)
        return run

    def _update_run(self, run_id: str, **values: Any) -> dict:
        self.registry.update("runs", {"id": run_id}, values)
        run = self.get_run(run_id)
        self._notify(run)
        return run

    def set_status_message(self, run_id: str, message: str, *, terminal: bool = False) -> dict:
        if not isinstance(message, str) or len(message) > 1000:
            raise InvalidInput("statusMessage must be a string of at most 1000 characters.")
        run = self.get_run(run_id)
        if RunStatus(run["status"]).is_terminal:
            raise Conflict(f"Run {run_id} has finished ({run['status']}); its status message is final.")
        return self._update_run(run_id, status_message=message, status_message_terminal=int(bool(terminal)))

    def abort_run(self, run_id: str, *, gracefully: bool = False) -> dict:
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
        watcher = self._watchers.get(run_id)
        if watcher is not None:
            if gracefully:
                watcher.stop_container(self.config.stop_grace_secs, event="aborting")
            else:
                watcher.stop_container(0)
        elif run["container_id"]:
            self.backend.kill(run["container_id"])
        return run

    def wait_run(self, run_id: str, timeout: float | None = None) -> dict:
        """Block until the run is in a terminal status or ``timeout`` seconds passed; returns the run."""
        return self._wait_for(lambda: self.get_run(run_id), lambda r: RunStatus(r["status"]).is_terminal, timeout)

    def _wait_for(self, get: Callable[[], dict], done: Callable[[dict], bool], timeout: float | None) -> dict:
        deadline = None if timeout is None else utcnow() + dt.timedelta(seconds=timeout)
        with self._changed:
            while True:
                row = get()
                if done(row):
                    return row
                remaining = None if deadline is None else (deadline - utcnow()).total_seconds()
                if remaining is not None and remaining <= 0:
                    return row
                self._changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)

    def run_log(self, run_id: str) -> bytes:
        self.get_run(run_id)
        path = self.log_path(run_id)
        return path.read_bytes() if path.exists() else b""

    def child_run_ids(self, run_id: str | None) -> set[str]:
        """Runs started from inside ``run_id`` (Actor.call): the parent may read them and their storages."""
        if run_id is None:
            return set()
        rows = self.registry.query("SELECT id FROM runs WHERE parent_run_id = ?", (run_id,))
        return {row["id"] for row in rows}

    def delete_actor(self, actor: str) -> None:
        """Delete an actor with its versions, builds, runs and their default storages; refused while it runs."""
        row = self.get_actor(actor)
        placeholders = ",".join("?" for _ in ACTIVE_STATUSES)
        active = self.registry.query(
            f"SELECT id FROM runs WHERE actor_id = ? AND status IN ({placeholders})", (row["id"], *ACTIVE_STATUSES)
        )
        if active:
            raise Conflict(f"Actor {row['name']} has {len(active)} unfinished run(s); abort them first.")
        from .retention import remove_unused_images

        for run in self.list_runs(row["id"]):
            self.delete_run(run["id"])
        images = [b["image"] for b in self.list_builds(row["id"]) if b["image"]]
        with self.registry.transaction() as db:
            db.execute("DELETE FROM actors WHERE id = ?", (row["id"],))
            db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'actor', 'deleted', ?)", (row["id"], now_iso()))
        remove_unused_images(self, images)

    def _forget_watcher(self, run_id: str, watcher: RunWatcher) -> None:
        if self._watchers.get(run_id) is watcher:
            del self._watchers[run_id]

    # -- background work ------------------------------------------------------------------------

    def start_background(self) -> None:
        """Start the housekeeping thread (heartbeat, disk limits); the serving process calls this once."""
        if self._monitor is None:
            self._beat()
            self._monitor = threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True)
            self._monitor.start()

    def _sweep(self) -> None:
        try:
            self.expire_runs()
        except Exception:  # noqa: BLE001 - retention must never stop the housekeeping loop
            log.exception("retention sweep failed")

    def _beat(self) -> None:
        self.registry.set_meta("heartbeat", now_iso())

    def _housekeeping(self) -> None:
        interval = min(self.config.disk_check_interval_secs, self.config.heartbeat_secs)
        last_beat = last_sweep = time.monotonic()
        self._sweep()
        while not self._closing.wait(interval):
            if time.monotonic() - last_beat >= self.config.heartbeat_secs:
                self._beat()
                last_beat = time.monotonic()
            if time.monotonic() - last_sweep >= self.config.retention_sweep_secs:
                self._sweep()
                last_sweep = time.monotonic()
            if not self._disk_measured:
                continue
            for run_id, watcher in list(self._watchers.items()):
                try:
                    self.check_disk(run_id, watcher)
                except Exception:  # noqa: BLE001 - one failing check must not stop the loop
                    log.exception("disk check of run %s failed", run_id)

    def disk_usage(self, run: dict) -> int:
        """Bytes a run uses on disk: its container's writable layer plus its default storages."""
        used = self.backend.disk_usage(run["container_id"]) if run["container_id"] else 0
        storage_bytes = getattr(self.storages, "size_bytes", None)
        if storage_bytes is not None:
            used += storage_bytes([run["default_key_value_store_id"], run["default_dataset_id"],
                                   run["default_request_queue_id"]])
        return used

    def check_disk(self, run_id: str, watcher: RunWatcher) -> None:
        run = self.get_run(run_id)
        if run["status"] != RunStatus.RUNNING or run["stop_intent"] or not run["container_id"]:
            return
        if self.disk_usage(run) <= run["disk_mb"] * 1024 * 1024:
            return
        with self.registry.transaction() as db:
            changed = db.execute(
                "UPDATE runs SET stop_intent = ?, status_message = ? WHERE id = ? AND status = 'RUNNING' "
                "AND stop_intent IS NULL",
                (STOP_DISK, f"Stopping: the run used more than its disk limit of {run['disk_mb']} MB", run_id),
            ).rowcount
        if changed:
            self._notify(self.get_run(run_id))
            watcher.stop_container(self.config.stop_grace_secs)

    # -- events, adoption, restarts, shutdown ------------------------------------------------------

    def send_event(self, run_id: str, name: str, data: dict | None = None) -> bool:
        """Send an actor event to the run's websocket; False when no socket of the run is connected."""
        sink = self.event_sink
        return bool(sink and sink(run_id, name, data))

    def runs_in(self, statuses: tuple[str, ...]) -> list[dict]:
        marks = ",".join("?" for _ in statuses)
        return self.registry.query(f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY created_at", statuses)

    def is_watched(self, run_id: str) -> bool:
        return run_id in self._watchers

    def reconcile(self):
        """Match unfinished runs with the engine's containers (adopt, finish or restart them)."""
        from .reconcile import reconcile

        self._ensure_network()
        report = reconcile(self)
        log.info("reconciled: adopted %s, finished %s, restarted %s, removed %s containers",
                 len(report.adopted), len(report.finished), len(report.restarted), len(report.removed))
        return report

    def adopt(self, run: dict, container_id: str) -> None:
        """Watch an existing container again: the log continues from its stored tail, the timeout is re-armed."""
        self._disk_measured = self._disk_measured or not getattr(
            self.backend, "disk_quota_supported", lambda _: True)(self.config.base_image)
        watcher = RunWatcher(self, run["id"])
        self._watchers[run["id"]] = watcher
        watcher.adopt(container_id)
        if run["status"] in (RunStatus.TIMING_OUT, RunStatus.ABORTING):
            watcher.stop_container(self.config.stop_grace_secs)  # finish the stop the last server began

    def restart_lost(self, run: dict, reason: str) -> None:
        """A lost run starts again in a new container: same id, storages and environment (migration)."""
        from .reconcile import expired

        run_id = run["id"]
        if run["status"] == RunStatus.TIMING_OUT:
            self.transition(run_id, RunStatus.TIMED_OUT, finished_at=utcnow(), status_message_terminal=1,
                            status_message=f"The run timed out after {run['timeout_secs']} seconds")
            return
        if run["status"] == RunStatus.ABORTING:
            self.transition(run_id, RunStatus.ABORTED, finished_at=utcnow(), status_message_terminal=1,
                            status_message="The run was aborted")
            return
        if run["restart_count"] >= self.config.max_restarts:
            self.transition(run_id, RunStatus.FAILED, finished_at=utcnow(), status_message_terminal=1,
                            status_message=f"The run was lost {run['restart_count'] + 1} times ({reason}); "
                                           f"not restarted again")
            return
        if expired(run) and run["status"] == RunStatus.RUNNING:
            self.transition(run_id, RunStatus.TIMING_OUT, stop_intent="timeout")
            self.transition(run_id, RunStatus.TIMED_OUT, finished_at=utcnow(), status_message_terminal=1,
                            status_message=f"The run timed out after {run['timeout_secs']} seconds "
                                           f"(it was lost: {reason})")
            return
        count = run["restart_count"] + 1
        token = new_token()  # only the hash of the old one is kept; the lost container took the plain one
        self._update_run(
            run_id, restart_count=count, token_hash=token_hash(token), stop_intent=None, container_id=None, host_port=None, web_host=None,
            container_name=f"jupyter-actors-{self.instance_id}-{run_id}-l{count}",
            status_message=f"Restarted: {reason}",
        )
        actor_row = self.get_actor(run["actor_id"])
        build_row = self.get_build(run["build_id"])
        limits = limits_mod.limits_for(run["memory_mb"], cpu_mode=run["cpu_mode"], pids=self.config.pids_limit)
        self._ensure_network()
        self._launch(run_id, actor_row, build_row, limits, token=token, mode="restart" if run["status"] == RunStatus.RUNNING else "new")

    def shutdown(self) -> None:
        """A planned stop of the serving process.

        ``migrate`` (default): tell running actors ``migrating``, give them ``migrate_grace_secs`` to
        persist, stop them, and restart them at the next start - nothing depends on how long the
        server stays down. ``detach``: leave the containers running to be adopted.
        """
        if self.config.on_shutdown == "migrate":
            stopping = []
            for run_id, watcher in list(self._watchers.items()):
                with self.registry.transaction() as db:
                    marked = db.execute(
                        "UPDATE runs SET stop_intent = ?, status_message = ? WHERE id = ? AND status = 'RUNNING' "
                        "AND stop_intent IS NULL", (STOP_MIGRATE, "Migrating: the server is stopping", run_id),
                    ).rowcount
                if marked:
                    watcher.stop_container(self.config.migrate_grace_secs, event="migrating")
                    stopping.append(watcher)
            deadline = time.monotonic() + self.config.migrate_grace_secs + 10
            for watcher in stopping:
                watcher.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.close()

    # -- shutdown ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop watching; containers keep running (they belong to the engine, not to this process)."""
        if self.closed:
            return
        self._closing.set()
        for watcher in list(self._watchers.values()):
            watcher.close()
        for watcher in list(self._watchers.values()):
            watcher.thread.join(timeout=5)
        self.registry.close()
        self.storages.close()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()


def _input_body(value: bytes | str | dict | list | None, content_type: str | None) -> tuple[bytes | None, str | None]:
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


def _wheel_downloader() -> Callable | None:
    """The host-side pip download that puts an actor's requirements into its build context."""
    try:
        from .images import download_wheels
    except ImportError:  # pragma: no cover - images.py is part of the package
        return None
    return download_wheels
