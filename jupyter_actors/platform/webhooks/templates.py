"""Apify's payload and headers templates: JSON with ``{{variable}}`` placeholders.

A placeholder outside a string becomes the variable's JSON (``{{resource}}`` the whole run). Inside a
string it is left alone unless ``shouldInterpolateStrings`` is on; then a string that is only the
placeholder becomes the value itself, and one with other text gets the value as text. Variables are
``userId``, ``createdAt``, ``eventType``, ``eventData``, ``resource`` and ``globals`` (``dateISO``,
``dateUnix``), with dotted paths into them (``{{resource.defaultDatasetId}}``); a path that leads nowhere
is ``null``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidInput

VARIABLES = ("userId", "createdAt", "eventType", "eventData", "resource", "globals")
DEFAULT_PAYLOAD_TEMPLATE = """{
    "userId": {{userId}},
    "createdAt": {{createdAt}},
    "eventType": {{eventType}},
    "eventData": {{eventData}},
    "resource": {{resource}}
}"""
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_$][\w$]*(\.[\w$]+)*")


def variable_names(template: str) -> list[str]:
    return [match.group(1) for match in _PLACEHOLDER.finditer(template)]


def check_template(template: str, what: str, *, interpolate_strings: bool, must_be_object: bool = False) -> None:
    """Refuse a template that names an unknown variable or is not JSON once its variables are filled in."""
    for name in variable_names(template):
        if not _PATH.fullmatch(name) or name.split(".")[0] not in VARIABLES:
            raise InvalidInput(f"{what} uses {{{{{name}}}}}, which is not a variable; use "
                               f"{', '.join(VARIABLES)} or a dotted path into them such as {{{{resource.id}}}}.")
    sample: dict[str, Any] = {name: {} for name in VARIABLES}
    rendered = render(template, sample, interpolate_strings=interpolate_strings, what=what)
    if must_be_object and not isinstance(json.loads(rendered), dict):
        raise InvalidInput(f"{what} must be a JSON object of header names to values.")


def render(template: str, context: dict[str, Any], *, interpolate_strings: bool, what: str = "The template") -> str:
    """The template with its variables filled in from ``context``, checked to be JSON."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char == '"':
            end = _string_end(template, i)
            out.append(_render_string(template[i:end], context) if interpolate_strings else template[i:end])
            i = end
        elif template.startswith("{{", i):
            match = _PLACEHOLDER.match(template, i)
            if match is None:
                raise InvalidInput(f"{what} has an unclosed {{{{ at character {i}.")
            out.append(json.dumps(lookup(context, match.group(1))))
            i = match.end()
        else:
            out.append(char)
            i += 1
    text = "".join(out)
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON once its variables are filled in: {exc}.") from None
    return text


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string literal that opens at ``start`` (the end of text if unclosed)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return len(text)


def _render_string(literal: str, context: dict[str, Any]) -> str:
    inner = literal[1:-1] if len(literal) >= 2 and literal.endswith('"') else literal[1:]
    whole = _PLACEHOLDER.fullmatch(inner)
    if whole is not None:
        return json.dumps(lookup(context, whole.group(1)))

    def as_text(match: re.Match[str]) -> str:
        value = lookup(context, match.group(1))
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]  # escaped for the inside of a JSON string

    return '"' + _PLACEHOLDER.sub(as_text, inner) + '"'
