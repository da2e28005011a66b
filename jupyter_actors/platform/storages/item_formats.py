"""Dataset exports beyond JSON/JSONL/CSV (``items.py``): XML, RSS, an HTML table and XLSX, as Apify's
``format=`` offers them. Each streams from an ``ItemsPage``; every value is escaped, so what an actor
pushed never becomes markup or a formula."""

from __future__ import annotations

import html
import re
import tempfile
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import orjson
import xlsxwriter

from ..errors import InvalidInput
from .items import ItemsPage

#: What an XML element name may be here (ASCII subset of the XML Name rule, no ``xml`` prefix games).
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
#: Excel's limits: longer strings are cut by Excel itself, more rows cannot be opened.
XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_COLUMNS = 16_384


def check_xml_name(option: str, value: str) -> str:
    """``xmlRoot``/``xmlRow``: a plain XML element name, or a 400 saying so."""
    if not _XML_NAME.fullmatch(value) or value.lower().startswith("xml"):
        raise InvalidInput(f"{option} must be an XML element name (letters, digits, _ . -, not starting "
                           f"with a digit or 'xml'), not {value!r}.")
    return value


def element_name(key: str) -> str:
    """A field name as an XML element name: other characters become ``_`` (``#debug`` -> ``_debug``)."""
    name = _NOT_NAME_CHAR.sub("_", key) or "_"
    return name if _XML_NAME.fullmatch(name) and not name.lower().startswith("xml") else "_" + name


def _xml_value(name: str, value: Any) -> str:
    """One field as elements: an array repeats the element, an object nests, null is empty."""
    if isinstance(value, list):
        return "".join(_xml_value(name, element) for element in value)
    if isinstance(value, dict):
        inner = "".join(_xml_value(element_name(key), inner) for key, inner in value.items())
        return f"<{name}>{inner}</{name}>"
    if value is None:
        return f"<{name}/>"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f"<{name}>{escape(text)}</{name}>"


def _xml_rows(page: ItemsPage, row: str) -> Iterator[bytes]:
    for part in page.iter_raw_items():
        item = orjson.loads(part)
        yield (f"<{row}>" + "".join(_xml_value(element_name(k), v) for k, v in item.items()) + f"</{row}>\n").encode()


def iter_xml(page: ItemsPage, *, root: str = "items", row: str = "item", bom: bool = False) -> Iterator[bytes]:
    yield (b"\xef\xbb\xbf" if bom else b"") + f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n'.encode()
    yield from _xml_rows(page, row)
    yield f"</{root}>\n".encode()


def iter_rss(page: ItemsPage, *, title: str, bom: bool = False) -> Iterator[bytes]:
    """RSS 2.0: one ``<item>`` per dataset item, its fields as child elements."""
    head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<description>Items of dataset {escape(title)}</description>\n")
    yield (b"\xef\xbb\xbf" if bom else b"") + head.encode()
    yield from _xml_rows(page, "item")
    yield b"</channel></rss>\n"


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def iter_html(page: ItemsPage, *, title: str, bom: bool = False, skip_header_row: bool = False) -> Iterator[bytes]:
    """A table with the same columns as the CSV export; nested values as JSON text."""
    columns = page.columns()
    head = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            "<body><table>\n")
    if not skip_header_row:
        head += "<tr>" + "".join(f"<th>{html.escape(column)}</th>" for column in columns) + "</tr>\n"
    yield (b"\xef\xbb\xbf" if bom else b"") + head.encode()
    for part in page.iter_raw_items():
        item = orjson.loads(part)
        yield ("<tr>" + "".join(f"<td>{html.escape(_cell_text(item.get(c)))}</td>" for c in columns)
               + "</tr>\n").encode()
    yield b"</table></body></html>\n"


def write_xlsx(page: ItemsPage, *, skip_header_row: bool = False) -> tempfile.SpooledTemporaryFile[bytes]:
    """The page as one worksheet, written row by row in constant memory into a temporary file (read it
    from the start). Strings are written as strings, never as formulas; nested values as JSON text."""
    columns = page.columns()
    if len(columns) > XLSX_MAX_COLUMNS:
        raise InvalidInput(f"An XLSX sheet holds at most {XLSX_MAX_COLUMNS} columns and these items have "
                           f"{len(columns)} fields; choose some with fields, or use format=csv.")
    # Handed to the caller, who closes it after sending it.
    output = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115
    with tempfile.TemporaryDirectory() as scratch:
        workbook = xlsxwriter.Workbook(output, {"constant_memory": True, "tmpdir": scratch,
                                                "strings_to_formulas": False, "strings_to_urls": False,
                                                "strings_to_numbers": False})
        sheet = workbook.add_worksheet("Items")
        row = 0
        if not skip_header_row:
            for col, column in enumerate(columns):
                sheet.write_string(row, col, column)
            row += 1
        for part in page.iter_raw_items():
            if row >= XLSX_MAX_ROWS:
                output.close()
                raise InvalidInput(f"An XLSX sheet holds at most {XLSX_MAX_ROWS} rows; ask for fewer items "
                                   "with limit and offset, or use format=csv.")
            item = orjson.loads(part)
            for col, column in enumerate(columns):
                value = item.get(column)
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet.write_boolean(row, col, value)
                elif isinstance(value, (int, float)) and abs(value) < 1e15:
                    sheet.write_number(row, col, value)
                else:
                    sheet.write_string(row, col, _cell_text(value))
            row += 1
        workbook.close()
    output.seek(0)
    return output
