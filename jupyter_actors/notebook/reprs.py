"""Rich HTML reprs of ``Run``, ``Dataset`` and ``KeyValueStore`` (what a cell ending in one shows).

Every value in them is set by an actor (names, messages, keys, items), so each goes through
``html.escape``; links are only ever the server's own ``http(s)`` URLs. Colours are JupyterLab's
CSS variables with light-theme fallbacks, so the reprs stay readable in a dark theme.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

PREVIEW_ROWS = 5
PREVIEW_KEYS = 20
CELL_CHARS = 80
STATUS_COLOURS = {
    "READY": "#757575", "RUNNING": "#1565c0", "SUCCEEDED": "#2e7d32", "FAILED": "#c62828",
    "TIMED-OUT": "#ef6c00", "TIMING-OUT": "#ef6c00", "ABORTING": "#6d4c41", "ABORTED": "#6d4c41",
}
BOX = ("font-family:var(--jp-ui-font-family,sans-serif);font-size:var(--jp-ui-font-size1,13px);"
       "color:var(--jp-ui-font-color1,inherit);border:1px solid var(--jp-border-color2,#e0e0e0);"
       "border-radius:4px;padding:6px 8px;display:inline-block;max-width:100%;overflow-x:auto")
DIM = "color:var(--jp-ui-font-color2,#757575)"


def esc(value: Any) -> str:
    """Text for HTML (quotes too: values also go into attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def cell(value: Any) -> str:
    """One value of an item, shortened: nested values as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return esc(text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…")


def link(url: Any, label: Any) -> str:
    """A link to one of the server's URLs; anything not http(s) (``javascript:``...) is shown as text."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'
    return esc(label)


def badge(status: Any) -> str:
    colour = STATUS_COLOURS.get(str(status), "#757575")
    return (f'<span style="background:{colour};color:#fff;border-radius:3px;padding:0 5px;'
            f'font-weight:bold">{esc(status)}</span>')


def table(columns: Sequence[str] | None, rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table (no header row without ``columns``); ``raw`` cells are HTML made here, others are escaped."""
    head = "".join(f'<th style="text-align:left;padding:1px 6px">{esc(c)}</th>' for c in columns or ())
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left;padding:1px 6px">{v if raw else cell(v)}</td>' for v in row)
        + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if columns else ""
    return f'<table style="border-collapse:collapse">{thead}<tbody>{body}</tbody></table>'


def box(title: str, body: str) -> str:
    return f'<div class="jupyter-actors-repr" style="{BOX}"><div><b>{title}</b></div>{body}</div>'


def run_html(data: dict) -> str:
    """A run: status, times, resources, its storages and web server."""
    options = data.get("options") or {}
    stats = data.get("stats") or {}
    rows = [
        ("Started", esc(data.get("startedAt"))), ("Finished", esc(data.get("finishedAt") or "-")),
        ("Duration", esc(f"{stats['durationMillis'] / 1000:.1f} s" if stats.get("durationMillis") else "-")),
        ("Memory", esc(f"{options.get('memoryMbytes')} MB")),
        ("Timeout", esc(f"{options['timeoutSecs']} s" if options.get("timeoutSecs") else "none")),
        ("Build", esc(data.get("buildNumber") or "-")), ("Exit code", esc(data.get("exitCode"))),
        ("Dataset", f"<code>{esc(data.get('defaultDatasetId'))}</code>"),
        ("Key-value store", f"<code>{esc(data.get('defaultKeyValueStoreId'))}</code>"),
    ]
    if data.get("containerUrl"):
        rows.append(("Web server", link(data["containerUrl"], data["containerUrl"])))
    message = f'<div style="{DIM}">{esc(data.get("statusMessage"))}</div>' if data.get("statusMessage") else ""
    body = message + table(None, rows, raw=True)
    return box(f"Run <code>{esc(data.get('id'))}</code> {badge(data.get('status'))}", body)


def dataset_html(info: dict, items: list[dict]) -> str:
    """A dataset: its size and its first items."""
    count = int(info.get("itemCount") or 0)
    name = f" {esc(info['name'])}" if info.get("name") else ""
    title = f"Dataset{name} <code>{esc(info.get('id'))}</code>"
    summary = f'<div style="{DIM}">{count} item{"s" if count != 1 else ""}'
    if count > len(items):
        summary += f", the first {len(items)} shown"
    summary += "</div>"
    columns: list[str] = []
    for item in items:
        columns.extend(key for key in item if key not in columns)
    rows = [[item.get(c, "") for c in columns] for item in items]
    return box(title, summary + (table(columns, rows) if items else ""))


def store_html(meta: dict, keys: list[dict], truncated: bool) -> str:
    """A key-value store: its keys with sizes and content types."""
    name = f" {esc(meta['name'])}" if meta.get("name") else ""
    title = f"Key-value store{name} <code>{esc(meta.get('id'))}</code>"
    shown = f"the first {len(keys)} keys" if truncated else f"{len(keys)} key{'s' if len(keys) != 1 else ''}"
    rows = [[k.get("key"), _size(k.get("size")), k.get("contentType") or ""] for k in keys]
    return box(title, f'<div style="{DIM}">{shown}</div>' + (table(["key", "size", "type"], rows) if keys else ""))


def _size(size: Any) -> str:
    if not isinstance(size, (int, float)):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def error_html(what: str, exc: Exception) -> str:
    """What a repr shows when the server cannot be asked (never a traceback)."""
    return box(esc(what), f'<div style="{DIM}">{esc(exc)}</div>')
