"""Request queue contents: one SQLite file per queue, one row per request, ordered by ``order_no``.

Over 400 lines on purpose: one storage type's whole semantics (add, update, head, locks, listing) in one
transaction scope.

``order_no`` follows Apify: positive and growing for requests appended at the end, negative and
shrinking for forefront requests (so the most recent forefront request comes first), NULL once a
request is handled. The head is then one indexed ``ORDER BY order_no``. What a request is and how its ID
follows from its unique key is in ``queued_requests.py``.

Locks follow Apify's request-queue v2: ``head/lock`` hands requests to one client for a while, and a
locked request is left out of every head (its own client's too) until the lock expires or is released.
A lock is a deadline stored with the request, so an expired lock needs no sweeper: every query compares
it with the clock. A lock keeps the request's place in the queue; ``forefront`` moves it to the front.
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..clock import iso
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from .queued_requests import Locker, QueuedRequest, lock_seconds
from .sqlite import StorageFile

#: The API's ceilings: ``GET .../head`` returns at most 1000 requests, ``GET .../requests`` 10000.
MAX_HEAD_LIMIT = 1000
MAX_LIST_LIMIT = 10_000
LIST_FILTERS = frozenset({"pending", "locked"})
#: Apify's ceiling for one ``head/lock`` call.
MAX_LOCK_HEAD_LIMIT = 25
_HEAD_COLUMNS = ("id", "uniqueKey", "url", "method", "retryCount")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso_ms(ms: int) -> str:
    return iso(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc))  # type: ignore[return-value]




class RequestQueueFile(StorageFile):
    MIGRATIONS = (
        """
        CREATE TABLE state (
            only INTEGER PRIMARY KEY CHECK (only = 1),
            modified_at TEXT,
            next_order INTEGER NOT NULL DEFAULT 1,
            total_count INTEGER NOT NULL DEFAULT 0,
            handled_count INTEGER NOT NULL DEFAULT 0,
            first_client_key TEXT,
            had_multiple_clients INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO state (only, modified_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            unique_key TEXT NOT NULL,
            url TEXT NOT NULL,
            method TEXT NOT NULL,
            retry_count INTEGER NOT NULL,
            order_no INTEGER,          -- NULL once handled, negative for forefront requests
            handled_at TEXT,
            body BLOB NOT NULL         -- the request as JSON, served by get_request
        );
        CREATE INDEX requests_head ON requests (order_no) WHERE order_no IS NOT NULL
        """,
        """
        ALTER TABLE requests ADD COLUMN lock_expires_at INTEGER;  -- ms since the epoch (in the past: not locked)
        ALTER TABLE requests ADD COLUMN lock_client TEXT;         -- the clientKey that took the lock
        ALTER TABLE requests ADD COLUMN lock_run TEXT;            -- the run that took it, for calls from runs
        CREATE INDEX requests_locked ON requests (lock_expires_at) WHERE lock_expires_at IS NOT NULL
        """,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients_seen: set[str] = set()

    def metadata(self) -> dict[str, Any]:
        with self.read() as db:
            modified_at, total, handled, multiple = db.execute(
                "SELECT modified_at, total_count, handled_count, had_multiple_clients FROM state"
            ).fetchone()
        return {
            "modifiedAt": modified_at,
            "totalRequestCount": total,
            "handledRequestCount": handled,
            "pendingRequestCount": total - handled,
            "hadMultipleClients": bool(multiple),
        }

    def add_requests(self, requests: Sequence[QueuedRequest], *, forefront: bool,
                     client_key: str | None) -> dict[str, Any]:
        """Add new requests; ones already present (by unique key) are reported and left untouched."""
        processed = []
        with self.write() as db:
            self._note_client(db, client_key)
            (next_order,) = db.execute("SELECT next_order FROM state").fetchone()
            added = handled = 0
            for request in requests:
                present = db.execute("SELECT handled_at FROM requests WHERE id = ?", (request.id,)).fetchone()
                if present is None:
                    self._put(db, request, _order(request, forefront, next_order + added))
                    added += 1
                    handled += request.handled_at is not None
                processed.append({
                    "requestId": request.id,
                    "uniqueKey": request.unique_key,
                    "wasAlreadyPresent": present is not None,
                    "wasAlreadyHandled": present is not None and present[0] is not None,
                })
            if added:
                self._count(db, next_order + added, added, handled)
        self._remember_client(client_key)
        return {"processedRequests": processed, "unprocessedRequests": []}

    def update_request(
        self, request: QueuedRequest, *, forefront: bool, client_key: str | None, locker: Locker | None = None
    ) -> dict[str, Any]:
        """Upsert. A ``handledAt`` marks it handled (and releases its lock); an unhandled one moves to the
        front or the end. A request locked by another client is refused, as Apify does."""
        locker = locker or Locker(client_key)
        with self.write() as db:
            self._note_client(db, client_key)
            present = db.execute("SELECT handled_at FROM requests WHERE id = ?", (request.id,)).fetchone()
            self._refuse_foreign_lock(db, request.id, locker, "update")
            was_handled = present is not None and present[0] is not None
            (next_order,) = db.execute("SELECT next_order FROM state").fetchone()
            self._put(db, request, _order(request, forefront, next_order))
            if request.handled_at is not None:
                _release(db, request.id)
            self._count(db, next_order + 1, int(present is None), int(request.handled_at is not None) - was_handled)
        self._remember_client(client_key)
        return {"requestId": request.id, "wasAlreadyPresent": present is not None, "wasAlreadyHandled": was_handled}

    def get_request(self, request_id: str) -> dict[str, Any]:
        with self.read() as db:
            row = db.execute("SELECT body FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            raise NotFound(f"Request '{request_id}' was not found in this request queue.")
        request: dict[str, Any] = orjson.loads(row[0])
        return request

    def delete_request(self, request_id: str, locker: Locker | None = None) -> None:
        """Remove a request; one locked by another client is refused."""
        with self.write() as db:
            row = db.execute("SELECT handled_at FROM requests WHERE id = ?", (request_id,)).fetchone()
            if row is None:
                raise NotFound(f"Request '{request_id}' was not found in this request queue.")
            self._refuse_foreign_lock(db, request_id, locker or Locker(), "delete")
            db.execute("DELETE FROM requests WHERE id = ?", (request_id,))
            db.execute(
                "UPDATE state SET total_count = total_count - 1, handled_count = handled_count - ?",
                (int(row[0] is not None),),
            )
            self.mark_modified(db)

    def head(self, *, limit: int | None, client_key: str | None) -> dict[str, Any]:
        """The first unhandled, unlocked requests in queue order (forefront ones first)."""
        limit = _limit(limit, default=100, ceiling=MAX_HEAD_LIMIT)
        self._note_client_once(client_key)
        with self.read() as db:
            modified_at, multiple = db.execute("SELECT modified_at, had_multiple_clients FROM state").fetchone()
            rows = db.execute(
                f"SELECT id, unique_key, url, method, retry_count FROM requests WHERE {_AVAILABLE} "
                "ORDER BY order_no LIMIT ?",
                (_now_ms(), limit),
            ).fetchall()
        return {
            "limit": limit,
            "queueModifiedAt": modified_at,
            "hadMultipleClients": bool(multiple),
            "items": [dict(zip(_HEAD_COLUMNS, row, strict=True)) for row in rows],
        }

    def lock_head(self, *, limit: int | None, lock_secs: float, locker: Locker) -> dict[str, Any]:
        """Lock the first available requests for ``lock_secs`` and return them, in one transaction: two
        clients asking at once never get the same request."""
        limit = _limit(limit, default=MAX_LOCK_HEAD_LIMIT, ceiling=MAX_LOCK_HEAD_LIMIT)
        lock_secs = lock_seconds(lock_secs)
        with self.write() as db:
            self._note_client(db, locker.client_key)
            now = _now_ms()
            expires = now + int(lock_secs * 1000)
            rows = db.execute(
                f"SELECT id, unique_key, url, method, retry_count FROM requests WHERE {_AVAILABLE} "
                "ORDER BY order_no LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE requests SET lock_expires_at = ?, lock_client = ?, lock_run = ? WHERE id = ?",
                [(expires, locker.client_key, locker.run_id, row[0]) for row in rows],
            )
            if rows:
                self.mark_modified(db)
            locked_any = db.execute(f"SELECT EXISTS (SELECT 1 FROM requests WHERE {_LOCKED})", (now,)).fetchone()[0]
            modified_at, multiple = db.execute("SELECT modified_at, had_multiple_clients FROM state").fetchone()
        self._remember_client(locker.client_key)
        lock_expires_at = _iso_ms(expires)
        return {
            "limit": limit,
            "lockSecs": lock_secs if lock_secs % 1 else int(lock_secs),
            "clientKey": locker.client_key,
            "queueModifiedAt": modified_at,
            "hadMultipleClients": bool(multiple),
            "queueHasLockedRequests": bool(locked_any),
            "items": [{**dict(zip(_HEAD_COLUMNS, row, strict=True)), "lockExpiresAt": lock_expires_at} for row in rows],
        }

    def prolong_lock(self, request_id: str, *, lock_secs: float, locker: Locker, forefront: bool) -> dict[str, Any]:
        """Extend the caller's lock to ``lock_secs`` from now: ``{lockExpiresAt}``.

        Only the client that took the lock may prolong it; an expired lock nobody else took since is
        taken up again (the client still has the request in hand).
        """
        lock_secs = lock_seconds(lock_secs)
        with self.write() as db:
            row = self._lock_row(db, request_id)
            if row[0] is None:
                raise Conflict(f"Request '{request_id}' is already handled; there is no lock to prolong.")
            _, expires_at, lock_client, lock_run = row
            now = _now_ms()
            if expires_at is None or not locker.holds(lock_client, lock_run):
                if expires_at is not None and expires_at > now:
                    raise _locked_by_other(request_id, expires_at)
                raise Forbidden(
                    f"Request '{request_id}' is not locked by this client; lock it with POST .../head/lock first."
                )
            expires = now + int(lock_secs * 1000)
            db.execute("UPDATE requests SET lock_expires_at = ? WHERE id = ?", (expires, request_id))
            if forefront:
                self._to_front(db, request_id)
        return {"lockExpiresAt": _iso_ms(expires)}

    def delete_lock(self, request_id: str, *, locker: Locker, forefront: bool) -> None:
        """Release the caller's lock now; the request is available again (at the front with ``forefront``).

        Releasing a request that is not locked (any more) is done already; one locked by another client
        is refused.
        """
        with self.write() as db:
            _, expires_at, lock_client, lock_run = self._lock_row(db, request_id)
            if expires_at is not None and expires_at > _now_ms() and not locker.holds(lock_client, lock_run):
                raise _locked_by_other(request_id, expires_at)
            _release(db, request_id)
            if forefront:
                self._to_front(db, request_id)
            self.mark_modified(db)

    def unlock_all(self, locker: Locker) -> dict[str, Any]:
        """Release every live lock the caller holds (its clientKey's and, from a run, its run's)."""
        with self.write() as db:
            rows = db.execute(
                f"SELECT id, lock_client, lock_run FROM requests WHERE {_LOCKED}", (_now_ms(),)
            ).fetchall()
            mine = [(request_id,) for request_id, client, run in rows if locker.holds(client, run)]
            db.executemany(
                "UPDATE requests SET lock_expires_at = NULL, lock_client = NULL, lock_run = NULL WHERE id = ?", mine
            )
            if mine:
                self.mark_modified(db)
        return {"unlockedCount": len(mine)}

    def list_requests(
        self,
        *,
        limit: int | None,
        cursor: str | None,
        exclusive_start_id: str | None,
        filter: Iterable[str] | None,  # the API's name
        client_key: str | None,
    ) -> dict[str, Any]:
        """All requests ordered by ID, paged with an opaque cursor. ``filter`` narrows them to ``pending``
        (not handled yet, locked or not) and/or ``locked`` (under a live lock); several filters are a union.
        Locked requests carry their ``lockExpiresAt``."""
        limit = _limit(limit, default=MAX_LIST_LIMIT, ceiling=MAX_LIST_LIMIT)
        wanted = set(filter or ())
        if wanted - LIST_FILTERS:
            raise InvalidInput(f"Unknown filter {sorted(wanted - LIST_FILTERS)}; use 'pending' and/or 'locked'.")
        after = _decode_cursor(cursor) if cursor else (exclusive_start_id or "")
        now = _now_ms()
        where = "id > ?"
        if "pending" in wanted:
            where += " AND order_no IS NOT NULL"
        elif "locked" in wanted:
            where += f" AND {_LOCKED}"
        params = (after, now, limit + 1) if where.endswith(_LOCKED) else (after, limit + 1)
        self._note_client_once(client_key)
        with self.read() as db:
            rows = db.execute(
                f"SELECT id, body, lock_expires_at FROM requests WHERE {where} ORDER BY id LIMIT ?", params
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = []
        for _, body, expires_at in rows:
            item = orjson.loads(body)
            if expires_at is not None and expires_at > now and item.get("handledAt") is None:
                item["lockExpiresAt"] = _iso_ms(expires_at)
            items.append(item)
        return {
            "items": items,
            "limit": limit,
            "exclusiveStartId": exclusive_start_id,
            "cursor": cursor,
            "nextCursor": _encode_cursor(rows[-1][0]) if more else None,
        }

    # -- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _lock_row(db: sqlite3.Connection, request_id: str) -> tuple[Any, ...]:
        """(order_no, lock_expires_at, lock_client, lock_run); NotFound for an unknown request."""
        row: tuple[Any, ...] | None = db.execute(
            "SELECT order_no, lock_expires_at, lock_client, lock_run FROM requests WHERE id = ?", (request_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"Request '{request_id}' was not found in this request queue.")
        return row

    @staticmethod
    def _refuse_foreign_lock(db: sqlite3.Connection, request_id: str, locker: Locker, action: str) -> None:
        row = db.execute(
            "SELECT lock_expires_at, lock_client, lock_run FROM requests WHERE id = ? AND lock_expires_at > ?",
            (request_id, _now_ms()),
        ).fetchone()
        if row is not None and not locker.holds(row[1], row[2]):
            raise _locked_by_other(request_id, row[0], action)

    @staticmethod
    def _to_front(db: sqlite3.Connection, request_id: str) -> None:
        """Before every other unhandled request (the newest forefront position)."""
        (next_order,) = db.execute("SELECT next_order FROM state").fetchone()
        db.execute("UPDATE requests SET order_no = ? WHERE id = ? AND order_no IS NOT NULL", (-next_order, request_id))
        db.execute("UPDATE state SET next_order = ?", (next_order + 1,))

    @staticmethod
    def _put(db: sqlite3.Connection, request: QueuedRequest, order_no: int | None) -> None:
        db.execute(
            "INSERT INTO requests (id, unique_key, url, method, retry_count, order_no, handled_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET unique_key = excluded.unique_key, "
            "url = excluded.url, method = excluded.method, retry_count = excluded.retry_count, "
            "order_no = excluded.order_no, handled_at = excluded.handled_at, body = excluded.body",
            (request.id, request.unique_key, request.url, request.method, request.retry_count, order_no,
             request.handled_at, request.body),
        )

    def _count(self, db: sqlite3.Connection, next_order: int, added: int, handled: int) -> None:
        db.execute(
            "UPDATE state SET next_order = ?, total_count = total_count + ?, handled_count = handled_count + ?",
            (next_order, added, handled),
        )
        self.mark_modified(db)

    def _note_client(self, db: sqlite3.Connection, client_key: str | None) -> None:
        """Remember the first client; a different one later sets ``hadMultipleClients``."""
        if not client_key or client_key in self._clients_seen:
            return
        db.execute(
            "UPDATE state SET had_multiple_clients = had_multiple_clients OR "
            "(first_client_key IS NOT NULL AND first_client_key != ?), "
            "first_client_key = coalesce(first_client_key, ?)",
            (client_key, client_key),
        )

    def _remember_client(self, client_key: str | None) -> None:
        """Called after the commit that noted the client, so a rolled-back note is retried."""
        if client_key:
            self._clients_seen.add(client_key)

    def _note_client_once(self, client_key: str | None) -> None:
        """For reads: a write only the first time this process sees the client."""
        if client_key and client_key not in self._clients_seen:
            with self.write() as db:
                self._note_client(db, client_key)
            self._remember_client(client_key)


#: SQL conditions (one ``?`` each: now in ms): in the head and free to take; under a live lock.
_AVAILABLE = "order_no IS NOT NULL AND (lock_expires_at IS NULL OR lock_expires_at <= ?)"
_LOCKED = "order_no IS NOT NULL AND lock_expires_at > ?"


def _release(db: sqlite3.Connection, request_id: str) -> None:
    db.execute("UPDATE requests SET lock_expires_at = NULL, lock_client = NULL, lock_run = NULL WHERE id = ?",
               (request_id,))


def _locked_by_other(request_id: str, expires_at: int, action: str = "change the lock of") -> Forbidden:
    return Forbidden(
        f"Cannot {action} request '{request_id}': another client holds its lock until {_iso_ms(expires_at)}. "
        "Wait for the lock to expire, or use the clientKey that locked it.",
        type="request-locked",
    )


def _order(request: QueuedRequest, forefront: bool, next_order: int) -> int | None:
    if request.handled_at is not None:
        return None
    return -next_order if forefront else next_order


def _limit(limit: int | None, *, default: int, ceiling: int) -> int:
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a whole number of at least 1; got {limit!r}.")
    return min(limit, ceiling)


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"requestId": last_id})).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(decoded["requestId"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned; pass back 'nextCursor' as is.") from None
