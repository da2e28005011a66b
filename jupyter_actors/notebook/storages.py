"""Key-value stores and datasets as Python objects: a Mapping of decoded records, DataFrames of items."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from .client import Client, resolve
from .errors import NotFoundError

if TYPE_CHECKING:
    import pandas

KEYS_PAGE = 1000
ITEMS_PAGE = 10_000


def decode_record(body: bytes, content_type: str) -> Any:
    """JSON -> Python objects, text -> str, anything else -> bytes (what a notebook wants to look at)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", errors="replace")
    if media.startswith("text/") or media in ("application/xml", "application/javascript"):
        return body.decode(_charset(content_type), errors="replace")
    return body


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _open(client: Client, collection: str, ref: str, what: str) -> dict:
    try:
        return client.get(f"/{collection}/{quote(ref, safe='~')}")
    except NotFoundError:
        raise NotFoundError(f"{what} {ref!r} was not found (give its id or name).", status=404,
                            type="record-not-found") from None


class KeyValueStore(Mapping[str, Any]):
    """A key-value store as a read-only Mapping: ``store["OUTPUT"]`` is the decoded record."""

    def __init__(self, store_id: str, *, client: Client | None = None, meta: dict | None = None) -> None:
        self.id = store_id
        self.client = resolve(client)
        self._meta = meta

    @classmethod
    def open(cls, name_or_id: str, *, client: Client | None = None) -> KeyValueStore:
        client = resolve(client)
        meta = _open(client, "key-value-stores", name_or_id, "Key-value store")
        return cls(meta["id"], client=client, meta=meta)

    @property
    def name(self) -> str | None:
        if self._meta is None:
            self._meta = self.client.get(f"/key-value-stores/{self.id}")
        return self._meta.get("name")

    def __repr__(self) -> str:
        return f"<KeyValueStore {self.id}>"

    def _path(self, key: str) -> str:
        return f"/key-value-stores/{self.id}/records/{quote(key, safe='')}"

    def record(self, key: str) -> tuple[bytes, str]:
        """The raw bytes and content type of a record (KeyError when it does not exist)."""
        try:
            response = self.client.request("GET", self._path(key))
        except NotFoundError:
            raise KeyError(key) from None
        return response.content, response.headers.get("Content-Type", "application/octet-stream")

    def __getitem__(self, key: str) -> Any:
        return decode_record(*self.record(key))

    def iter_key_info(self) -> Iterator[dict]:
        """``{"key", "size"}`` of every record, following the server's pages."""
        start: str | None = None
        while True:
            page = self.client.get(f"/key-value-stores/{self.id}/keys", exclusiveStartKey=start, limit=KEYS_PAGE)
            yield from page["items"]
            if not page.get("isTruncated") or not page["items"]:
                return
            start = page["nextExclusiveStartKey"]

    def __iter__(self) -> Iterator[str]:
        return (item["key"] for item in self.iter_key_info())

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_key_info())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self.client.request("HEAD", self._path(key))
        except NotFoundError:
            return False
        return True

    def content_type(self, key: str) -> str:
        try:
            response = self.client.request("HEAD", self._path(key))
        except NotFoundError:
            raise KeyError(key) from None
        return response.headers.get("Content-Type", "application/octet-stream")

    def to_pandas(self) -> pandas.DataFrame:
        """One row per record: key, size (bytes) and content type."""
        import pandas

        rows = [{"key": item["key"], "size": int(item["size"]), "contentType": self.content_type(item["key"])}
                for item in self.iter_key_info()]
        frame = pandas.DataFrame(rows, columns=["key", "size", "contentType"])
        return frame.astype({"key": "string", "size": "int64", "contentType": "string"})


class Dataset:
    """A dataset's items: ``len()``, ``iter_items()`` page by page, ``to_pandas()`` in one request."""

    def __init__(self, dataset_id: str, *, client: Client | None = None) -> None:
        self.id = dataset_id
        self.client = resolve(client)

    @classmethod
    def open(cls, name_or_id: str, *, client: Client | None = None) -> Dataset:
        client = resolve(client)
        meta = _open(client, "datasets", name_or_id, "Dataset")
        return cls(meta["id"], client=client)

    def __repr__(self) -> str:
        return f"<Dataset {self.id}>"

    @property
    def info(self) -> dict:
        return self.client.get(f"/datasets/{self.id}")

    def __len__(self) -> int:
        return int(self.info.get("itemCount", 0))

    def _items(self, *, offset: int = 0, limit: int | None = None, fields: Sequence[str] | None = None,
               desc: bool = False) -> list[dict]:
        """Items decoded with one orjson call over the server's JSON array (the fastest path measured)."""
        response = self.client.request("GET", f"/datasets/{self.id}/items", params={
            "format": "json", "offset": offset, **({"limit": limit} if limit is not None else {}),
            **({"fields": ",".join(fields)} if fields else {}), **({"desc": "true"} if desc else {}),
        })
        return orjson.loads(response.content)

    def items(self, *, offset: int = 0, limit: int | None = None, fields: Sequence[str] | None = None,
              desc: bool = False) -> list[dict]:
        """Items as a list of dicts."""
        return self._items(offset=offset, limit=limit, fields=fields, desc=desc)

    def iter_items(self, *, page_size: int = ITEMS_PAGE, fields: Sequence[str] | None = None) -> Iterator[dict]:
        """Every item, fetched ``page_size`` at a time so a big dataset never sits in memory at once."""
        offset = 0
        while True:
            page = self._items(offset=offset, limit=page_size, fields=fields)
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def to_pandas(self, *, limit: int | None = None, offset: int = 0, fields: Sequence[str] | None = None,
                  flatten: bool = False, desc: bool = False) -> pandas.DataFrame:
        """Items as a DataFrame; ``flatten`` turns nested objects into ``a.b`` columns (json_normalize)."""
        import pandas

        items = self._items(offset=offset, limit=limit, fields=fields, desc=desc)
        if flatten:
            frame = pandas.json_normalize(items)
        else:
            frame = pandas.DataFrame.from_records(items) if items else pandas.DataFrame()
        if fields and not flatten:  # the asked-for columns in the asked-for order, even when absent
            frame = frame.reindex(columns=list(fields))
        return frame


def key_value_store(name_or_id: str, *, client: Client | None = None) -> KeyValueStore:
    """A key-value store by id or name (``example-counter``)."""
    return KeyValueStore.open(name_or_id, client=client)


def dataset(name_or_id: str, *, client: Client | None = None) -> Dataset:
    """A dataset by id or name."""
    return Dataset.open(name_or_id, client=client)
