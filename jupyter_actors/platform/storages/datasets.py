"""Dataset contents: an append-only log of items in one SQLite file per dataset, built for millions.

Items are stored as compact JSON (``orjson.dumps``, which never emits a raw newline) and grouped into
*chunks*: rows of up to ``CHUNK_MAX_ITEMS`` items joined by ``\\n``, keyed by the sequence number of
their first item. Reading a page touches one or two chunks; reading everything concatenates chunk
bodies without parsing a single item, which is what makes a 1M-item JSONL export take well under a
second. Small pushes (crawlers often push one item at a time) first land as small "tail" chunks; every
``TAIL_MERGE_ROWS`` of them are merged into full chunks in the same transaction as the push, so the row
count stays about ``items / CHUNK_MAX_ITEMS`` whatever the push pattern. Each push is one transaction:
after ``kill -9`` a dataset holds every acknowledged push and no half of any other.
"""

from __future__ import annotations

import re
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

from ..errors import InvalidInput, NotFound
from .items import ItemFilter, ItemsPage
from .sqlite import StorageFile, StorageGone

CHUNK_MAX_ITEMS = 1000
#: Soft cap of a chunk's body; a single larger item still gets a chunk of its own.
CHUNK_MAX_BYTES = 1024 * 1024
#: Merge the tail once it has this many small chunks.
TAIL_MERGE_ROWS = 64
#: Items fetched per query while streaming a read, so memory stays bounded for any dataset size.
READ_BATCH_ITEMS = 50_000
#: Items per push: a push is parsed into Python objects (about 60 bytes even for ``{}``) before it is
#: stored, so a body of tiny items would otherwise cost gigabytes. Clients split larger pushes.
MAX_PUSH_ITEMS = 100_000
#: JSON objects per push, counted as ``{`` bytes before parsing (an upper bound): refuses a body of
#: millions of tiny objects without building them first.
MAX_PUSH_OBJECTS = 10 * MAX_PUSH_ITEMS

Piece = tuple[int, bytes]  # (item count, items joined by "\n")


@dataclass(frozen=True)
class EncodedItems:
    """A validated push, already cut into chunk-sized pieces (done before taking the write lock)."""

    pieces: list[Piece]
    item_count: int
    clean_item_count: int

    def head(self, count: int) -> EncodedItems:
        """The first ``count`` items only (a push cut at a dataset's ``max_items``)."""
        lines = b"\n".join(body for _, body in self.pieces).split(b"\n")[:count]
        items = [orjson.loads(line) for line in lines]
        return EncodedItems(pack(lines), count, _clean_count(items, b"\n".join(lines)))


@dataclass(frozen=True)
class PushResult:
    """What a push did: the dataset's item count afterwards and the items refused over ``max_items``."""

    item_count: int
    dropped: int
    max_items: int | None = None


def encode_items(payload: bytes | bytearray | memoryview | str | dict[str, Any] | list[Any], *,
                 check: Callable[[list[Any]], None] | None = None) -> EncodedItems:
    """Validate a push (a JSON object or an array of objects, raw or parsed; ``check`` sees the parsed items:
    the dataset schema's) and re-encode it compactly.

    Nothing is stored when this raises, so a bad item anywhere in the array rejects the whole push.
    """
    if check is None and isinstance(payload, (bytes, bytearray)) and len(payload) > 2 * PARSE_SLICE_BYTES:
        # A large body is parsed and encoded a slice at a time, so its parsed items are never all alive
        # at once (for 100 MiB of small items, that is more memory than the body itself).
        braces = _count_braces(payload)
        if braces > MAX_PUSH_OBJECTS:
            raise _too_many(f"up to {braces} objects")
        pieces: list[Piece] = []
        count = clean = 0
        carry: list[Any] = []  # a slice's last items short of a whole chunk go with the next slice's
        try:
            for part in _item_slices(payload):
                _check_objects(part, count)
                count += len(part)
                carry += part
                whole = len(carry) - len(carry) % CHUNK_MAX_ITEMS
                clean += _encode_into(pieces, carry[:whole])
                carry = carry[whole:]
            clean += _encode_into(pieces, carry)
            return EncodedItems(pieces, count, clean)
        except _BadCut:
            pass
    items = _parse(payload)
    if check is not None:
        check(items)
    pieces = []
    return EncodedItems(pieces, len(items), _encode_into(pieces, items))


def _encode_into(pieces: list[Piece], items: list[Any]) -> int:
    """Appends ``items``, compactly encoded, to ``pieces``; returns how many stay non-empty when clean."""
    dumps = orjson.dumps
    clean = 0
    for start in range(0, len(items), CHUNK_MAX_ITEMS):
        block = items[start : start + CHUNK_MAX_ITEMS]
        try:
            # Joined per block: keeping a million separate orjson outputs alive is far slower.
            body = b"\n".join(map(dumps, block))
        except orjson.JSONEncodeError as error:
            raise InvalidInput(f"Dataset items must be JSON-serialisable: {error}.") from None
        clean += _clean_count(block, body)
        if len(body) <= CHUNK_MAX_BYTES:
            pieces.append((len(block), body))
        else:
            pieces.extend(pack(body.split(b"\n")))
    return clean


def pack(items: list[bytes]) -> list[Piece]:
    """Cut encoded items into pieces of at most CHUNK_MAX_ITEMS items and about CHUNK_MAX_BYTES bytes."""
    ends = list(accumulate(len(item) + 1 for item in items))
    pieces: list[Piece] = []
    start, consumed = 0, 0
    while start < len(items):
        stop = bisect_right(ends, consumed + CHUNK_MAX_BYTES, start, min(len(items), start + CHUNK_MAX_ITEMS))
        stop = max(stop, start + 1)
        pieces.append((stop - start, b"\n".join(items[start:stop])))
        consumed, start = ends[stop - 1], stop
    return pieces


def is_full(piece: Piece) -> bool:
    """A full chunk is never merged again; smaller ones at the end of the log form the tail."""
    return piece[0] >= CHUNK_MAX_ITEMS or len(piece[1]) >= CHUNK_MAX_BYTES // 2


class DatasetFile(StorageFile):
    MIGRATIONS = (
        """
        CREATE TABLE state (
            only INTEGER PRIMARY KEY CHECK (only = 1),
            modified_at TEXT,
            item_count INTEGER NOT NULL DEFAULT 0,
            clean_item_count INTEGER NOT NULL DEFAULT 0,
            tail_start INTEGER NOT NULL DEFAULT 0,  -- first item of the small chunks the next merge folds
            tail_rows INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO state (only, modified_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        CREATE TABLE chunks (
            first_seq INTEGER PRIMARY KEY,  -- 0-based index of the chunk's first item
            item_count INTEGER NOT NULL,
            body BLOB NOT NULL              -- compact JSON items joined by a newline
        )
        """,
        # A run's ``maxItems``: the dataset keeps at most max_items items; dropped_items counts those refused.
        "ALTER TABLE state ADD COLUMN max_items INTEGER; "
        "ALTER TABLE state ADD COLUMN dropped_items INTEGER NOT NULL DEFAULT 0",
    )

    def metadata(self) -> dict[str, Any]:
        with self.read() as db:
            modified_at, count, clean = db.execute(
                "SELECT modified_at, item_count, clean_item_count FROM state"
            ).fetchone()
        return {"modifiedAt": modified_at, "itemCount": count, "cleanItemCount": clean}

    def item_count(self) -> int:
        with self.read() as db:
            return int(db.execute("SELECT item_count FROM state").fetchone()[0])

    def set_max_items(self, max_items: int | None) -> None:
        """Cap the dataset (a run's ``maxItems``); later pushes are cut at the cap."""
        with self.write() as db:
            db.execute("UPDATE state SET max_items = ?", (max_items,))

    def cap(self) -> tuple[int | None, int]:
        """(max_items or None, items refused so far)."""
        with self.read() as db:
            max_items, dropped = db.execute("SELECT max_items, dropped_items FROM state").fetchone()
        return max_items, int(dropped)

    def append(self, batch: EncodedItems) -> PushResult:
        """Append in one transaction, cut at ``max_items`` if the dataset has one."""
        if not batch.item_count:
            return PushResult(self.item_count(), 0)
        with self.write() as db:
            count, tail_start, tail_rows, max_items = db.execute(
                "SELECT item_count, tail_start, tail_rows, max_items FROM state"
            ).fetchone()
            dropped = 0
            if max_items is not None and count + batch.item_count > max_items:
                allowed = max(max_items - count, 0)
                dropped = batch.item_count - allowed
                db.execute("UPDATE state SET dropped_items = dropped_items + ?", (dropped,))
                if not allowed:
                    return PushResult(count, dropped, max_items)
                batch = batch.head(allowed)
            pieces, first = batch.pieces, count
            merge = tail_rows and (len(pieces) > 1 or is_full(pieces[0]) or tail_rows + 1 >= TAIL_MERGE_ROWS)
            if merge:
                pieces = self._merge_tail(db, tail_start, pieces)
                first, tail_rows = tail_start, 0
            seq: int = first
            for item_count, body in pieces:
                db.execute("INSERT INTO chunks (first_seq, item_count, body) VALUES (?, ?, ?)", (seq, item_count, body))
                seq += item_count
            if is_full(pieces[-1]):
                tail_start, tail_rows = seq, 0
            else:
                if not tail_rows:
                    tail_start = seq - pieces[-1][0]
                tail_rows += 1
            db.execute(
                "UPDATE state SET item_count = ?, clean_item_count = clean_item_count + ?, "
                "tail_start = ?, tail_rows = ?",
                (seq, batch.clean_item_count, tail_start, tail_rows),
            )
            self.mark_modified(db)
            return PushResult(seq, dropped, max_items)

    def page(self, *, offset: int, limit: int | None, desc: bool, item_filter: ItemFilter) -> ItemsPage:
        """Rows [offset, offset + limit) counted from the start, or from the end when ``desc``."""
        total = self.item_count()
        if desc:
            hi = max(total - offset, 0)
            lo = 0 if limit is None else max(hi - limit, 0)
        else:
            lo = min(offset, total)
            hi = total if limit is None else min(lo + limit, total)
        return ItemsPage(
            total=total,
            offset=offset,
            limit=limit,
            desc=desc,
            count=hi - lo,
            source=lambda: self.read_segments(lo, hi, desc=desc),
            item_filter=item_filter,
        )

    def read_segments(self, lo: int, hi: int, *, desc: bool = False) -> Iterator[bytes]:
        """Items [lo, hi) as non-empty ``\\n``-joined segments, newest first when ``desc``.

        Items never change once written (merges only regroup them), so reading in several short
        queries is as consistent as one long snapshot and holds no lock while the caller streams.
        """
        starts = range(lo, hi, READ_BATCH_ITEMS)
        for start in reversed(starts) if desc else starts:
            stop = min(start + READ_BATCH_ITEMS, hi)
            try:
                rows = self._chunks(start, stop)
            except StorageGone:
                raise NotFound("The dataset was deleted while it was being read.") from None
            if desc:
                rows.reverse()
            for first, item_count, body in rows:
                if not desc and first >= start and first + item_count <= stop:
                    yield body  # the common case: a whole chunk, served as stored
                    continue
                parts = body.split(b"\n")[max(start - first, 0) : stop - first]
                if desc:
                    parts.reverse()
                if parts:
                    yield b"\n".join(parts)

    # -- internals ---------------------------------------------------------------------------------

    def _chunks(self, start: int, stop: int) -> list[tuple[int, int, bytes]]:
        with self.read() as db:
            return db.execute(
                "SELECT first_seq, item_count, body FROM chunks WHERE first_seq >= "
                "coalesce((SELECT max(first_seq) FROM chunks WHERE first_seq <= ?), 0) "
                "AND first_seq < ? ORDER BY first_seq",
                (start, stop),
            ).fetchall()

    @staticmethod
    def _merge_tail(db: sqlite3.Connection, tail_start: int, pieces: list[Piece]) -> list[Piece]:
        """Fold the tail's small chunks and the first new piece into full chunks (rows are replaced)."""
        bodies = [body for (body,) in db.execute(
            "SELECT body FROM chunks WHERE first_seq >= ? ORDER BY first_seq", (tail_start,)
        )]
        db.execute("DELETE FROM chunks WHERE first_seq >= ?", (tail_start,))
        bodies.append(pieces[0][1])
        return pack(b"\n".join(bodies).split(b"\n")) + pieces[1:]


def _too_many(count: str) -> InvalidInput:
    return InvalidInput(f"A push holds at most {MAX_PUSH_ITEMS} items (and {MAX_PUSH_OBJECTS} JSON objects in "
                        f"all); this one has {count}. Push the items in several parts. Nothing was stored.")


#: A larger JSON array is parsed in slices of about this size: one orjson call over 100 MiB holds the
#: GIL for a quarter of a second, and with it every other thread of the server (Jupyter's loop too).
PARSE_SLICE_BYTES = 1024 * 1024
_SPACE = re.compile(rb"[ \t\r\n]*")


class _BadCut(Exception):
    """A slice of a large array did not parse on its own: the body is parsed whole instead."""


def _loads(payload: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``, in slices for a large array of objects."""
    if isinstance(payload, (bytes, bytearray)) and len(payload) > 2 * PARSE_SLICE_BYTES:
        try:
            return [item for part in _item_slices(payload) for item in part]
        except _BadCut:
            pass
    return orjson.loads(payload)  # also what names the error of an invalid body


def _count_braces(payload: bytes | bytearray | str) -> int:
    """The ``{`` in the body, counted a slice at a time (one count over 100 MiB holds the GIL ~0.1 s)."""
    brace: Any = "{" if isinstance(payload, str) else b"{"
    return sum(payload.count(brace, start, start + PARSE_SLICE_BYTES)
               for start in range(0, len(payload), PARSE_SLICE_BYTES))


def _item_slices(payload: bytes | bytearray) -> Iterator[list[Any]]:
    """The items of a JSON array a slice at a time, cut after a ``}`` that a comma follows.

    A cut inside a string or a nested object leaves a slice that is not valid JSON (an open string or
    bracket), so when every slice parses, the whole is exactly their concatenation; a slice that does
    not parse raises _BadCut (so does a body that is not an array).
    """
    start = _SPACE.match(payload).end()  # type: ignore[union-attr]  # matches the empty string too
    end = payload.rfind(b"]")
    if payload[start:start + 1] != b"[" or end <= start or payload[end + 1:].strip():
        raise _BadCut
    start += 1
    view = memoryview(payload)
    while start < end:
        cut = payload.find(b"},", start + PARSE_SLICE_BYTES, end) if end - start > 2 * PARSE_SLICE_BYTES else -1
        stop = end if cut < 0 else cut + 1
        try:
            part = orjson.loads(b"".join((b"[", view[start:stop], b"]")))
        except orjson.JSONDecodeError:
            raise _BadCut from None
        if not part:  # an empty slice: a stray comma, which the whole body's parse reports
            raise _BadCut
        yield part
        start = stop + 1  # past the comma


def _check_objects(items: list[Any], offset: int) -> None:
    """Every item an object, and the push (up to these, which start at item ``offset``) within the cap."""
    if offset + len(items) > MAX_PUSH_ITEMS:
        raise _too_many(f"{offset + len(items)} items" if offset == 0 else f"over {offset + len(items) - 1} items")
    if not all(isinstance(item, dict) for item in items):
        index, item = next((i, x) for i, x in enumerate(items) if not isinstance(x, dict))
        raise InvalidInput(
            f"Dataset items must be JSON objects; item {offset + index} is {_json_type(item)}. "
            "Wrap plain values in an object, for example {\"value\": ...}. Nothing was stored."
        )


def _parse(payload: Any) -> list[Any]:
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        braces = 0 if isinstance(payload, memoryview) else _count_braces(payload)
        if braces > MAX_PUSH_OBJECTS:
            raise _too_many(f"up to {braces} objects")
        try:
            payload = _loads(payload)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"Dataset items must be valid JSON: {error}.") from None
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise InvalidInput(
            f"Dataset items must be a JSON object or an array of objects; got {_json_type(payload)}."
        )
    _check_objects(payload, 0)
    return payload


def _clean_count(block: list[dict[str, Any]], body: bytes) -> int:
    """Items that stay non-empty without their hidden (``#``) fields; byte checks skip most work."""
    if b'"#' in body:  # some key (or string value) starts with '#': look at the keys
        return sum(1 for item in block if any(not key.startswith("#") for key in item))
    if b"{}" in body:
        return sum(1 for item in block if item)
    return len(block)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
