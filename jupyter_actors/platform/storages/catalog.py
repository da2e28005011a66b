"""The catalog: one small SQLite file listing every storage of every kind, with names and owners.

Contents live in one file per storage; the catalog only answers "which storages exist, what are they
called, who made them". One table serves all three kinds, so lookup, naming and listing exist once.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple

from ..clock import iso, utcnow
from ..errors import Conflict
from ..ids import new_id
from .kinds import LABELS, REQUEST_QUEUES, StorageKind
from .signing import new_signing_key
from .sqlite import Database

_COLUMNS = ("id, kind, name, created_at, modified_at, accessed_at, act_id, act_run_id, title, url_signing_secret_key, "
            "schema")
_COLUMN_NAMES = tuple(_COLUMNS.split(", "))


class RunStorage(NamedTuple):
    """A storage a run uses: ``base_bytes`` is None for one the run created (all of it is the run's), else the
    storage's size when the run first wrote to it."""

    id: str
    kind: StorageKind
    name: str | None
    base_bytes: int | None

    @property
    def created_by_run(self) -> bool:
        return self.base_bytes is None


class Catalog(Database):
    MIGRATIONS = (
        """
        CREATE TABLE storages (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT,
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL,
            accessed_at TEXT NOT NULL,
            act_id TEXT,
            act_run_id TEXT
        );
        CREATE UNIQUE INDEX storages_by_name ON storages (kind, name) WHERE name IS NOT NULL;
        CREATE INDEX storages_by_kind ON storages (kind, created_at);
        CREATE INDEX storages_by_run ON storages (act_run_id)
        """,
        # Apify's free-form title, shown next to the name (the API returns it; nothing resolves by it).
        "ALTER TABLE storages ADD COLUMN title TEXT",
        # The secret that signs the storage's public URLs (``signing.py``); storages made before get one now.
        "ALTER TABLE storages ADD COLUMN url_signing_secret_key TEXT; "
        "UPDATE storages SET url_signing_secret_key = lower(hex(randomblob(16)))",
        # Apify's storage schema (JSON): a dataset's views, a key-value store's collections (``schemas.py``).
        "ALTER TABLE storages ADD COLUMN schema TEXT",
        # The storages a run wrote to that it did not create (named ones, its children's), with their size at
        # its first write: what they grow by from then counts towards the run's disk limit (``run_storages``).
        """
        CREATE TABLE run_writes (
            run_id TEXT NOT NULL,
            storage_id TEXT NOT NULL,
            base_bytes INTEGER NOT NULL,
            first_written_at TEXT NOT NULL,
            PRIMARY KEY (run_id, storage_id)
        ) WITHOUT ROWID;
        CREATE INDEX run_writes_by_storage ON run_writes (storage_id)
        """,
    )

    def insert(
        self, kind: StorageKind, name: str | None, *, run_id: str | None = None, actor_id: str | None = None,
        title: str | None = None, schema: str | None = None,
    ) -> dict[str, Any]:
        """A new row; Conflict if the name is taken (names are unique per kind). ``schema``: its JSON text."""
        with self.write() as db:
            return self._insert(db, kind, name, run_id, actor_id, title, schema)

    def get_or_insert(
        self, kind: StorageKind, name: str, *, run_id: str | None = None, actor_id: str | None = None,
        title: str | None = None, schema: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The row named ``name``, created (with ``title`` and ``schema``) if missing; atomic across processes."""
        with self.write() as db:
            row = _one(db, f"SELECT {_COLUMNS} FROM storages WHERE kind = ? AND name = ?", (kind, name))
            if row is not None:
                return row, False
            return self._insert(db, kind, name, run_id, actor_id, title, schema), True

    def find(self, kind: StorageKind, id_or_name: str) -> dict[str, Any] | None:
        """By id first, then by name (Apify accepts either in a path). One statement: this runs per call."""
        rows = self.query(
            f"SELECT {_COLUMNS} FROM storages WHERE id = ? AND kind = ? UNION ALL "
            f"SELECT {_COLUMNS} FROM storages WHERE kind = ? AND name = ? LIMIT 1",
            (id_or_name, kind, kind, id_or_name),
        )
        return dict(zip(_COLUMN_NAMES, rows[0], strict=True)) if rows else None

    def exists(self, storage_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM storages WHERE id = ?", (storage_id,)))

    def ids(self) -> set[str]:
        return {row[0] for row in self.query("SELECT id FROM storages")}

    def page(
        self, kind: StorageKind, *, unnamed: bool, offset: int, limit: int, desc: bool
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, rows) ordered by creation; without ``unnamed`` only named storages, as in Apify."""
        where = "kind = ?" if unnamed else "kind = ? AND name IS NOT NULL"
        order = "DESC" if desc else "ASC"
        with self.read() as db:
            total = db.execute(f"SELECT count(*) FROM storages WHERE {where}", (kind,)).fetchone()[0]
            rows = _all(
                db,
                f"SELECT {_COLUMNS} FROM storages WHERE {where} "
                f"ORDER BY created_at {order}, rowid {order} LIMIT ? OFFSET ?",
                (kind, limit, offset),
            )
        return total, rows

    def rename(self, kind: StorageKind, storage_id: str, name: str | None) -> dict[str, Any]:
        with self.write() as db:
            self._check_name_free(db, kind, name, storage_id)
            db.execute(
                "UPDATE storages SET name = ?, modified_at = ? WHERE id = ?", (name, iso(utcnow()), storage_id)
            )
            return _one(db, f"SELECT {_COLUMNS} FROM storages WHERE id = ?", (storage_id,))  # type: ignore[return-value]

    def retitle(self, storage_id: str, title: str | None) -> dict[str, Any]:
        with self.write() as db:
            db.execute(
                "UPDATE storages SET title = ?, modified_at = ? WHERE id = ?", (title, iso(utcnow()), storage_id)
            )
            return _one(db, f"SELECT {_COLUMNS} FROM storages WHERE id = ?", (storage_id,))  # type: ignore[return-value]

    def remove(self, storage_id: str) -> bool:
        with self.write() as db:
            db.execute("DELETE FROM run_writes WHERE storage_id = ?", (storage_id,))
            return db.execute("DELETE FROM storages WHERE id = ?", (storage_id,)).rowcount > 0

    def note_run_write(self, run_id: str, storage_id: str, base_bytes: int) -> None:
        """Record that a run writes to a storage it did not create (the first time only: its base stays)."""
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO run_writes (run_id, storage_id, base_bytes, first_written_at) "
                       "VALUES (?, ?, ?, ?)", (run_id, storage_id, base_bytes, iso(utcnow())))

    def run_storages(self, run_id: str) -> list[RunStorage]:
        """Every storage a run created (its defaults too) and every other one it wrote to."""
        rows = self.query(
            "SELECT id, kind, name, NULL FROM storages WHERE act_run_id = ? UNION ALL "
            "SELECT s.id, s.kind, s.name, w.base_bytes FROM run_writes w JOIN storages s ON s.id = w.storage_id "
            "WHERE w.run_id = ? AND s.act_run_id IS NOT ?", (run_id, run_id, run_id))
        return [RunStorage(*row) for row in rows]

    def forget_run(self, run_id: str) -> None:
        """Drop a deleted run's record of what it wrote (the storages stay)."""
        with self.write() as db:
            db.execute("DELETE FROM run_writes WHERE run_id = ?", (run_id,))

    def touch(self, storage_id: str) -> None:
        """Set ``accessedAt`` to now (the manager throttles how often)."""
        with self.write() as db:
            db.execute("UPDATE storages SET accessed_at = ? WHERE id = ?", (iso(utcnow()), storage_id))

    # -- internals ---------------------------------------------------------------------------------

    def _insert(
        self, db: sqlite3.Connection, kind: StorageKind, name: str | None, run_id: str | None, actor_id: str | None,
        title: str | None = None, schema: str | None = None,
    ) -> dict[str, Any]:
        self._check_name_free(db, kind, name, None)
        now = iso(utcnow())
        row = {
            "id": new_id(),
            "kind": kind,
            "name": name,
            "created_at": now,
            "modified_at": now,
            "accessed_at": now,
            "act_id": actor_id,
            "act_run_id": run_id,
            "title": title,
            "url_signing_secret_key": new_signing_key(),
            "schema": schema,
        }
        db.execute(f"INSERT INTO storages ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        return row

    @staticmethod
    def _check_name_free(db: sqlite3.Connection, kind: StorageKind, name: str | None, own_id: str | None) -> None:
        if name is None:
            return
        row = db.execute("SELECT id FROM storages WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        if row is not None and row[0] != own_id:
            raise Conflict(
                f"{LABELS[kind]} named '{name}' already exists (id {row[0]}); choose another name, "
                "or open the existing one by its name.",
                type="storage-name-taken",
            )


def row_to_meta(row: dict[str, Any]) -> dict[str, Any]:
    """The Apify-shaped part of the metadata that the catalog knows (camelCase, ISO timestamps)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "title": row["title"],
        "createdAt": row["created_at"],
        "modifiedAt": row["modified_at"],
        "accessedAt": row["accessed_at"],
        "actId": row["act_id"],
        "actRunId": row["act_run_id"],
        "urlSigningSecretKey": row["url_signing_secret_key"],
        **({"schema": json.loads(row["schema"]) if row["schema"] else None} if row["kind"] != REQUEST_QUEUES else {}),
    }


def _one(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    rows = _all(db, sql, params)
    return rows[0] if rows else None


def _all(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor]
