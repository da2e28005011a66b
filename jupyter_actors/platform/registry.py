"""Durable record of actors, versions, builds and runs: SQLite in WAL mode with a versioned schema.

The registry is the platform's index and history; the engine is the truth about what is running
and the two are reconciled at start. Every write is one transaction, so a crash leaves it consistent.
"""

from __future__ import annotations

import json
import functools
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .ids import token_hash
from .storages.sqlite import connect_wal

# Each entry upgrades the schema from version i to i + 1. Never edit a released entry: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE actors (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        title TEXT,
        description TEXT,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        default_build TEXT NOT NULL DEFAULT 'latest',
        default_memory_mb INTEGER NOT NULL,
        default_timeout_secs INTEGER NOT NULL
    );
    CREATE TABLE versions (
        actor_id TEXT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
        version_number TEXT NOT NULL,
        source_type TEXT NOT NULL,
        source_files TEXT NOT NULL,          -- JSON list of {name, format, content}
        env_vars TEXT NOT NULL DEFAULT '[]', -- JSON list of {name, value, isSecret}
        build_tag TEXT NOT NULL DEFAULT 'latest',
        dockerfile TEXT,                     -- path of the Dockerfile among the files, if any
        input_schema TEXT,                   -- JSON of the input schema, if any
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        PRIMARY KEY (actor_id, version_number)
    );
    CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        actor_id TEXT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
        version_number TEXT NOT NULL,
        build_number TEXT NOT NULL,
        status TEXT NOT NULL,
        status_message TEXT,
        source_hash TEXT NOT NULL,
        image TEXT,
        memory_mb INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        UNIQUE (actor_id, build_number)
    );
    CREATE TABLE build_tags (
        actor_id TEXT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
        PRIMARY KEY (actor_id, tag)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        actor_id TEXT NOT NULL REFERENCES actors(id),
        build_id TEXT NOT NULL,
        build_number TEXT NOT NULL,
        status TEXT NOT NULL,
        status_message TEXT,
        status_message_terminal INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        created_at TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        timeout_secs INTEGER NOT NULL,
        timeout_at TEXT,
        memory_mb INTEGER NOT NULL,
        disk_mb INTEGER NOT NULL,
        cpu_cores REAL NOT NULL,
        cpu_mode TEXT NOT NULL,
        input_key TEXT NOT NULL DEFAULT 'INPUT',
        content_type TEXT,
        default_key_value_store_id TEXT NOT NULL,
        default_dataset_id TEXT NOT NULL,
        default_request_queue_id TEXT NOT NULL,
        token TEXT NOT NULL,
        container_name TEXT NOT NULL,
        container_id TEXT,
        stop_intent TEXT,
        origin TEXT NOT NULL DEFAULT 'API',
        parent_run_id TEXT,
        restart_count INTEGER NOT NULL DEFAULT 0,
        resurrect_count INTEGER NOT NULL DEFAULT 0,
        options TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_by_actor ON runs (actor_id, created_at);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE UNIQUE INDEX runs_by_token ON runs (token);
    CREATE INDEX runs_by_parent ON runs (parent_run_id);
    """,
    # 2: the container web server (an unguessable URL id, public or not, the published host port).
    """
    ALTER TABLE runs ADD COLUMN web_id TEXT;
    ALTER TABLE runs ADD COLUMN web_public INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN container_port INTEGER;
    ALTER TABLE runs ADD COLUMN host_port INTEGER;
    CREATE UNIQUE INDEX runs_by_web_id ON runs (web_id);
    """,
    # 3: what was deleted (by retention or by the user), so it answers 404 saying why.
    """
    CREATE TABLE tombstones (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,      -- run, key_value_stores, datasets, request_queues, build, actor
        reason TEXT NOT NULL,    -- expired, deleted
        deleted_at TEXT NOT NULL
    );
    """,
    # 4: on a cluster the web server is on the task's node or pod, not on this host's loopback.
    """
    ALTER TABLE runs ADD COLUMN web_host TEXT;
    """,
    # 5: run tokens are kept only as their sha256 (ids.token_hash); containers of running runs still
    # hold the plain token, which hashes to the stored value, so they keep working across the upgrade.
    """
    ALTER TABLE runs RENAME COLUMN token TO token_hash;
    UPDATE runs SET token_hash = sha256_hex(token_hash);
    """,
    # 6: the memory range an actor may run with (.actor/actor.json minMemoryMbytes/maxMemoryMbytes).
    """
    ALTER TABLE actors ADD COLUMN min_memory_mb INTEGER;
    ALTER TABLE actors ADD COLUMN max_memory_mb INTEGER;
    """,
    # 7: run resource usage: the running totals as JSON on the run, and a bounded series of samples.
    """
    ALTER TABLE runs ADD COLUMN usage TEXT;
    CREATE TABLE run_samples (
        run_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL,      -- Unix time of the sample in milliseconds
        mem_bytes INTEGER NOT NULL,
        cpu_usage REAL NOT NULL,     -- percent of one CPU core since the previous sample
        PRIMARY KEY (run_id, at_ms)
    ) WITHOUT ROWID;
    """,
    # 8: actor tasks (a saved actor, input and run options) and the task a run was started from.
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        actor_id TEXT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
        name TEXT NOT NULL UNIQUE,
        title TEXT,
        description TEXT,
        options TEXT NOT NULL DEFAULT '{}', -- JSON {build, timeoutSecs, memoryMbytes, restartOnError}
        input TEXT NOT NULL DEFAULT '{}',   -- JSON object: the run input, merged under a run's own
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL
    );
    CREATE INDEX tasks_by_actor ON tasks (actor_id);
    ALTER TABLE runs ADD COLUMN actor_task_id TEXT;
    CREATE INDEX runs_by_task ON runs (actor_task_id, created_at);
    """,
    # 9: schedules (a cron expression in a time zone and the runs it starts) and the log of their firings.
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        title TEXT,
        description TEXT,
        cron_expression TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        is_enabled INTEGER NOT NULL DEFAULT 1,
        is_exclusive INTEGER NOT NULL DEFAULT 0,
        actions TEXT NOT NULL DEFAULT '[]',     -- JSON list of Apify's actions, each with its id
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        next_run_at TEXT,                       -- when it fires next (NULL while disabled)
        last_run_at TEXT,
        last_run_ids TEXT NOT NULL DEFAULT '[]' -- the runs its last firing started (for isExclusive)
    );
    CREATE INDEX schedules_by_next_run ON schedules (next_run_at);
    CREATE TABLE schedule_log (
        schedule_id TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX schedule_log_by_schedule ON schedule_log (schedule_id, created_at);
    """,
    # 10: tombstones are pruned by age (tombstone_retention_days).
    """
    CREATE INDEX IF NOT EXISTS tombstones_by_deleted_at ON tombstones (deleted_at);
    """,
    # 11: webhooks: what to call on which events of an actor or a run; each dispatch is stored before it is
    # sent and keeps its calls, so delivery resumes after a restart.
    """
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        modified_at TEXT NOT NULL,
        is_ad_hoc INTEGER NOT NULL DEFAULT 0,
        event_types TEXT NOT NULL,               -- JSON list of event types
        actor_id TEXT,                           -- the condition: exactly one of these is set
        actor_task_id TEXT,
        actor_run_id TEXT,
        request_url TEXT NOT NULL,
        payload_template TEXT,
        headers_template TEXT,
        description TEXT,
        ignore_ssl_errors INTEGER NOT NULL DEFAULT 0,
        do_not_retry INTEGER NOT NULL DEFAULT 0,
        should_interpolate_strings INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT UNIQUE
    );
    CREATE INDEX webhooks_by_actor ON webhooks (actor_id);
    CREATE INDEX webhooks_by_run ON webhooks (actor_run_id);
    CREATE TABLE webhook_dispatches (
        id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        event_key TEXT NOT NULL,                 -- the one occurrence it is for: a second one is not stored
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,                    -- ACTIVE (to be sent), SUCCEEDED, FAILED
        event_type TEXT NOT NULL,
        event_data TEXT,                         -- JSON object
        payload TEXT NOT NULL,                   -- the body, rendered when the event happened
        headers TEXT NOT NULL,                   -- JSON object of the headers template's headers
        calls TEXT NOT NULL DEFAULT '[]',        -- JSON list of the attempts made
        next_attempt_at TEXT,                    -- when to try (again) while ACTIVE
        UNIQUE (webhook_id, event_key)
    );
    CREATE INDEX webhook_dispatches_due ON webhook_dispatches (status, next_attempt_at);
    CREATE INDEX webhook_dispatches_by_created ON webhook_dispatches (created_at);
    """,
    # 12: metamorph and reboot: a run's metamorphs (JSON list of {createdAt, actorId, buildId, inputKey}: the
    # last one names the actor its container runs now) and how often it was rebooted.
    """
    ALTER TABLE runs ADD COLUMN metamorphs TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE runs ADD COLUMN reboot_count INTEGER NOT NULL DEFAULT 0;
    """,
    # 13: a version's storage schemas (actor.json storages: dataset views, key-value store collections), given
    # to the default storages of its runs.
    """
    ALTER TABLE versions ADD COLUMN dataset_schema TEXT;
    ALTER TABLE versions ADD COLUMN key_value_store_schema TEXT;
    """,
]


class Registry:
    """A thin, thread-safe wrapper around one SQLite file; rows come back as plain dicts."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        """``synchronous``: FULL (the default) keeps every acknowledged change across a power loss too."""
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = connect_wal(path, timeout=30, setup=functools.partial(self._setup, synchronous=synchronous))
        self._db.row_factory = sqlite3.Row

    @staticmethod
    def _setup(db: sqlite3.Connection, *, synchronous: str) -> None:
        db.execute(f"PRAGMA synchronous={synchronous}")  # FULL: across power loss; NORMAL: across kill -9
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # a replaced row (a plain token of schema 4) is zeroed
        db.create_function("sha256_hex", 1, token_hash, deterministic=True)  # for migration 5
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for index, script in enumerate(MIGRATIONS[version:], start=version):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {index + 1}")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock, so read-check-write sequences are atomic."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, tuple(params))]

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def insert(self, table: str, row: dict[str, Any], db: sqlite3.Connection | None = None) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._execute(db, f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))

    def update(self, table: str, key: dict[str, Any], values: dict[str, Any],
               db: sqlite3.Connection | None = None) -> None:
        sets = ", ".join(f"{column} = ?" for column in values)
        where = " AND ".join(f"{column} = ?" for column in key)
        self._execute(db, f"UPDATE {table} SET {sets} WHERE {where}", [*values.values(), *key.values()])

    def _execute(self, db: sqlite3.Connection | None, sql: str, params: list[Any]) -> None:
        if db is not None:
            db.execute(sql, params)
            return
        with self.transaction() as own:
            own.execute(sql, params)

    def get_meta(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
