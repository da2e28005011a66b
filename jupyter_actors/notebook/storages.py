"""Key-value stores and datasets as Python objects: a Mapping of decoded records, DataFrames of items.

Over 400 lines on purpose: the two storage types the notebook reads share their paging, decoding and
DataFrame code here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from .client import Client, resolve
from .errors import ActorsError, InvalidInputError, NotFoundError

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

    def _repr_html_(self) -> str:
        """Its first keys with sizes and content types (one listing request)."""
        from . import reprs

        try:
            meta = self._meta or self.client.get(f"/key-value-stores/{self.id}")
            page = self.client.get(f"/key-value-stores/{self.id}/keys", limit=reprs.PREVIEW_KEYS)
        except ActorsError as exc:
            return reprs.error_html(f"Key-value store {self.id}", exc)
        return reprs.store_html(meta, page["items"], bool(page.get("isTruncated")))

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
        """One row per record: key, size (bytes) and content type, from the key listing alone.

        The server's listing carries each record's ``contentType``, so a store of up to 1000 keys
        takes one request (one per 1000 keys beyond), never one per key.
        """
        import pandas

        rows = [{"key": item["key"], "size": int(item["size"]),
                 "contentType": item.get("contentType") or self.content_type(item["key"])}
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

    def _repr_html_(self) -> str:
        """Its item count and first items."""
        from . import reprs

        try:
            info = self.info
            items = self._items(limit=reprs.PREVIEW_ROWS)
        except ActorsError as exc:
            return reprs.error_html(f"Dataset {self.id}", exc)
        return reprs.dataset_html(info, items)

    @property
    def info(self) -> dict:
        return self.client.get(f"/datasets/{self.id}")

    def __len__(self) -> int:
        return int(self.info.get("itemCount", 0))

    def _items(self, *, offset: int = 0, limit: int | None = None, fields: Sequence[str] | None = None,
               desc: bool | None = None, **options: Any) -> list[dict]:
        """Items decoded with one orjson call over the server's JSON array (the fastest path measured)."""
        response = self.client.request("GET", f"/datasets/{self.id}/items", params={
            "format": "json", "offset": offset, **({"limit": limit} if limit is not None else {}),
            **_desc_param(desc), **item_params(fields=fields, **options),
        })
        return orjson.loads(response.content)

    def items(self, *, offset: int = 0, limit: int | None = None, fields: Sequence[str] | None = None,
              desc: bool | None = None, omit: Sequence[str] | None = None, clean: bool = False,
              unwind: Sequence[str] | str | None = None, flatten: Sequence[str] | str | None = None,
              view: str | None = None) -> list[dict]:
        """Items as a list of dicts; ``fields``/``omit``/``clean``/``unwind``/``flatten`` are the server's, and
        so is ``view`` (a view of the dataset's schema: its transformation, unless an option here replaces it)."""
        return self._items(offset=offset, limit=limit, fields=fields, desc=desc, omit=omit, clean=clean,
                           unwind=unwind, flatten=flatten, view=view)

    def iter_items(self, *, page_size: int = ITEMS_PAGE, fields: Sequence[str] | None = None,
                   **options: Any) -> Iterator[dict]:
        """Every item, fetched ``page_size`` at a time so a big dataset never sits in memory at once."""
        for page in self._pages(page_size, fields=fields, **options):
            yield from page

    def _pages(self, page_size: int, **options: Any) -> Iterator[list[dict]]:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ActorsError(f"The page size must be a whole number of at least 1, not {page_size!r}.")
        # Each page gives its own limit, which would replace a view's: the view's limit caps the pages here.
        left = self._view_spec(options["view"]).limit if options.get("view") is not None else None
        offset = 0
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = self._items(offset=offset, limit=size, **options)
            if page:
                yield page
            if len(page) < size:
                return
            offset += len(page)
            left = None if left is None else left - len(page)

    def _view_spec(self, view: str) -> ViewSpec:
        """A view of the dataset's schema as the notebook uses it (empty when the dataset has no such view:
        the server then refuses it by name, with the views there are)."""
        views = (self.info.get("schema") or {}).get("views") or {}
        return ViewSpec.of(views.get(view))

    def to_pandas(self, *, limit: int | None = None, offset: int = 0, fields: Sequence[str] | None = None,
                  flatten: bool | Sequence[str] = False, desc: bool | None = None, omit: Sequence[str] | None = None,
                  clean: bool = False, unwind: Sequence[str] | str | None = None, view: str | None = None,
                  display: bool = False, dtype_backend: str | None = None,
                  parse_dates: bool = True) -> pandas.DataFrame:
        """Items as a DataFrame.

        ``flatten=True`` turns nested objects into ``a.b`` columns here (json_normalize); a list of
        field names is passed to the server's ``flatten`` instead, like ``fields``, ``omit``, ``clean``,
        ``unwind`` and ``view`` (a view of the dataset's schema). ``display=True`` (with a view) lays the
        columns out as the view's ``display`` says: in its ``transformation.fields`` order, named by its
        ``display.properties`` labels. Columns of ISO-8601 timestamps become datetimes (``parse_dates=False``:
        not). ``dtype_backend`` is pandas' ("numpy_nullable" or "pyarrow", which needs pyarrow installed).
        With pyarrow installed the items come as Arrow (``format=arrow``: no JSON parsed here), else
        as JSON; the frame is the same either way.
        """
        _check_backend(dtype_backend)
        _check_display(view, display)
        local_flatten = flatten is True
        options: dict[str, Any] = {"offset": offset, "limit": limit, "fields": fields, "desc": desc, "omit": omit,
                                   "clean": clean, "unwind": unwind,
                                   "flatten": None if isinstance(flatten, bool) else flatten, "view": view}
        frame = None if local_flatten or not _have_pyarrow() else self._arrow_frame(**options)
        if frame is None:
            frame = records_frame(self._items(**options), flatten=local_flatten)
        frame = finish_frame(frame, fields=fields, flatten=local_flatten, dtype_backend=dtype_backend,
                             parse_dates=parse_dates)
        return self._view_spec(view).lay_out(frame) if display and view is not None else frame

    def _arrow_frame(self, *, offset: int = 0, limit: int | None = None, desc: bool | None = None,
                     **options: Any) -> pandas.DataFrame | None:
        """The items as sent in ``format=arrow``; None when the server cannot send it (no pyarrow there)."""
        try:
            response = self.client.request("GET", f"/datasets/{self.id}/items", params={
                "format": "arrow", "offset": offset, **({"limit": limit} if limit is not None else {}),
                **_desc_param(desc), **item_params(**options),
            })
        except InvalidInputError as exc:
            if exc.type == "arrow-not-installed" or "'arrow' is not supported" in str(exc):
                return None
            raise
        return arrow_frame(response.content)

    def iter_pandas(self, chunksize: int = ITEMS_PAGE, *, fields: Sequence[str] | None = None,
                    flatten: bool | Sequence[str] = False, desc: bool | None = None, omit: Sequence[str] | None = None,
                    clean: bool = False, unwind: Sequence[str] | str | None = None, view: str | None = None,
                    display: bool = False, dtype_backend: str | None = None,
                    parse_dates: bool = True) -> Iterator[pandas.DataFrame]:
        """The items as DataFrames of ``chunksize`` rows, one request each: a dataset bigger than memory.

        Each chunk infers its own dtypes (as ``read_csv``'s chunks do); the index runs on across chunks.
        ``view`` and ``display`` are as in ``to_pandas`` (a view's ``limit`` caps the rows of all chunks).
        """
        _check_backend(dtype_backend)
        _check_display(view, display)
        pages = self._pages(chunksize, fields=fields, desc=desc, omit=omit, clean=clean, unwind=unwind,
                            flatten=None if isinstance(flatten, bool) else flatten, view=view)
        spec = None
        for start, page in _numbered(pages):
            frame = frame_of(page, fields=fields, flatten=flatten is True, dtype_backend=dtype_backend,
                             parse_dates=parse_dates)
            if display and view is not None:
                spec = spec or self._view_spec(view)
                frame = spec.lay_out(frame)
            frame.index = range(start, start + len(frame))
            yield frame


@dataclass(frozen=True)
class ViewSpec:
    """What the notebook takes from a view of a dataset schema: its ``transformation``'s ``fields`` (the column
    order) and ``limit``, and its ``display.properties`` labels (the column names). A field's ``format``
    there is a hint for Apify Console's table and is not applied to the frame."""

    fields: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = None

    @classmethod
    def of(cls, view: object) -> ViewSpec:
        if not isinstance(view, dict):
            return cls()
        transformation, display = _object(view.get("transformation")), _object(view.get("display"))
        names = transformation.get("fields")
        if isinstance(names, str):  # Apify's lists may be one comma-separated string
            names = [name.strip() for name in names.split(",")]
        labels = {name: spec["label"] for name, spec in _object(display.get("properties")).items()
                  if isinstance(spec, dict) and isinstance(spec.get("label"), str) and spec["label"]}
        limit = transformation.get("limit")
        return cls(fields=tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else (),
                   labels=labels, limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None)

    def lay_out(self, frame: pandas.DataFrame) -> pandas.DataFrame:
        """The view's fields first, in its order (a flattened field's ``field.sub`` columns where the field is),
        then any other column (one unwound from a field, say); then each column renamed to its field's label
        (``label.sub`` for a flattened field's columns). Only the columns there are: nothing is added."""
        columns = list(frame.columns)
        order = [c for name in self.fields for c in columns if c == name or str(c).startswith(f"{name}.")]
        order = list(dict.fromkeys(order + columns))
        return frame[order].rename(columns={c: self._label(str(c)) for c in order})

    def _label(self, column: str) -> str:
        if column in self.labels:
            return self.labels[column]
        head, dot, rest = column.partition(".")
        return f"{self.labels[head]}.{rest}" if dot and head in self.labels else column


def _object(value: object) -> dict:
    """A part of a view that should be an object (the server checks transformations, not display)."""
    return value if isinstance(value, dict) else {}


def _check_display(view: str | None, display: bool) -> None:
    if display and view is None:
        raise ActorsError("display=True lays the columns out as a view's display says: name the view too, "
                          "for example view='overview'.")


def _numbered(pages: Iterator[list[dict]]) -> Iterator[tuple[int, list[dict]]]:
    """Each page with the position of its first item, so chunks concatenate to one RangeIndex."""
    start = 0
    for page in pages:
        yield start, page
        start += len(page)


def _desc_param(desc: bool | None) -> dict[str, str]:
    """``desc`` when given; left out (None) the server's default holds: oldest first, or a view's ``desc``."""
    return {} if desc is None else {"desc": "true" if desc else "false"}


def item_params(*, fields: Sequence[str] | str | None = None, omit: Sequence[str] | str | None = None,
                clean: bool = False, unwind: Sequence[str] | str | None = None,
                flatten: Sequence[str] | str | None = None, view: str | None = None) -> dict[str, str]:
    """The server's item-shaping query parameters (Apify's names; lists as comma-separated)."""
    params = {name: value if isinstance(value, str) else ",".join(value)
              for name, value in (("fields", fields), ("omit", omit), ("unwind", unwind), ("flatten", flatten))
              if value}
    if clean:
        params["clean"] = "true"
    if view is not None:  # "" too: the server says which views there are
        params["view"] = view
    return params


DTYPE_BACKENDS = ("numpy_nullable", "pyarrow")
# A timestamp, not a bare date: 2024-05-01T12:00:00Z, 2024-05-01 12:00:00.123+02:00, ...
ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def _check_backend(dtype_backend: str | None) -> None:
    if dtype_backend is None:
        return
    if dtype_backend not in DTYPE_BACKENDS:
        raise ActorsError(f"dtype_backend must be one of {', '.join(DTYPE_BACKENDS)} (or None), "
                          f"not {dtype_backend!r}.")
    if dtype_backend == "pyarrow":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ActorsError('dtype_backend="pyarrow" needs pyarrow: pip install pyarrow') from None


def frame_of(items: list[dict], *, fields: Sequence[str] | None = None, flatten: bool = False,
             dtype_backend: str | None = None, parse_dates: bool = True) -> pandas.DataFrame:
    """A DataFrame of decoded items: flattened, reindexed to ``fields``, timestamps parsed, dtypes as asked."""
    return finish_frame(records_frame(items, flatten=flatten), fields=fields, flatten=flatten,
                        dtype_backend=dtype_backend, parse_dates=parse_dates)


def records_frame(items: list[dict], *, flatten: bool = False) -> pandas.DataFrame:
    """One row per item, columns in first-seen key order; items without fields still count as rows
    (``from_records`` alone would return no rows for them)."""
    import pandas

    if not items:
        return pandas.DataFrame()
    frame = pandas.json_normalize(items) if flatten else pandas.DataFrame.from_records(items)
    return frame if len(frame) == len(items) else _rows_only(len(items))


def _rows_only(count: int) -> pandas.DataFrame:
    """``count`` rows without columns (items that have no fields)."""
    import pandas

    return pandas.DataFrame(index=pandas.RangeIndex(count), columns=pandas.Index([], dtype=object))


#: Field metadata of a ``format=arrow`` column holding each value's JSON text (nested, mixed, gaps).
JSON_ENCODING = (b"jupyter-actors.encoding", b"json")


def arrow_frame(stream: bytes) -> pandas.DataFrame:
    """A ``format=arrow`` body as the frame ``records_frame`` makes of the same items: typed columns as
    they are, JSON-text columns decoded (an Arrow null there is a missing field: NaN, as records give)."""
    import pandas
    import pyarrow

    table = pyarrow.ipc.open_stream(stream).read_all()
    if not table.num_columns:
        return _rows_only(table.num_rows) if table.num_rows else pandas.DataFrame()
    encoded = [field.name for field in table.schema
               if (field.metadata or {}).get(JSON_ENCODING[0]) == JSON_ENCODING[1]]
    frame = table.drop_columns(encoded).to_pandas() if encoded else table.to_pandas()
    # Decoded, then typed by from_records as records' columns are (an all-null column is float NaN,
    # booleans with a gap stay objects...): each column's type depends on its values alone.
    loads, missing = orjson.loads, float("nan")
    decoded = [[missing if text is None else loads(text) for text in table.column(name).to_pylist()]
               for name in encoded]
    values = pandas.DataFrame.from_records(list(zip(*decoded, strict=True)), columns=encoded)
    for name in encoded:
        frame.insert(table.column_names.index(name), name, values[name])
    return frame


def finish_frame(frame: pandas.DataFrame, *, fields: Sequence[str] | None = None, flatten: bool = False,
                 dtype_backend: str | None = None, parse_dates: bool = True) -> pandas.DataFrame:
    """Reindexed to ``fields``, timestamps parsed, dtypes as asked: the same for JSON and Arrow frames."""
    import pandas

    if fields and not flatten:  # the asked-for columns in the asked-for order, even when absent
        frame = frame.reindex(columns=list(fields))
    if parse_dates:
        for column in frame.columns:
            if _all_timestamps(frame[column]):
                frame[column] = _to_datetime(frame[column])
    if dtype_backend is not None:
        frame = frame.convert_dtypes(dtype_backend=dtype_backend)
    if dtype_backend == "pyarrow":
        for column in [c for c in frame.columns if pandas.api.types.is_object_dtype(frame[c])]:
            frame[column] = _to_arrow(frame[column])
    return frame


def _have_pyarrow() -> bool:
    """Whether this kernel can read ``format=arrow`` (pyarrow is optional here)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _to_arrow(series: pandas.Series) -> pandas.Series:
    """Nested values (objects, lists) as Arrow structs/lists when they share a shape; else left as they are."""
    import pandas
    import pyarrow

    try:
        array = pyarrow.array(series.tolist(), from_pandas=True)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, pyarrow.ArrowNotImplementedError):
        return series
    return pandas.Series(array, index=series.index, dtype=pandas.ArrowDtype(array.type), name=series.name)


def _all_timestamps(series: pandas.Series) -> bool:
    """A text column whose every non-null value is an ISO-8601 timestamp (and which has one)."""
    if series.dtype != object and str(series.dtype) not in ("str", "string"):
        return False
    values = series.dropna()
    return len(values) > 0 and all(isinstance(v, str) and ISO_TIMESTAMP.fullmatch(v) for v in values)


def _to_datetime(series: pandas.Series) -> pandas.Series:
    """UTC datetimes when any value carries a zone (mixed offsets agree in UTC), naive ones otherwise."""
    import pandas

    zoned = any(ISO_TIMESTAMP.fullmatch(v).group(3) for v in series.dropna())  # type: ignore[union-attr]
    return pandas.to_datetime(series, format="ISO8601", utc=zoned)


def key_value_store(name_or_id: str, *, client: Client | None = None) -> KeyValueStore:
    """A key-value store by id or name (``example-counter``)."""
    return KeyValueStore.open(name_or_id, client=client)


def dataset(name_or_id: str, *, client: Client | None = None) -> Dataset:
    """A dataset by id or name."""
    return Dataset.open(name_or_id, client=client)
