"""Key-value stores and datasets over HTTP, shaped exactly as apify-client expects, and what all storage
handlers share (``StorageAccess``); request queues are in ``request_queue_handlers.py``.

Each storage is addressed by id, name or ``username~name``; ``/actor-runs/{id}/key-value-store``
(and ``dataset``, ``request-queue``) address a run's default storages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from ..platform.core import USERNAME
from ..platform.errors import Forbidden, InvalidInput, NotFound
from ..platform.storages import DATASETS, KEY_VALUE_STORES, REQUEST_QUEUES
from ..platform.storages.columnar import require_pyarrow, write_arrow, write_parquet
from ..platform.storages.item_formats import (
    check_xml_name,
    iter_html,
    iter_rss,
    iter_xml,
    write_xlsx,
)
from ..platform.storages.kinds import LABELS
from ..platform.storages.schemas import View, dataset_view, store_collection
from ..platform.storages.signing import content_signature_valid, record_signature, record_signature_valid
from ..platform.storages.statistics import field_statistics
from ..platform.storages.validation import validate_title
from .base import check_general_access, shared_only
from .principals import SignedPrincipal, require
from .run_refs import RunAddressing

ID = r"([^/]+)"
T = TypeVar("T")
UNLIMITED = 999_999_999_999
PATH_OF_KIND = {KEY_VALUE_STORES: "key-value-stores", DATASETS: "datasets", REQUEST_QUEUES: "request-queues"}
RUN_FIELD: dict[str, Literal["default_key_value_store_id", "default_dataset_id", "default_request_queue_id"]] = {
    KEY_VALUE_STORES: "default_key_value_store_id",
    DATASETS: "default_dataset_id",
    REQUEST_QUEUES: "default_request_queue_id",
}
#: Record types a browser shows without running anything; every other type (text/html, image/svg+xml,
#: application/xml...) is sent as a download, besides the sandbox every API response has (base.py).
INERT_RECORD_TYPES = {"application/json", "text/plain", "text/csv", "image/png", "image/jpeg", "image/gif",
                      "image/webp", "application/octet-stream"}
ITEM_FORMATS = {"json": "application/json; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8",
                "csv": "text/csv; charset=utf-8", "xml": "application/xml; charset=utf-8",
                "rss": "application/rss+xml; charset=utf-8", "html": "text/html; charset=utf-8",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                # Beyond Apify's formats: columnar, for DataFrames (platform/storages/columnar.py).
                "arrow": "application/vnd.apache.arrow.stream", "parquet": "application/vnd.apache.parquet"}
#: Formats built whole into a temporary file before they are sent (binary: no BOM).
FILE_FORMATS = {"xlsx": write_xlsx, "arrow": write_arrow, "parquet": write_parquet}
#: Every option of GET .../items that works here; anything else is refused, never ignored.
ITEMS_OPTIONS = {"format", "offset", "limit", "desc", "fields", "omit", "clean", "skipEmpty", "skipHidden", "unwind",
                 "flatten", "delimiter", "bom", "skipHeaderRow", "xmlRoot", "xmlRow", "attachment", "signature", "view",
                 # The JavaScript apify-client's page size for iterating listItems(); it sends it along with the
                 # page's own limit, which already says how many items to return (Apify ignores it too).
                 "chunkSize"}
#: Options that shape one format only: given with another format they would do nothing, so they are refused.
ITEMS_FORMAT_OPTIONS = {"delimiter": ("csv",), "xmlRoot": ("xml",), "xmlRow": ("xml",),
                        "skipHeaderRow": ("csv", "html", "xlsx")}
#: Options of Apify's that are not supported here yet, with what to do instead.
ITEMS_UNSUPPORTED = {
    "simplified": "simplified is a legacy option that is not supported; use clean, unwind and flatten",
    "skipFailedPages": "skipFailedPages is a legacy option that is not supported; use clean",
}


class StorageAccess(RunAddressing):
    """Resolves the storage a request addresses and checks that the caller may use it."""

    #: A sub-resource's handler names its kind; the collection and storage routes pass it as a kwarg.
    kind: str
    #: Whether a signed public URL may read this route without a token (records, keys, items).
    signed_reads = False

    def initialize(self, run_ref: str | None = None, kind: str | None = None) -> None:
        super().initialize(run_ref)
        if kind is not None:
            self.kind = kind

    @property
    def storages(self):
        return self.platform.storages

    async def storage(self, ref: str) -> dict:
        """The storage's metadata by id, name or ``username~name`` (or a run's default, on run routes)."""
        return await self.call(self._resolve, ref)

    async def use(self, ref: str, operation: Callable[..., T], *args: Any) -> T:
        """``operation(storage_id, *args)`` on the resolved storage, in the same worker-thread trip as the
        lookup: records and items are the hot paths, and each hop to a thread costs about as much as
        the SQLite work itself."""

        def resolve_and_run() -> T:
            return operation(self._resolve(ref)["id"], *args)

        return await self.call(resolve_and_run)

    def _resolve(self, ref: str) -> dict:
        """Runs in a worker thread: blocking platform calls only, no tornado."""
        children = self.platform.child_run_ids(self.principal.run_id)
        if self.run_ref is not None:
            run = self.find_run(ref)
            require(self.principal.may_read_run(run, children), f"read run {run['id']}")
            ref = run[RUN_FIELD[self.kind]]
        meta = self._lookup(ref)
        require(self.principal.may_access_storage(meta, children), f"use {PATH_OF_KIND[self.kind]} {ref}")
        if self.request.method not in ("GET", "HEAD"):
            self.note_run_write(meta)
        return meta

    def note_run_write(self, meta: dict) -> None:
        """A run's token writes to a storage it did not create: it counts towards the run's disk limit from
        now on (``Storages.run_bytes``). Blocking."""
        run_id = self.principal.run_id
        if run_id is not None and meta.get("actRunId") != run_id:
            self.storages.note_run_write(run_id, self.kind, meta["id"])

    def _lookup(self, ref: str) -> dict:
        """The storage ``ref`` names (id, name or ``username~name``), whoever asks. Blocking."""
        username, _, name = ref.rpartition("~")
        if username and username != USERNAME:  # one user here: another user's storages do not exist
            raise NotFound(f"{PATH_OF_KIND[self.kind]} {ref!r} was not found; storages here belong to {USERNAME!r}.")
        try:
            return self.storages.get(self.kind, name)
        except NotFound:
            expired = self.platform.tombstone_message(name, LABELS[self.kind])
            if expired:  # deleted with its run (retention or on request): say so
                raise NotFound(expired, type="record-not-found") from None
            raise

    async def signed_principal(self) -> SignedPrincipal | None:
        """Apify's public URLs: a GET of a record, a store's keys or a dataset's items with a valid
        ``signature`` (made with the storage's ``urlSigningSecretKey``) needs no token; anything else
        signed is refused. Only on the storage's own routes, not a run's shortcuts to its storages."""
        signature = self.query("signature")
        if (signature is None or not self.signed_reads or self.request.method not in ("GET", "HEAD")
                or self.run_ref is not None):
            return None
        try:
            meta = await asyncio.to_thread(self._lookup, self.path_args[0])
        except NotFound:
            meta = None
        if meta is None or not self.signature_valid(meta, signature):
            raise Forbidden("The signature of this URL is not valid for this storage, or it has expired: make a "
                            "new public URL (Actor.get_public_url, create_items_public_url, create_keys_public_url) "
                            "or send a token.", type="invalid-signature")
        return SignedPrincipal(meta["id"])

    def signature_valid(self, meta: dict, signature: str) -> bool:
        """A store's keys or a dataset's items: the content signature of the storage's id."""
        return content_signature_valid(meta["urlSigningSecretKey"] or "", meta["id"], signature)

    def view(self, meta: dict) -> dict:
        return self.views.storage(PATH_OF_KIND[self.kind], meta)

    def lock_owner(self) -> dict:
        """Who takes or holds request locks: the ``clientKey`` and, for a run's token, the run."""
        return {"client_key": self.query("clientKey") or None, "run_id": self.principal.run_id}

    def required_lock_secs(self) -> float:
        lock_secs = self.query_float("lockSecs")
        if lock_secs is None:
            raise InvalidInput("lockSecs is required: how many seconds the lock lasts, for example lockSecs=60.")
        return lock_secs

    def require_owner(self, meta: dict, action: str) -> None:
        """Renaming or deleting is for the user and the run that created the storage, not every reader."""
        require(self.principal.run_id is None or meta.get("actRunId") == self.principal.run_id,
                f"{action} a storage it did not create")


class CollectionHandler(StorageAccess):
    """``GET /{collection}`` lists, ``POST /{collection}?name=`` gets or creates (201 new, 200 existing)."""

    async def get(self) -> None:
        offset, limit, desc = self.paging(default_limit=None)
        page = await self.call(
            self.storages.list_storages, self.kind, unnamed=self.query_bool("unnamed"),
            offset=offset, limit=limit, desc=desc,
        )
        if self.principal.run_id:
            children = await self.children()
            page["items"] = [m for m in page["items"] if self.principal.may_access_storage(m, children)]
            page["count"] = len(page["items"])
        if shared_only(self.query("ownership")):
            page.update(items=[], count=0, total=0)
        page["items"] = [self.view(meta) for meta in page["items"]]
        self.send_data(page)

    async def post(self) -> None:
        name = self.query("name") or None
        body = await self.json_object({"title": (str, type(None)), "schema": (dict, type(None))})
        run_id = self.principal.run_id
        actor_id = (await self.call(self.platform.get_run, run_id))["actor_id"] if run_id else None
        meta, created = await self.call(self.storages.get_or_create, self.kind, name, run_id=run_id,
                                        actor_id=actor_id, title=body.get("title"), schema=body.get("schema"))
        if not created:  # a run opening a named storage (to write to it, as the SDK does)
            await self.call(self.note_run_write, meta)
        self.send_data(self.view(meta), 201 if created else 200)


class StorageHandler(StorageAccess):
    async def get(self, ref: str) -> None:
        self.send_data(self.view(await self.storage(ref)))

    async def put(self, ref: str) -> None:
        meta = await self.storage(ref)
        body = await self.json_object({"name": (str, type(None)), "title": (str, type(None)),
                                       "generalAccess": (str, type(None))}, required=True)
        check_general_access(body.get("generalAccess"))
        if "name" in body or "title" in body:
            self.require_owner(meta, "rename")
            validate_title(body.get("title"))  # before anything changes: a bad title renames nothing
        if "name" in body:
            meta = await self.call(self.storages.rename, self.kind, meta["id"], body["name"])
        if "title" in body:
            meta = await self.call(self.storages.retitle, self.kind, meta["id"], body["title"])
        self.send_data(self.view(meta))

    async def delete(self, ref: str) -> None:
        meta = await self.storage(ref)
        self.require_owner(meta, "delete")
        await self.call(self.storages.delete, self.kind, meta["id"])
        self.set_status(204)
        self.finish()


# -- key-value stores --------------------------------------------------------------------------------


class KeysHandler(StorageAccess):
    kind = KEY_VALUE_STORES
    signed_reads = True

    async def get(self, ref: str) -> None:
        meta = await self.storage(ref)
        name = self.query("collection")
        listing = await self.call(
            self.storages.list_keys, meta["id"], exclusive_start_key=self.query("exclusiveStartKey"),
            limit=self.query_int("limit", 1000), prefix=self.query("prefix"),
            collection=store_collection(meta.get("schema"), name) if name is not None else None,
        )
        base = f"{self.views.console_url('key-value-stores', meta['id'])}/records/"
        secret = meta["urlSigningSecretKey"]
        for item in listing["items"]:  # signed, as Apify's: each opens in a browser without a token
            signed = f"?signature={record_signature(secret, item['key'])}" if secret else ""
            item["recordPublicUrl"] = base + quote(item["key"], safe="") + signed
        self.send_data(listing)


class RecordHandler(StorageAccess):
    kind = KEY_VALUE_STORES
    signed_reads = True
    large_bodies_for_runs = True  # stored as sent, never parsed: a run's record may be MAX_BODY_BYTES

    def signature_valid(self, meta: dict, signature: str) -> bool:
        """A record's signature covers its key (the path's second part, decoded)."""
        return record_signature_valid(meta["urlSigningSecretKey"] or "", self.path_args[1], signature)

    async def get(self, ref: str, key: str) -> None:
        value, content_type = await self.use(ref, self.storages.get_record, key)
        self.record_headers(key, content_type)
        self.finish(value)

    async def head(self, ref: str, key: str) -> None:
        value, content_type = await self.use(ref, self.storages.get_record, key)
        self.record_headers(key, content_type)
        self.set_header("Content-Length", str(len(value)))
        self.finish()

    def record_headers(self, key: str, content_type: str) -> None:
        """The stored type goes back unchanged (clients read it); a type a browser could run is a download."""
        self.set_header("Content-Type", content_type)
        if self.query_bool("attachment") or not is_inert(content_type):
            self.set_header("Content-Disposition", f'attachment; filename="{key}"')  # keys never hold quotes

    async def put(self, ref: str, key: str) -> None:
        content_type = self.content_type_header(self.request.headers.get("Content-Type"))
        await self.use(ref, self.storages.set_record, key, await self.raw_body(), content_type)
        self.set_status(201)
        self.finish()

    post = put

    async def delete(self, ref: str, key: str) -> None:
        meta = await self.storage(ref)
        if not await self.call(self.storages.delete_record, meta["id"], key):
            raise NotFound(f"Record {key!r} was not found.", type="record-not-found")
        self.set_status(204)
        self.finish()


# -- datasets ----------------------------------------------------------------------------------------


class ItemsHandler(StorageAccess):
    kind = DATASETS
    signed_reads = True

    async def get(self, ref: str) -> None:
        # Every option is checked before the first byte goes out: after that, an error cannot be reported.
        for option, why in ITEMS_UNSUPPORTED.items():
            if self.query(option) is not None:
                raise InvalidInput(f"Option {option}: {why}.")
        self.reject_unknown_query(self.query_options(ITEMS_OPTIONS))
        fmt = (self.query("format") or "json").lower()
        if fmt not in ITEM_FORMATS:
            raise InvalidInput(f"format {fmt!r} is not supported; use one of {', '.join(ITEM_FORMATS)}.")
        for option, formats in ITEMS_FORMAT_OPTIONS.items():
            if self.query(option) and fmt not in formats:
                raise InvalidInput(f"Option {option} applies to format {' or '.join(formats)} only, not {fmt}.")
        if fmt in FILE_FORMATS and self.query_bool("bom"):
            raise InvalidInput(f"bom does not apply to format {fmt} (a binary file).")
        if fmt in ("arrow", "parquet"):
            require_pyarrow()
        delimiter = self.query("delimiter", ",")
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise InvalidInput(f"delimiter must be one character other than a quote or a newline, not {delimiter!r}.")
        xml_root = check_xml_name("xmlRoot", self.query("xmlRoot") or "items")
        xml_row = check_xml_name("xmlRow", self.query("xmlRow") or "item")
        bom = self.query_bool("bom", default=fmt == "csv")  # as in Apify: on for CSV, off for the rest
        skip_header_row, attachment = self.query_bool("skipHeaderRow"), self.query_bool("attachment")
        self.query_int("chunkSize", minimum=1)  # shapes nothing here, but garbage is still refused
        meta = await self.storage(ref)
        # A view (the dataset schema's transformation) gives the item options the request does not give itself.
        view = dataset_view(meta.get("schema"), self.query("view") or "") if self.query("view") is not None else View()
        limit = self.query_int("limit")
        page = await self.call(
            self.storages.list_items, meta["id"], offset=self.query_int("offset", 0) or 0,
            limit=limit if limit is not None else view.limit,
            desc=self.query_bool("desc", default=bool(view.desc)),
            fields=self.query_list("fields") or view.fields, omit=self.query_list("omit") or view.omit,
            clean=self.query_bool("clean"), skip_empty=self.query_bool("skipEmpty"),
            skip_hidden=self.query_bool("skipHidden"),
            unwind=self.query_list("unwind") or view.unwind, flatten=self.query_list("flatten") or view.flatten,
        )
        title = meta.get("name") or meta["id"]
        if fmt == "xlsx":  # a zip: built whole (in constant memory, spooled to disk) before it is sent
            pieces = _file_pieces(await self.call(write_xlsx, page, skip_header_row=skip_header_row))
        elif fmt in FILE_FORMATS:  # a table: built whole (held in memory, spooled to disk) before it is sent
            pieces = _file_pieces(await self.call(FILE_FORMATS[fmt], page))
        elif fmt == "csv":
            pieces = page.iter_csv(delimiter=delimiter, bom=bom, skip_header_row=skip_header_row)
        elif fmt == "xml":
            pieces = iter_xml(page, root=xml_root, row=xml_row, bom=bom)
        elif fmt == "rss":
            pieces = iter_rss(page, title=title, bom=bom)
        elif fmt == "html":
            pieces = iter_html(page, title=title, bom=bom, skip_header_row=skip_header_row)
        else:
            pieces = _with_bom(page.iter_json_array() if fmt == "json" else page.iter_jsonl(), bom)
        self.set_header("X-Apify-Pagination-Total", str(page.total))
        self.set_header("X-Apify-Pagination-Offset", str(page.offset))
        self.set_header("X-Apify-Pagination-Count", str(page.count))
        self.set_header("X-Apify-Pagination-Limit", str(page.limit if page.limit is not None else UNLIMITED))
        self.set_header("X-Apify-Pagination-Desc", "true" if page.desc else "false")
        self.set_header("Content-Type", ITEM_FORMATS[fmt])
        if attachment:  # names are letters, digits and hyphens, ids alphanumeric: nothing to quote
            self.set_header("Content-Disposition", f'attachment; filename="dataset_{title}.{fmt}"')
        # Stream from a thread: a million items never sit in memory at once, nor block the loop.
        iterator = iter(pieces)
        while True:
            chunk = await self.call(_take, iterator, 1 << 20)
            if not chunk:
                break
            self.write(chunk)
            await self.flush()
        self.finish()

    async def post(self, ref: str) -> None:
        await self.use(ref, self.storages.push_items, await self.raw_body())
        self.set_status(201)
        self.finish()


class StatisticsHandler(StorageAccess):
    kind = DATASETS

    async def get(self, ref: str) -> None:
        def measure(dataset_id: str) -> dict:
            return field_statistics(self.storages.list_items(dataset_id))

        self.send_data(await self.use(ref, measure))


def is_inert(content_type: str) -> bool:
    """Whether a browser shows this type without running it. A comma makes browsers pick the last of
    several types, so such a value is never inert."""
    return "," not in content_type and content_type.partition(";")[0].strip().lower() in INERT_RECORD_TYPES


def _with_bom(pieces, bom: bool):
    if bom:
        yield b"\xef\xbb\xbf"
    yield from pieces


def _file_pieces(file, size: int = 1 << 20):
    """A file's bytes in pieces, closing (and so deleting) it at the end."""
    with file:
        while piece := file.read(size):
            yield piece


def _take(iterator, size: int) -> bytes:
    """Concatenate pieces from ``iterator`` until about ``size`` bytes (b"" at the end)."""
    parts, total = [], 0
    for piece in iterator:
        parts.append(piece)
        total += len(piece)
        if total >= size:
            break
    return b"".join(parts)
