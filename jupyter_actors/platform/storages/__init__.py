"""Storages: key-value stores, datasets and request queues, kept on disk and shaped for Apify API v2.

No HTTP and no Jupyter here: the API handlers call ``Storages`` (from threads or ``asyncio.to_thread``).

On-disk layout under ``root`` (every file is SQLite in WAL mode, schema versioned by ``user_version``)::

    storages.sqlite                      catalog: id, kind, name, timestamps, owner run/actor
    key_value_stores/<id>.sqlite         records(key, content_type, size, value)
    datasets/<id>.sqlite                 chunks(first_seq, item_count, body = compact JSON items, "\\n"-joined)
    request_queues/<id>.sqlite           requests(id, unique_key, url, method, retry_count, order_no, handled_at, body)

(plus each file's ``-wal``/``-shm`` companions). Each write is one SQLite transaction, so an
acknowledged write survives ``kill -9`` and a crash never leaves half a record, item batch or request;
several threads and processes may write one storage at once. Deleting a storage deletes its files.

Metadata are plain dicts with Apify's camelCase keys; timestamps are ISO 8601 UTC strings with
milliseconds and ``Z`` (``clock.iso``), ready for JSON.
"""

from .catalog import RunStorage
from .datasets import CHUNK_MAX_ITEMS, EncodedItems, PushResult, encode_items
from .items import ItemFilter, ItemsPage
from .kinds import DATASETS, KEY_VALUE_STORES, KINDS, REQUEST_QUEUES, StorageKind
from .kvs import MAX_KEYS_LIMIT, Record
from .manager import NEW_STORAGE_BYTES, Storages
from .queued_requests import unique_key_to_request_id
from .request_queues import MAX_HEAD_LIMIT, MAX_LIST_LIMIT
from .validation import MAX_RECORD_BYTES, validate_key, validate_name

__all__ = [
    "CHUNK_MAX_ITEMS",
    "DATASETS",
    "KEY_VALUE_STORES",
    "KINDS",
    "MAX_HEAD_LIMIT",
    "MAX_KEYS_LIMIT",
    "MAX_LIST_LIMIT",
    "MAX_RECORD_BYTES",
    "NEW_STORAGE_BYTES",
    "REQUEST_QUEUES",
    "EncodedItems",
    "ItemFilter",
    "ItemsPage",
    "PushResult",
    "Record",
    "RunStorage",
    "StorageKind",
    "Storages",
    "encode_items",
    "unique_key_to_request_id",
    "validate_key",
    "validate_name",
]
