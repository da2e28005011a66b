"""All SQL of the registry, one store per table family, returning typed records (``models.py``).

Over 400 lines on purpose: all of the registry's SQL is kept in this one file, so no service writes any.

Services above never write SQL: they ask a store. Each method that reads, checks and writes does so
in one registry transaction, so a crash or a concurrent caller never sees half of a change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, cast

from .clock import now_iso
from .errors import NotFound
from .ids import token_hash
from .lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus, check_transition
from .models import Actor, Build, Run, Schedule, ScheduleLogEntry, Task, Tombstone, Version
from .registry import Registry, dumps


def _marks(values: tuple[Any, ...] | list[Any]) -> str:
    return ",".join("?" for _ in values)


class ActorStore:
    """Actors, their versions (source and settings) and their build tags."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def find(self, ref: str) -> Actor | None:
        """By id, name, or ``username/name`` / ``username~name``."""
        name = ref.replace("~", "/").split("/")[-1]
        row = self.registry.query_one("SELECT * FROM actors WHERE id = ? OR name = ?", (ref, name))
        return cast("Actor | None", row)

    def all(self) -> list[Actor]:
        return cast("list[Actor]", self.registry.query("SELECT * FROM actors ORDER BY created_at"))

    def save(self, name: str, values: dict[str, Any], new_actor: dict[str, Any], version: dict[str, Any]) -> str:
        """Update the actor ``name`` with ``values`` (or create it with ``new_actor`` too) and replace the
        version ``version["version_number"]``; returns the actor's id."""
        with self.registry.transaction() as db:
            existing = db.execute("SELECT id FROM actors WHERE name = ?", (name,)).fetchone()
            if existing is None:
                actor_id = str(new_actor["id"])
                self.registry.insert("actors", {**new_actor, "name": name, **values}, db)
            else:
                actor_id = existing["id"]
                self.registry.update("actors", {"id": actor_id}, values, db)
            db.execute("DELETE FROM versions WHERE actor_id = ? AND version_number = ?",
                       (actor_id, version["version_number"]))
            self.registry.insert("versions", {"actor_id": actor_id, **version}, db)
        return actor_id

    def update(self, actor_id: str, values: dict[str, Any], tags: dict[str, str | None] | None = None) -> None:
        """The actor's columns and its build tags (a tag to None: removed), in one transaction."""
        with self.registry.transaction() as db:
            self.registry.update("actors", {"id": actor_id}, values, db)
            for tag, build_id in (tags or {}).items():
                if build_id is None:
                    db.execute("DELETE FROM build_tags WHERE actor_id = ? AND tag = ?", (actor_id, tag))
                else:
                    db.execute("INSERT OR REPLACE INTO build_tags (actor_id, tag, build_id) VALUES (?, ?, ?)",
                               (actor_id, tag, build_id))

    def name_taken(self, name: str, other_than: str | None = None) -> bool:
        return bool(self.registry.query("SELECT 1 FROM actors WHERE name = ? AND id IS NOT ?", (name, other_than)))

    def delete(self, actor_id: str) -> None:
        """Delete the actor (versions, builds and tags cascade) and its webhooks, and leave a tombstone."""
        with self.registry.transaction() as db:
            db.execute("DELETE FROM actors WHERE id = ?", (actor_id,))
            db.execute("DELETE FROM webhooks WHERE actor_id = ?", (actor_id,))  # they could never fire again
            db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'actor', 'deleted', ?)", (actor_id, now_iso()))

    def delete_version(self, actor_id: str, version_number: str) -> bool:
        """Delete one version unless it is the actor's last; False if it is the last (nothing deleted)."""
        with self.registry.transaction() as db:
            count = db.execute("SELECT COUNT(*) AS n FROM versions WHERE actor_id = ?", (actor_id,)).fetchone()["n"]
            if count <= 1:
                return False
            db.execute("DELETE FROM versions WHERE actor_id = ? AND version_number = ?", (actor_id, version_number))
            return True

    def change_env_vars(self, actor_id: str, version_number: str,
                        change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Read, change and write a version's env vars in one transaction (``change`` may raise: nothing changes)."""
        with self.registry.transaction() as db:
            row = db.execute("SELECT env_vars FROM versions WHERE actor_id = ? AND version_number = ?",
                             (actor_id, version_number)).fetchone()
            if row is None:
                raise NotFound(f"Version {version_number} of actor {actor_id} was not found.",
                               type="record-not-found")
            db.execute("UPDATE versions SET env_vars = ?, modified_at = ? WHERE actor_id = ? AND version_number = ?",
                       (dumps(change(json.loads(row["env_vars"]))), now_iso(), actor_id, version_number))

    def versions(self, actor_id: str, *, newest_first: bool = False) -> list[Version]:
        order = "DESC" if newest_first else "ASC"
        return cast("list[Version]", self.registry.query(
            f"SELECT * FROM versions WHERE actor_id = ? ORDER BY version_number {order}", (actor_id,)
        ))

    def build_tags(self, actor_id: str) -> dict[str, str]:
        rows = self.registry.query("SELECT tag, build_id FROM build_tags WHERE actor_id = ?", (actor_id,))
        return {row["tag"]: row["build_id"] for row in rows}

    def tag(self, actor_id: str, tag: str, build_id: str) -> None:
        with self.registry.transaction() as db:
            db.execute("INSERT OR REPLACE INTO build_tags (actor_id, tag, build_id) VALUES (?, ?, ?)",
                       (actor_id, tag, build_id))


class BuildStore:
    """Build records: numbered per version, finished once, deleted with their tags."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def get(self, build_id: str) -> Build:
        row = self.registry.query_one("SELECT * FROM builds WHERE id = ?", (build_id,))
        if row is None:
            raise NotFound(f"Build {build_id} was not found.", type="record-not-found")
        return cast(Build, row)

    def of_actor(self, actor_id: str) -> list[Build]:
        return cast("list[Build]", self.registry.query(
            "SELECT * FROM builds WHERE actor_id = ? ORDER BY started_at", (actor_id,)
        ))

    def all(self) -> list[Build]:
        return cast("list[Build]", self.registry.query("SELECT * FROM builds ORDER BY started_at, rowid"))

    def active_count(self) -> int:
        row = self.registry.query_one("SELECT COUNT(*) AS n FROM builds WHERE status IN ('READY', 'RUNNING')")
        return int(row["n"]) if row else 0

    def started_between(self, after: str, before: str) -> list[dict[str, Any]]:
        """Memory and times of the builds started in [after, before) (ISO times)."""
        return self.registry.query(
            "SELECT memory_mb, started_at, finished_at FROM builds WHERE started_at >= ? AND started_at < ? "
            "ORDER BY started_at", (after, before))

    def by_number_or_id(self, actor_id: str, wanted: str) -> Build | None:
        return cast("Build | None", self.registry.query_one(
            "SELECT * FROM builds WHERE actor_id = ? AND (build_number = ? OR id = ?)", (actor_id, wanted, wanted),
        ))

    def succeeded_with_source(self, actor_id: str, version: str, source_hash: str) -> list[Build]:
        """Finished builds of the same source, newest first (candidates for reuse)."""
        return cast("list[Build]", self.registry.query(
            "SELECT * FROM builds WHERE actor_id = ? AND version_number = ? AND source_hash = ? "
            "AND status = 'SUCCEEDED' ORDER BY started_at DESC",
            (actor_id, version, source_hash),
        ))

    def create(self, build: dict[str, Any]) -> Build:
        """Insert ``build`` with the next build number of its version (``<version>.<n>``)."""
        with self.registry.transaction() as db:
            rows = db.execute(
                "SELECT build_number FROM builds WHERE actor_id = ? AND version_number = ?",
                (build["actor_id"], build["version_number"]),
            ).fetchall()
            highest = max((int(row["build_number"].rsplit(".", 1)[1]) for row in rows), default=0)
            record = {**build, "build_number": f"{build['version_number']}.{highest + 1}"}
            self.registry.insert("builds", record, db)
        return cast(Build, record)

    def update(self, build_id: str, values: dict[str, Any]) -> None:
        self.registry.update("builds", {"id": build_id}, values)

    def delete(self, build_id: str) -> None:
        with self.registry.transaction() as db:
            db.execute("DELETE FROM build_tags WHERE build_id = ?", (build_id,))
            db.execute("DELETE FROM builds WHERE id = ?", (build_id,))
            db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'build', 'deleted', ?)", (build_id, now_iso()))

    def image_in_use(self, image: str) -> bool:
        return self.registry.query_one("SELECT id FROM builds WHERE image = ?", (image,)) is not None


class RunStore:
    """Run records: created READY, moved only along the lifecycle, deleted with tombstones."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def find(self, run_id: str) -> Run | None:
        return cast("Run | None", self.registry.query_one("SELECT * FROM runs WHERE id = ?", (run_id,)))

    def by_token(self, token: str) -> Run | None:
        return cast("Run | None", self.registry.query_one(
            "SELECT * FROM runs WHERE token_hash = ?", (token_hash(token),)))

    def by_web_id(self, web_id: str) -> Run | None:
        return cast("Run | None", self.registry.query_one("SELECT * FROM runs WHERE web_id = ?", (web_id,)))

    def insert(self, run: dict[str, Any]) -> None:
        self.registry.insert("runs", run)

    def update(self, run_id: str, values: dict[str, Any]) -> None:
        self.registry.update("runs", {"id": run_id}, values)

    def transition(self, run_id: str, target: RunStatus, values: dict[str, Any]) -> str:
        """Set ``status`` to ``target`` with ``values`` if the lifecycle allows it (else Conflict), atomically;
        returns the status it had."""
        with self.registry.transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"Run {run_id!r} was not found.")
            check_transition(row["status"], target)
            self.registry.update("runs", {"id": run_id}, {"status": RunStatus(target).value, **values}, db)
        return str(row["status"])

    def mark_stopping(self, run_id: str, intent: str, message: str, values: dict[str, Any] | None = None) -> bool:
        """Record why a RUNNING run is being stopped (with other ``values`` of the same change), unless a stop
        is under way already."""
        with self.registry.transaction() as db:
            row = db.execute("SELECT status, stop_intent FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row["status"] != RunStatus.RUNNING.value or row["stop_intent"] is not None:
                return False
            self.registry.update("runs", {"id": run_id},
                                 {"stop_intent": intent, "status_message": message, **(values or {})}, db)
        return True

    def memory_in_use(self) -> int:
        """Memory (MB) held by runs that may have a container."""
        row = self.registry.query_one(
            f"SELECT COALESCE(SUM(memory_mb), 0) AS used FROM runs WHERE status IN ({_marks(ACTIVE_STATUSES)})",
            ACTIVE_STATUSES,
        )
        return int(row["used"]) if row else 0

    def active_count(self) -> int:
        row = self.registry.query_one(
            f"SELECT COUNT(*) AS n FROM runs WHERE status IN ({_marks(ACTIVE_STATUSES)})", ACTIVE_STATUSES)
        return int(row["n"]) if row else 0

    def started_between(self, after: str, before: str) -> list[dict[str, Any]]:
        """Memory and times of the runs started in [after, before) (ISO times): what usage is made of."""
        return self.registry.query(
            "SELECT memory_mb, started_at, finished_at FROM runs WHERE started_at >= ? AND started_at < ? "
            "ORDER BY started_at", (after, before))

    def in_statuses(self, statuses: tuple[str, ...]) -> list[Run]:
        return cast("list[Run]", self.registry.query(
            f"SELECT * FROM runs WHERE status IN ({_marks(statuses)}) ORDER BY created_at", statuses
        ))

    def active_ids(self, *, actor_id: str | None = None, build_id: str | None = None) -> list[str]:
        """Unfinished runs of an actor or of a build."""
        column, value = ("actor_id", actor_id) if actor_id is not None else ("build_id", build_id)
        rows = self.registry.query(
            f"SELECT id FROM runs WHERE {column} = ? AND status IN ({_marks(ACTIVE_STATUSES)})",
            (value, *ACTIVE_STATUSES),
        )
        return [row["id"] for row in rows]

    def query(self, actor_id: str | None = None, *, status: str | Sequence[str] | None = None, desc: bool = True,
              offset: int = 0, limit: int | None = None, origin: str | None = None,
              started_before: str | None = None, started_after: str | None = None,
              actor_task_id: str | None = None) -> list[Run]:
        """Runs, oldest first unless ``desc``; ``status`` is one status or several (any of them),
        ``started_before``/``started_after`` are ISO timestamps (inclusive bounds)."""
        clauses: list[str] = []
        params: list[Any] = []
        statuses = [status] if isinstance(status, str) else list(status or ())
        if statuses:
            clauses.append(f"status IN ({_marks(statuses)})")
            params.extend(statuses)
        for clause, value in (("actor_id = ?", actor_id), ("origin = ?", origin),
                              ("actor_task_id = ?", actor_task_id),
                              ("started_at <= ?", started_before), ("started_at >= ?", started_after)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if desc else "ASC"
        return cast("list[Run]", self.registry.query(
            f"SELECT * FROM runs {where} ORDER BY created_at {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, limit if limit is not None else -1, offset],
        ))

    def child_ids(self, run_id: str) -> set[str]:
        rows = self.registry.query("SELECT id FROM runs WHERE parent_run_id = ?", (run_id,))
        return {row["id"] for row in rows}

    def finished_before(self, cutoff: str) -> list[str]:
        rows = self.registry.query(
            f"SELECT id FROM runs WHERE status IN ({_marks(TERMINAL_STATUSES)}) AND finished_at < ?",
            (*TERMINAL_STATUSES, cutoff),
        )
        return [row["id"] for row in rows]

    def delete(self, run_id: str, storages: list[tuple[str, str]], reason: str) -> None:
        """Delete the run and its webhooks, and leave tombstones for it and the ``(kind, id)`` storages that
        went with it."""
        now = now_iso()
        with self.registry.transaction() as db:
            for kind, storage_id in storages:
                db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", (storage_id, kind, reason, now))
            db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'run', ?, ?)", (run_id, reason, now))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            db.execute("DELETE FROM run_samples WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM webhooks WHERE actor_run_id = ?", (run_id,))  # they could never fire again

    def add_sample(self, run_id: str, sample: dict[str, Any] | None, usage: str, *, max_samples: int) -> bool:
        """Store the run's new usage totals, with ``sample`` in its series when given; past ``max_samples``
        every second sample goes (from the second on). True when the series was thinned."""
        with self.registry.transaction() as db:
            db.execute("UPDATE runs SET usage = ? WHERE id = ?", (usage, run_id))
            if sample is None:
                return False
            db.execute("INSERT OR REPLACE INTO run_samples (run_id, at_ms, mem_bytes, cpu_usage) VALUES (?, ?, ?, ?)",
                       (run_id, sample["at_ms"], sample["mem_bytes"], sample["cpu_usage"]))
            times = [row[0] for row in db.execute(
                "SELECT at_ms FROM run_samples WHERE run_id = ? ORDER BY at_ms", (run_id,))]
            if len(times) <= max_samples:
                return False
            db.executemany("DELETE FROM run_samples WHERE run_id = ? AND at_ms = ?",
                           [(run_id, at) for at in times[1::2]])
            return True

    def samples(self, run_id: str) -> list[dict[str, Any]]:
        return self.registry.query("SELECT at_ms, mem_bytes, cpu_usage FROM run_samples WHERE run_id = ? "
                                   "ORDER BY at_ms", (run_id,))


class TaskStore:
    """Actor tasks: a saved actor, input and run options, looked up by id or name."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def find(self, ref: str) -> Task | None:
        """By id, name, or ``username/name`` / ``username~name``."""
        name = ref.replace("~", "/").split("/")[-1]
        return cast("Task | None", self.registry.query_one(
            "SELECT * FROM tasks WHERE id = ? OR name = ? ORDER BY id = ? DESC", (ref, name, ref)))

    def all(self) -> list[Task]:
        return cast("list[Task]", self.registry.query("SELECT * FROM tasks ORDER BY created_at, rowid"))

    def insert(self, task: dict[str, Any]) -> None:
        self.registry.insert("tasks", task)

    def update(self, task_id: str, values: dict[str, Any]) -> None:
        self.registry.update("tasks", {"id": task_id}, values)

    def run_count(self, task_id: str) -> int:
        row = self.registry.query_one("SELECT COUNT(*) AS n FROM runs WHERE actor_task_id = ?", (task_id,))
        return int(row["n"]) if row else 0

    def name_taken(self, name: str, other_than: str | None = None) -> bool:
        row = self.registry.query_one("SELECT id FROM tasks WHERE name = ?", (name,))
        return row is not None and row["id"] != other_than

    def delete(self, task_id: str) -> None:
        """Delete the task and its webhooks (they could never fire again)."""
        with self.registry.transaction() as db:
            db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            db.execute("DELETE FROM webhooks WHERE actor_task_id = ?", (task_id,))


class ScheduleStore:
    """Schedules and their log: each firing's outcome is written in the same transaction as its next time."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def find(self, ref: str) -> Schedule | None:
        """By id, name, or ``username/name`` / ``username~name``."""
        name = ref.replace("~", "/").split("/")[-1]
        return cast("Schedule | None", self.registry.query_one(
            "SELECT * FROM schedules WHERE id = ? OR name = ? ORDER BY id = ? DESC", (ref, name, ref)))

    def all(self) -> list[Schedule]:
        return cast("list[Schedule]", self.registry.query("SELECT * FROM schedules ORDER BY created_at, rowid"))

    def due(self, now: str) -> list[Schedule]:
        """Enabled schedules whose next firing is at or before ``now`` (an ISO timestamp)."""
        return cast("list[Schedule]", self.registry.query(
            "SELECT * FROM schedules WHERE is_enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? "
            "ORDER BY next_run_at", (now,)))

    def next_due_at(self) -> str | None:
        row = self.registry.query_one("SELECT MIN(next_run_at) AS at FROM schedules WHERE is_enabled = 1")
        return row["at"] if row else None

    def name_taken(self, name: str, other_than: str | None = None) -> bool:
        row = self.registry.query_one("SELECT id FROM schedules WHERE name = ?", (name,))
        return row is not None and row["id"] != other_than

    def insert(self, schedule: dict[str, Any]) -> None:
        self.registry.insert("schedules", schedule)

    def update(self, schedule_id: str, values: dict[str, Any]) -> None:
        self.registry.update("schedules", {"id": schedule_id}, values)

    def claim(self, schedule_id: str, due_at: str, next_run_at: str | None, fired_at: str) -> bool:
        """Move a due firing on to ``next_run_at`` before its runs start (so a crash never fires it twice);
        False if the schedule was changed, deleted or fired meanwhile."""
        with self.registry.transaction() as db:
            return bool(db.execute(
                "UPDATE schedules SET next_run_at = ?, last_run_at = ? WHERE id = ? AND next_run_at = ?",
                (next_run_at, fired_at, schedule_id, due_at)).rowcount)

    def record(self, schedule_id: str, run_ids: list[str] | None, entries: list[tuple[str, str]], at: str) -> None:
        """A firing's outcome: its log ``entries`` (level, message) and, unless None, the runs it started."""
        with self.registry.transaction() as db:
            if run_ids is not None:
                db.execute("UPDATE schedules SET last_run_ids = ? WHERE id = ?", (dumps(run_ids), schedule_id))
            for level, message in entries:
                if db.execute("SELECT 1 FROM schedules WHERE id = ?", (schedule_id,)).fetchone():
                    self.registry.insert("schedule_log", {"schedule_id": schedule_id, "created_at": at,
                                                          "level": level, "message": message}, db)

    def log(self, schedule_id: str) -> list[ScheduleLogEntry]:
        return cast("list[ScheduleLogEntry]", self.registry.query(
            "SELECT * FROM schedule_log WHERE schedule_id = ? ORDER BY created_at, rowid", (schedule_id,)))

    def delete(self, schedule_id: str) -> None:
        with self.registry.transaction() as db:
            db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))


class Tombstones:
    """What was deleted, by retention or by the user, so it answers 404 saying why."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def get(self, id_: str) -> Tombstone | None:
        return cast("Tombstone | None", self.registry.query_one("SELECT * FROM tombstones WHERE id = ?", (id_,)))

    def prune(self, before: str) -> int:
        """Drop tombstones of deletions before ``before`` (an ISO time); returns how many."""
        with self.registry.transaction() as db:
            return db.execute("DELETE FROM tombstones WHERE deleted_at < ?", (before,)).rowcount


class Stores:
    """The registry and its stores, opened once per data directory."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.actors = ActorStore(registry)
        self.builds = BuildStore(registry)
        self.runs = RunStore(registry)
        self.tasks = TaskStore(registry)
        self.schedules = ScheduleStore(registry)
        self.tombstones = Tombstones(registry)

    def get_meta(self, key: str) -> str | None:
        return self.registry.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.registry.set_meta(key, value)
