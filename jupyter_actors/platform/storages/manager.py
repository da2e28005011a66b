"""``Storages``: the one entry point to key-value stores, datasets and request queues.

Over 400 lines on purpose: it is the facade every storage operation passes through (resolve, open,
cache, catalog).

It resolves an ID or name through the catalog, opens (and caches) the storage's own file, and maps a
storage deleted meanwhile to NotFound. Safe to call from many threads and from several processes
sharing one root. Metadata comes back as plain dicts with Apify's camelCase keys and ISO timestamps
(``2024-01-31T12:00:00.000Z``); the HTTP layer adds ``userId``, ``consoleUrl`` and public URLs.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from ..errors import NotFound
from .catalog import Catalog, RunStorage, row_to_meta
from .datasets import DatasetFile, PushResult, encode_items
from .items import ItemFilter, ItemsPage
from .kinds import DATASETS, KEY_VALUE_STORES, KINDS, LABELS, REQUEST_QUEUES, StorageKind, check_kind
from .kvs import KeyValueStoreFile, Record
from .queued_requests import Locker, QueuedRequest
from .quota import StorageQuota
from .request_queues import RequestQueueFile
from .schemas import Collection, check_items, check_record, schema_json
from .sqlite import StorageFile, StorageGone
from .validation import validate_limit, validate_name, validate_offset, validate_title

F = TypeVar("F", bound=StorageFile)

FILE_CLASSES: dict[StorageKind, type[StorageFile]] = {
    KEY_VALUE_STORES: KeyValueStoreFile,
    DATASETS: DatasetFile,
    REQUEST_QUEUES: RequestQueueFile,
}
_KIND_OF: dict[type[StorageFile], StorageKind] = {cls: kind for kind, cls in FILE_CLASSES.items()}

#: What a new, empty storage takes on disk (its SQLite file and WAL), checked against the storage quota.
NEW_STORAGE_BYTES = 64 * 1024
#: The API's ceiling for one page of a storage list.
MAX_LIST_LIMIT = 1000
#: Every process with the storages open holds a shared ``flock`` on this file in the root; only a
#: process that can lock it exclusively (no one else has the storages open) removes orphaned files.
LOCK_FILE = "storages.lock"


class Storages:
    """Storage manager over ``root``; see the package docstring for the on-disk layout."""

    #: ``accessedAt`` is written at most this often per storage and process (reads stay reads).
    TOUCH_INTERVAL_SECS = 1.0
    MAX_REMEMBERED_DELETIONS = 4096

    def __init__(self, root: Path, *, fsync: bool = False, catalog_fsync: bool = True,
                 max_open_files: int = 256, max_storage_bytes: int = 0, quota_bytes: int = 0) -> None:
        """``fsync=True`` makes every storage's commits survive power loss too (SQLite ``synchronous=FULL``);
        ``catalog_fsync`` does so for the catalog (on by default: a storage whose catalog row is lost
        with power would be taken for an orphan and removed). ``quota_bytes`` (0: none) caps all storages
        together (``quota.py``)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._max_open = max_open_files
        self._max_storage_bytes = max_storage_bytes  # 0: no limit (each storage's file; see sqlite.Database)
        self._catalog = Catalog(self.root / "storages.sqlite", fsync=catalog_fsync)
        self.quota = StorageQuota(self.root, quota_bytes)
        #: (run, storage) pairs already in the catalog's ``run_writes``: a run's every write need not say so again.
        self._run_writes: set[tuple[str, str]] = set()
        self._files: OrderedDict[str, StorageFile] = OrderedDict()
        self._files_lock = threading.Lock()
        #: Storages deleted lately: a file being deleted is never reopened (``may_create`` covers the rest).
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._touched: dict[str, float] = {}
        #: Told (run id, push result) when a run's capped dataset refused items, so the run can say so.
        self.on_items_dropped: Callable[[str, PushResult], None] | None = None
        self._lock_fd: int | None = self._hold_directory()

    # -- storages as a whole -------------------------------------------------------------------------

    def create(
        self, kind: StorageKind, name: str | None = None, *, run_id: str | None = None, actor_id: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new storage; Conflict if ``name`` is taken. ``run_id``/``actor_id`` record the owner; ``schema``
        is a dataset's or key-value store's schema (``schemas.py``), checked here."""
        kind = check_kind(kind)
        if name is not None:
            validate_name(name)
        self.quota.check(NEW_STORAGE_BYTES)
        return self._metadata(self._catalog.insert(kind, name, run_id=run_id, actor_id=actor_id,
                                                   schema=schema_json(kind, schema)))

    def create_kvs(self, name: str | None = None, *, run_id: str | None = None, actor_id: str | None = None,
                   schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.create(KEY_VALUE_STORES, name, run_id=run_id, actor_id=actor_id, schema=schema)

    def create_dataset(
        self, name: str | None = None, *, run_id: str | None = None, actor_id: str | None = None,
        max_items: int | None = None, schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``max_items``: a run's ``maxItems``; pushes past it are cut (``push_items``)."""
        meta = self.create(DATASETS, name, run_id=run_id, actor_id=actor_id, schema=schema)
        if max_items is not None:
            with self._use(DatasetFile, meta["id"]) as file:
                file.set_max_items(max_items)
        return meta

    def create_request_queue(
        self, name: str | None = None, *, run_id: str | None = None, actor_id: str | None = None
    ) -> dict[str, Any]:
        return self.create(REQUEST_QUEUES, name, run_id=run_id, actor_id=actor_id)

    def get_or_create(
        self, kind: StorageKind, name: str | None, *, run_id: str | None = None, actor_id: str | None = None,
        title: str | None = None, schema: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """``POST /{collection}?name=``: (metadata, created). Without a name it always creates; ``title``
        and ``schema`` are given to a storage this creates (an existing one keeps its own)."""
        kind = check_kind(kind)
        title = validate_title(title)
        schema_text = schema_json(kind, schema)
        if name is None:
            self.quota.check(NEW_STORAGE_BYTES)
            row = self._catalog.insert(kind, None, run_id=run_id, actor_id=actor_id, title=title, schema=schema_text)
            return self._metadata(row), True
        validate_name(name)
        if self._catalog.find(kind, name) is None:  # only a new storage needs room
            self.quota.check(NEW_STORAGE_BYTES)
        row, created = self._catalog.get_or_insert(kind, name, run_id=run_id, actor_id=actor_id, title=title,
                                                   schema=schema_text)
        return self._metadata(row), created

    def get(self, kind: StorageKind, id_or_name: str) -> dict[str, Any]:
        """Metadata by ID or name; NotFound if neither matches."""
        row = self._require(kind, id_or_name)
        self._touch(row["id"])
        return self._metadata(row, id_or_name)

    def find(self, kind: StorageKind, id_or_name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, id_or_name)
        except NotFound:
            return None

    def list_storages(
        self, kind: StorageKind, *, unnamed: bool = False, offset: int = 0, limit: int | None = None, desc: bool = False
    ) -> dict[str, Any]:
        """A page shaped like Apify's list: ``{total, offset, limit, desc, count, unnamed, items}``.

        As in Apify, only named storages are listed unless ``unnamed`` is true; oldest first.
        """
        kind = check_kind(kind)
        offset = validate_offset(offset)
        limit = validate_limit(limit, ceiling=MAX_LIST_LIMIT)
        limit = MAX_LIST_LIMIT if limit is None else limit
        total, rows = self._catalog.page(kind, unnamed=unnamed, offset=offset, limit=limit, desc=desc)
        items = []
        for row in rows:
            try:
                items.append(self._metadata(row))
            except NotFound:  # deleted between the listing and the look at its file
                total -= 1
        return {
            "total": total, "offset": offset, "limit": limit, "desc": desc,
            "count": len(items), "unnamed": unnamed, "items": items,
        }

    def rename(self, kind: StorageKind, id_or_name: str, name: str | None) -> dict[str, Any]:
        """Give the storage a new name, or make it unnamed with None; Conflict if the name is taken."""
        if name is not None:
            validate_name(name)
        row = self._require(kind, id_or_name)
        return self._metadata(self._catalog.rename(row["kind"], row["id"], name), id_or_name)

    def retitle(self, kind: StorageKind, id_or_name: str, title: str | None) -> dict[str, Any]:
        """Set the storage's free-form title (None clears it)."""
        title = validate_title(title)
        row = self._require(kind, id_or_name)
        return self._metadata(self._catalog.retitle(row["id"], title), id_or_name)

    def delete(self, kind: StorageKind, id_or_name: str) -> None:
        """Remove the storage and its files; readers of it get NotFound from then on."""
        row = self._require(kind, id_or_name)
        self._catalog.remove(row["id"])
        with self._files_lock:
            self._deleted[row["id"]] = None
            while len(self._deleted) > self.MAX_REMEMBERED_DELETIONS:  # the catalog says "gone" for older ones
                self._deleted.popitem(last=False)
            handle = self._files.pop(row["id"], None)
        (handle or FILE_CLASSES[row["kind"]](self._path(row["kind"], row["id"]))).destroy()
        self._touched.pop(row["id"], None)
        self.quota.freed()

    # -- what runs write ------------------------------------------------------------------------------

    def note_run_write(self, run_id: str, kind: StorageKind, storage_id: str) -> None:
        """A run writes to (or opens by name) this storage: from now on its growth counts towards the run's
        disk limit (``run_bytes``). Storages the run created count anyway; only the first write is recorded."""
        if (run_id, storage_id) in self._run_writes:
            return
        base = FILE_CLASSES[kind](self._path(kind, storage_id)).disk_bytes()
        self._catalog.note_run_write(run_id, storage_id, base)
        if len(self._run_writes) > self.MAX_REMEMBERED_DELETIONS * 16:
            self._run_writes.clear()  # only a cache: the catalog ignores a repeated record
        self._run_writes.add((run_id, storage_id))

    def run_storages(self, run_id: str) -> list[RunStorage]:
        """Every storage the run created (defaults included) or wrote to."""
        return self._catalog.run_storages(run_id)

    def run_bytes(self, run_id: str) -> int:
        """Bytes on disk a run's storages take, by the rule of the README's "Disk limits": every storage
        the run created counts whole; any other it wrote to (a named one, a child run's) counts with what
        it grew by since the run first wrote to it, whoever else wrote meanwhile."""
        total = 0
        for storage in self._catalog.run_storages(run_id):
            size = FILE_CLASSES[storage.kind](self._path(storage.kind, storage.id)).disk_bytes()
            total += size if storage.base_bytes is None else max(0, size - storage.base_bytes)
        return total

    def forget_run(self, run_id: str) -> None:
        """The run is deleted: drop its record of the storages it wrote to (they stay)."""
        self._catalog.forget_run(run_id)
        self._run_writes = {pair for pair in self._run_writes if pair[0] != run_id}

    def size_bytes(self, storage_ids: Iterable[str]) -> int:
        """Bytes on disk of these storages (files plus WAL); unknown IDs count 0."""
        total = 0
        for storage_id in storage_ids:
            for kind in KINDS:
                total += FILE_CLASSES[kind](self._path(kind, storage_id)).disk_bytes()
        return total

    def close(self) -> None:
        with self._files_lock:
            handles = list(self._files.values())
            self._files.clear()
        for handle in handles:
            handle.close()
        self._catalog.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the shared lock
            self._lock_fd = None

    # -- key-value stores ----------------------------------------------------------------------------

    def set_record(
        self, store: str, key: str, value: bytes | bytearray | memoryview, content_type: str | None = None
    ) -> None:
        """Write a record; the content type is stored verbatim (default ``application/octet-stream``). A key in a
        collection of the store's schema must have a content type and JSON the collection allows (``check_record``)."""
        with self._use_row(KeyValueStoreFile, store) as (row, kvs):
            check_record(row["schema"], key, value, content_type or "application/octet-stream")
            self.quota.check(len(value))
            kvs.set_record(key, value, content_type)

    def get_record(self, store: str, key: str) -> Record:
        """``(value, content_type)``; NotFound if the record is missing."""
        with self._use(KeyValueStoreFile, store) as kvs:
            return kvs.get_record(key)

    def record_exists(self, store: str, key: str) -> bool:
        with self._use(KeyValueStoreFile, store) as kvs:
            return kvs.record_exists(key)

    def delete_record(self, store: str, key: str) -> bool:
        """True if a record was deleted, False if there was none."""
        with self._use(KeyValueStoreFile, store) as kvs:
            return kvs.delete_record(key)

    def list_keys(
        self, store: str, *, exclusive_start_key: str | None = None, limit: int | None = 1000,
        prefix: str | None = None, collection: Collection | None = None,
    ) -> dict[str, Any]:
        """``{items: [{key, size}], count, limit, isTruncated, exclusiveStartKey, nextExclusiveStartKey}``;
        with ``collection`` only its keys (that also start with ``prefix``)."""
        only_key = None
        if collection is not None:
            only_key = collection.key
            prefix = collection.prefix_with(prefix)
            if prefix is None:  # the prefix and the collection share no key: list none
                only_key = prefix = ""
        with self._use(KeyValueStoreFile, store) as kvs:
            return kvs.list_keys(exclusive_start_key=exclusive_start_key, limit=limit, prefix=prefix,
                                 only_key=only_key)

    # -- datasets ------------------------------------------------------------------------------------

    def push_items(self, dataset: str,
                   items: bytes | bytearray | memoryview | str | dict[str, Any] | list[Any]) -> int:
        """Append a JSON object or array of objects (raw body or parsed); returns the new item count.

        The whole push is validated first (against the dataset schema's ``fields`` too, ``check_items``) and
        stored in one transaction: all of it or nothing, except that a dataset with ``max_items`` keeps the items
        up to it and tells ``on_items_dropped`` of the rest.
        """
        with self._use_row(DatasetFile, dataset) as (row, file):
            encoded = encode_items(items, check=check_items(row["schema"]))
            self.quota.check(sum(len(body) for _, body in encoded.pieces))
            result = file.append(encoded)
        if result.dropped and self.on_items_dropped is not None and row["act_run_id"]:
            self.on_items_dropped(row["act_run_id"], result)
        return result.item_count

    def list_items(
        self,
        dataset: str,
        *,
        offset: int = 0,
        limit: int | None = None,
        desc: bool = False,
        fields: Sequence[str] | None = None,
        omit: Sequence[str] | None = None,
        clean: bool = False,
        skip_empty: bool = False,
        skip_hidden: bool = False,
        unwind: Sequence[str] | None = None,
        flatten: Sequence[str] | None = None,
    ) -> ItemsPage:
        """A page of items; see ``ItemsPage`` for the pagination numbers and the JSON/JSONL/CSV encodings
        and ``ItemFilter`` for the item options."""
        item_filter = ItemFilter.build(
            fields=fields, omit=omit, clean=clean, skip_hidden=skip_hidden, skip_empty=skip_empty,
            unwind=unwind, flatten=flatten,
        )
        with self._use(DatasetFile, dataset) as file:
            return file.page(
                offset=validate_offset(offset), limit=validate_limit(limit), desc=desc, item_filter=item_filter
            )

    # -- request queues ------------------------------------------------------------------------------

    def add_requests(
        self, queue: str, requests: Sequence[Any], *, forefront: bool = False, client_key: str | None = None
    ) -> dict[str, Any]:
        """``{processedRequests: [{requestId, uniqueKey, wasAlreadyPresent, wasAlreadyHandled}],
        unprocessedRequests: []}``; every request is validated before any is stored."""
        checked = [QueuedRequest.from_api(raw, where=f"Request {index}") for index, raw in enumerate(requests)]
        self.quota.check(sum(len(request.body) for request in checked))
        with self._use(RequestQueueFile, queue) as file:
            return file.add_requests(checked, forefront=forefront, client_key=client_key)

    def get_request(self, queue: str, request_id: str) -> dict[str, Any]:
        with self._use(RequestQueueFile, queue) as file:
            return file.get_request(request_id)

    def update_request(
        self, queue: str, request_id: str, request: dict[str, Any], *, forefront: bool = False,
        client_key: str | None = None, run_id: str | None = None,
    ) -> dict[str, Any]:
        """Upsert: ``{requestId, wasAlreadyPresent, wasAlreadyHandled}``; ``handledAt`` marks it handled.
        ``run_id`` is the calling run, which owns the locks it took whatever its clientKey."""
        checked = QueuedRequest.from_api(request, where="The request", request_id=request_id)
        self.quota.check(len(checked.body))
        with self._use(RequestQueueFile, queue) as file:
            return file.update_request(checked, forefront=forefront, client_key=client_key,
                                       locker=Locker(client_key, run_id))

    def delete_request(
        self, queue: str, request_id: str, *, client_key: str | None = None, run_id: str | None = None
    ) -> None:
        with self._use(RequestQueueFile, queue) as file:
            file.delete_request(request_id, Locker(client_key, run_id))

    def lock_head(
        self, queue: str, *, lock_secs: float, limit: int | None = None, client_key: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Lock and return the first available requests: ``{limit, lockSecs, clientKey, queueModifiedAt,
        hadMultipleClients, queueHasLockedRequests, items: [{..., lockExpiresAt}]}``."""
        with self._use(RequestQueueFile, queue) as file:
            return file.lock_head(limit=limit, lock_secs=lock_secs, locker=Locker(client_key, run_id))

    def prolong_request_lock(
        self, queue: str, request_id: str, *, lock_secs: float, forefront: bool = False,
        client_key: str | None = None, run_id: str | None = None,
    ) -> dict[str, Any]:
        """``{lockExpiresAt}``; only the lock's holder may prolong it."""
        with self._use(RequestQueueFile, queue) as file:
            return file.prolong_lock(request_id, lock_secs=lock_secs, locker=Locker(client_key, run_id),
                                     forefront=forefront)

    def delete_request_lock(
        self, queue: str, request_id: str, *, forefront: bool = False, client_key: str | None = None,
        run_id: str | None = None,
    ) -> None:
        with self._use(RequestQueueFile, queue) as file:
            file.delete_lock(request_id, locker=Locker(client_key, run_id), forefront=forefront)

    def unlock_requests(self, queue: str, *, client_key: str | None = None,
                        run_id: str | None = None) -> dict[str, Any]:
        """Release every lock of this clientKey (and of this run): ``{unlockedCount}``."""
        with self._use(RequestQueueFile, queue) as file:
            return file.unlock_all(Locker(client_key, run_id))

    def list_head(self, queue: str, *, limit: int | None = 100, client_key: str | None = None) -> dict[str, Any]:
        """``{limit, queueModifiedAt, hadMultipleClients, items: [{id, uniqueKey, url, method, retryCount}]}``."""
        with self._use(RequestQueueFile, queue) as file:
            return file.head(limit=limit, client_key=client_key)

    def list_requests(
        self,
        queue: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        exclusive_start_id: str | None = None,
        filter: Iterable[str] | None = None,  # the API's name
        client_key: str | None = None,
    ) -> dict[str, Any]:
        """``{items, limit, exclusiveStartId, cursor, nextCursor}``; pass ``nextCursor`` back for more."""
        with self._use(RequestQueueFile, queue) as file:
            return file.list_requests(
                limit=limit, cursor=cursor, exclusive_start_id=exclusive_start_id, filter=filter,
                client_key=client_key,
            )

    # -- internals -----------------------------------------------------------------------------------

    @contextmanager
    def _use(self, cls: type[F], id_or_name: str) -> Iterator[F]:
        """The storage's file, with a storage deleted meanwhile reported as NotFound."""
        with self._use_row(cls, id_or_name) as (_, file):
            yield file

    @contextmanager
    def _use_row(self, cls: type[F], id_or_name: str) -> Iterator[tuple[dict[str, Any], F]]:
        """``_use`` with the storage's catalog row too (its schema), from the same lookup."""
        kind = _KIND_OF[cls]
        row = self._require(kind, id_or_name)
        self._touch(row["id"])
        try:
            yield row, cast(F, self._file(row))
        except StorageGone:
            raise self._not_found(kind, id_or_name) from None

    def _require(self, kind: StorageKind, id_or_name: str) -> dict[str, Any]:
        row = self._catalog.find(check_kind(kind), id_or_name)
        if row is None:
            raise self._not_found(kind, id_or_name)
        return row

    @staticmethod
    def _not_found(kind: StorageKind, id_or_name: str) -> NotFound:
        return NotFound(f"{LABELS[kind]} '{id_or_name}' was not found; check the ID or name.")

    def _metadata(self, row: dict[str, Any], id_or_name: str | None = None) -> dict[str, Any]:
        meta = row_to_meta(row)
        try:
            contents = self._file(row).metadata()
        except StorageGone:
            raise self._not_found(row["kind"], id_or_name or row["id"]) from None
        meta.update(contents)
        meta["modifiedAt"] = max(row["modified_at"], contents["modifiedAt"])
        meta["accessedAt"] = max(row["accessed_at"], meta["modifiedAt"])
        return meta

    def _file(self, row: dict[str, Any]) -> StorageFile:
        storage_id, kind = row["id"], row["kind"]
        evicted = None
        with self._files_lock:
            handle = self._files.get(storage_id)
            if handle is not None:
                self._files.move_to_end(storage_id)
                return handle
            if storage_id in self._deleted:
                raise StorageGone(storage_id)
            handle = FILE_CLASSES[kind](
                self._path(kind, storage_id), fsync=self._fsync, may_create=partial(self._catalog.exists, storage_id),
                max_bytes=self._max_storage_bytes,
            )
            self._files[storage_id] = handle
            if len(self._files) > self._max_open:
                _, evicted = self._files.popitem(last=False)
        if evicted is not None:
            evicted.close()  # waits for its current user; a later call simply reopens it
        return handle

    def _touch(self, storage_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(storage_id)
        if last is None or now - last >= self.TOUCH_INTERVAL_SECS:
            self._touched[storage_id] = now
            self._catalog.touch(storage_id)

    def _path(self, kind: str, storage_id: str) -> Path:
        return self.root / kind / f"{storage_id}.sqlite"

    def _hold_directory(self) -> int:
        """Take the shared lock on the root, first removing orphans if no other process holds it.

        The exclusive attempt does not wait: a process that finds the directory in use just skips the
        clean-up (the process that has it alone will do it). The shared lock only ever waits for another
        process's clean-up, which is short and bounded by SQLite's busy timeout.
        """
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                self._remove_orphans()
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remove_orphans(self) -> None:
        """Delete files whose storage is gone (a crash between the catalog delete and the unlink).

        Files are listed before the catalog is read: a storage is entered in the catalog before its file
        is created, so a file listed first and missing from the catalog read after is surely deleted.
        """
        files = [path for kind in KINDS for path in (self.root / kind).glob("*.sqlite*")]
        known = self._catalog.ids()
        for path in files:
            if path.name.split(".", 1)[0] not in known:
                path.unlink(missing_ok=True)
