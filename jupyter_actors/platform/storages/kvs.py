"""Key-value store contents: one SQLite file per store, one row per record (bytes + content type).

A record write is one transaction, so a crash leaves either the old or the new value, never a mix.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

from ..errors import InvalidInput, NotFound
from .sqlite import StorageFile
from .validation import KEY_UPPER_BOUND, validate_key, validate_record_size

#: The API's page-size ceiling for ``GET .../keys``.
MAX_KEYS_LIMIT = 1000
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class Record(NamedTuple):
    """A record's stored bytes and the content type it was written with (served back verbatim)."""

    value: bytes
    content_type: str


class KeyValueStoreFile(StorageFile):
    MIGRATIONS = (
        """
        CREATE TABLE state (
            only INTEGER PRIMARY KEY CHECK (only = 1),
            modified_at TEXT,
            record_count INTEGER NOT NULL DEFAULT 0,
            total_bytes INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO state (only, modified_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        CREATE TABLE records (
            key TEXT PRIMARY KEY,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            value BLOB NOT NULL
        )
        """,
    )

    def metadata(self) -> dict[str, Any]:
        with self.read() as db:
            modified_at, count, total = db.execute(
                "SELECT modified_at, record_count, total_bytes FROM state"
            ).fetchone()
        return {"modifiedAt": modified_at, "stats": {"recordCount": count, "storageBytes": total}}

    def set_record(self, key: str, value: bytes | bytearray | memoryview, content_type: str | None) -> None:
        """Insert or replace; key and size are checked before the file is touched."""
        validate_key(key)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidInput(f"A record value must be bytes; got {type(value).__name__}. Encode it first.")
        if content_type is not None and not isinstance(content_type, str):
            raise InvalidInput(f"A content type must be a string; got {type(content_type).__name__}.")
        size = memoryview(value).nbytes
        validate_record_size(size)
        # A large value is not bound whole: SQLite would copy all of it in one call, holding the GIL
        # (and every other thread of the server, Jupyter's loop among them) for as long. Room is made
        # with zeroblob() and filled in slices instead. The caller does not change the value meanwhile.
        sliced = size > BLOB_SLICE_BYTES and hasattr(sqlite3.Connection, "blobopen")  # Python 3.11 and later
        with self.write() as db:
            old = db.execute("SELECT size FROM records WHERE key = ?", (key,)).fetchone()
            db.execute(
                "INSERT INTO records (key, content_type, size, value) "
                f"VALUES (?, ?, ?, {'zeroblob(?)' if sliced else '?'}) "
                "ON CONFLICT (key) DO UPDATE SET content_type = excluded.content_type, "
                "size = excluded.size, value = excluded.value",
                (key, content_type or DEFAULT_CONTENT_TYPE, size, size if sliced else value),
            )
            if sliced:
                _fill_blob(db, key, memoryview(value).cast("B"))
            db.execute(
                "UPDATE state SET record_count = record_count + ?, total_bytes = total_bytes + ?",
                (0 if old else 1, size - (old[0] if old else 0)),
            )
            self.mark_modified(db)

    def get_record(self, key: str) -> Record:
        validate_key(key)
        with self.read() as db:
            row = db.execute("SELECT value, content_type FROM records WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"Record '{key}' was not found in this key-value store.")
        return Record(row[0], row[1])

    def record_exists(self, key: str) -> bool:
        validate_key(key)
        with self.read() as db:
            return db.execute("SELECT 1 FROM records WHERE key = ?", (key,)).fetchone() is not None

    def delete_record(self, key: str) -> bool:
        """True if a record was deleted, False if there was none."""
        validate_key(key)
        with self.write() as db:
            old = db.execute("SELECT size FROM records WHERE key = ?", (key,)).fetchone()
            if old is None:
                return False
            db.execute("DELETE FROM records WHERE key = ?", (key,))
            db.execute("UPDATE state SET record_count = record_count - 1, total_bytes = total_bytes - ?", old)
            self.mark_modified(db)
            return True

    def list_keys(
        self, *, exclusive_start_key: str | None = None, limit: int | None = None, prefix: str | None = None,
        only_key: str | None = None,
    ) -> dict[str, Any]:
        """One page of keys in ascending order, shaped like Apify's ListOfKeys (minus public URLs);
        ``only_key``: that key alone (a key-value store collection of one key)."""
        limit = _keys_limit(limit)
        start = exclusive_start_key or ""
        where, params = "key > ?", [start]
        if prefix:
            if prefix > start:  # the prefix range starts after the cursor: start at the prefix itself
                where, params = "key >= ?", [prefix]
            where += " AND key < ?"
            params.append(prefix + KEY_UPPER_BOUND)
        if only_key is not None:
            where += " AND key = ?"
            params.append(only_key)
        with self.read() as db:
            rows = db.execute(
                f"SELECT key, size, content_type FROM records WHERE {where} ORDER BY key LIMIT ?", (*params, limit + 1)
            ).fetchall()
        truncated = len(rows) > limit
        # contentType: beyond Apify's shape, so listing a store needs no HEAD per key.
        items = [{"key": key, "size": size, "contentType": ctype} for key, size, ctype in rows[:limit]]
        return {
            "items": items,
            "count": len(items),
            "limit": limit,
            "isTruncated": truncated,
            "exclusiveStartKey": exclusive_start_key,
            "nextExclusiveStartKey": items[-1]["key"] if truncated else None,
        }


def _keys_limit(limit: int | None) -> int:
    if limit is None:
        return MAX_KEYS_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a whole number of at least 1; got {limit!r}.")
    return min(limit, MAX_KEYS_LIMIT)


#: A record larger than this is written in slices of this size (each a short hold of the GIL).
BLOB_SLICE_BYTES = 1024 * 1024


def _fill_blob(db: sqlite3.Connection, key: str, value: memoryview) -> None:
    (rowid,) = db.execute("SELECT rowid FROM records WHERE key = ?", (key,)).fetchone()
    with getattr(db, "blobopen")("records", "value", rowid) as blob:  # noqa: B009 - 3.11+, mypy targets 3.10
        for start in range(0, value.nbytes, BLOB_SLICE_BYTES):
            blob.write(value[start : start + BLOB_SLICE_BYTES])
