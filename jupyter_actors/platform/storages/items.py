"""Reading dataset items out: item options and the JSON, JSONL and CSV encodings, all streamable.

A page is a stream of *segments*: compact JSON items joined by ``\\n``. Without item options the
segments are the stored bytes, so JSON and JSONL come out without parsing any item; only ``fields``,
``omit``, ``unwind``, ``flatten`` and ``skipHidden``/``clean`` parse (and re-encode) the items.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

EMPTY_ITEM = b"{}"


#: A CSV cell starting with one of these is a formula to spreadsheet programs (CSV injection): it gets
#: a leading ``'``, which they show as text. Tab and carriage return are on OWASP's list too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ItemFilter:
    """Apify's item options, applied in this order: ``fields`` and ``omit`` (on the stored item), then
    ``unwind`` (each field in turn), ``flatten``, ``skip_hidden``, and last ``skip_empty``, so an item
    holding only hidden fields counts as empty. ``clean`` is ``skip_hidden`` plus ``skip_empty``.

    ``unwind``: an array field gives one item per element (an object element is merged into the
    item, any other element replaces the field; an empty array gives no item), an object field is
    merged into the item, and an item without the field, or with another value there, stays as it is.
    ``flatten``: those object fields become ``field.sub.key`` fields (nested objects all the way down;
    arrays stay values).
    """

    fields: tuple[str, ...] | None = None
    omit: frozenset[str] = frozenset()
    unwind: tuple[str, ...] = ()
    flatten: tuple[str, ...] = ()
    skip_hidden: bool = False
    skip_empty: bool = False

    @classmethod
    def build(
        cls,
        *,
        fields: Sequence[str] | None = None,
        omit: Sequence[str] | None = None,
        clean: bool = False,
        skip_hidden: bool = False,
        skip_empty: bool = False,
        unwind: Sequence[str] | None = None,
        flatten: Sequence[str] | None = None,
    ) -> ItemFilter:
        return cls(
            fields=tuple(fields) if fields else None,
            omit=frozenset(omit or ()),
            unwind=tuple(unwind or ()),
            flatten=tuple(flatten or ()),
            skip_hidden=clean or skip_hidden,
            skip_empty=clean or skip_empty,
        )

    @property
    def reshapes(self) -> bool:
        """True when items must be parsed; False means stored bytes can be served as they are."""
        return self.fields is not None or bool(self.omit or self.unwind or self.flatten) or self.skip_hidden

    def apply(self, segment: bytes) -> bytes:
        """The segment with every item filtered; empty bytes when nothing is left."""
        items: Iterator[bytes]
        if self.reshapes:
            loads, dumps = orjson.loads, orjson.dumps
            items = (dumps(item) for part in segment.split(b"\n") for item in self.reshape(loads(part)))
        elif self.skip_empty:
            if EMPTY_ITEM not in segment:
                return segment
            items = iter(segment.split(b"\n"))
        else:
            return segment
        if self.skip_empty:
            items = (item for item in items if item != EMPTY_ITEM)
        return b"\n".join(items)

    def reshape(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The items one stored item becomes (several with ``unwind``, none for an empty unwound array)."""
        if self.fields is not None:
            item = {name: item[name] for name in self.fields if name in item}
        if self.omit:
            item = {key: value for key, value in item.items() if key not in self.omit}
        items = [item]
        for field in self.unwind:
            items = [unwound for one in items for unwound in _unwind(one, field)]
        if self.flatten:
            items = [_flatten(one, self.flatten) for one in items]
        if self.skip_hidden:
            items = [{key: value for key, value in one.items() if not key.startswith("#")} for one in items]
        return items


def _unwind(item: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = item.get(field)
    rest = {key: kept for key, kept in item.items() if key != field}
    if isinstance(value, dict):
        return [{**rest, **value}]
    if isinstance(value, list):
        return [{**rest, **element} if isinstance(element, dict) else {**item, field: element} for element in value]
    return [item]


def _flatten(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        if key in fields and isinstance(value, dict):
            _flatten_into(flat, key, value)
        else:
            flat[key] = value
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, value: dict[str, Any]) -> None:
    for key, inner in value.items():
        if isinstance(inner, dict) and inner:
            _flatten_into(flat, f"{prefix}.{key}", inner)
        else:
            flat[f"{prefix}.{key}"] = inner


class ItemsPage:
    """One read of a dataset: the pagination numbers plus a re-iterable stream of the items.

    ``count`` is the number of stored rows the read covered (``X-Apify-Pagination-Count``; filters may
    return fewer items). ``limit`` is None when the caller gave none. Iterating reads from disk in
    bounded batches, so an HTTP handler can stream even a huge dataset with ``iter_jsonl()`` etc.
    """

    def __init__(
        self,
        *,
        total: int,
        offset: int,
        limit: int | None,
        desc: bool,
        count: int,
        source: Callable[[], Iterable[bytes]],
        item_filter: ItemFilter,
    ) -> None:
        self.total, self.offset, self.limit, self.desc, self.count = total, offset, limit, desc, count
        self._source = source
        self._filter = item_filter

    def segments(self) -> Iterator[bytes]:
        """Non-empty runs of compact JSON items joined by ``\\n`` (no trailing newline)."""
        for segment in self._source():
            segment = self._filter.apply(segment)
            if segment:
                yield segment

    def iter_raw_items(self) -> Iterator[bytes]:
        """Each item's compact JSON bytes."""
        for segment in self.segments():
            yield from segment.split(b"\n")

    def items(self) -> list[dict[str, Any]]:
        return [orjson.loads(item) for item in self.iter_raw_items()]

    # -- encodings ---------------------------------------------------------------------------------

    def iter_json_array(self) -> Iterator[bytes]:
        """A JSON array in pieces; compact JSON has no raw newlines, so ``\\n`` -> ``,`` is exact."""
        yield b"["
        separator = b""
        for segment in self.segments():
            yield separator + segment.replace(b"\n", b",")
            separator = b","
        yield b"]"

    def iter_jsonl(self) -> Iterator[bytes]:
        for segment in self.segments():
            yield segment + b"\n"

    def iter_csv(self, *, delimiter: str = ",", bom: bool = False, skip_header_row: bool = False) -> Iterator[bytes]:
        """CSV in pieces. Columns are ``fields`` if given, else every key in first-seen order, which
        takes a first pass over the items; nested values are written as JSON."""
        columns = self.columns()
        if bom:
            yield b"\xef\xbb\xbf"
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        if not skip_header_row:
            writer.writerow([_inert_cell(column) for column in columns])
        for segment in self.segments():
            for part in segment.split(b"\n"):
                item = orjson.loads(part)
                writer.writerow([_csv_cell(item.get(column)) for column in columns])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue().encode()

    def json_array(self) -> bytes:
        return b"".join(self.iter_json_array())

    def jsonl(self) -> bytes:
        return b"".join(self.iter_jsonl())

    def csv(self, **options: Any) -> bytes:
        return b"".join(self.iter_csv(**options))

    def columns(self) -> list[str]:
        """Table columns: ``fields`` if given, else every key in first-seen order (a first pass)."""
        return list(self._filter.fields) if self._filter.fields is not None and not (
            self._filter.unwind or self._filter.flatten) else self._columns()

    def _columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for part in self.iter_raw_items():
            for key in orjson.loads(part):
                if key not in seen:
                    seen[key] = None
        return list(seen)


def _csv_cell(value: Any) -> str:
    """Missing and null are empty cells, strings are as is (made inert, see FORMULA_STARTS), anything
    else (numbers, booleans, nested objects and arrays) is its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _inert_cell(value)
    return orjson.dumps(value).decode()


def _inert_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (see FORMULA_STARTS)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
