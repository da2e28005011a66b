"""JSON objects checked field by field: every key known, every value of its JSON type.

One checker for request bodies, environment variables and webhook conditions, so the messages that
say what to fix read the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput

FieldTypes = Mapping[str, type | tuple[type, ...]]

_JSON_TYPE_NAMES: dict[type, str] = {str: "a string", bool: "true or false", int: "a whole number", float: "a number",
                    dict: "an object", list: "an array", type(None): "null"}


def checked_fields(body: object, fields: FieldTypes, *, what: str = "The body",
                   ignore_unknown: bool = False) -> dict[str, Any]:
    """``body`` if it is an object whose keys are all in ``fields``, each of the type listed there
    (``True`` is not a number); otherwise InvalidInput naming ``what`` and the field to fix.

    ``ignore_unknown``: other keys pass unchecked (Apify objects sent back whole, with read-only fields)."""
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object with some of: {', '.join(fields)}.")
    unknown = set(body) - set(fields)
    if unknown and not ignore_unknown:
        raise InvalidInput(f"{what} has unknown field(s): {', '.join(sorted(unknown))}. "
                           f"Allowed: {', '.join(fields)}.")
    for name, value in body.items():
        if name not in fields:
            continue
        wanted = fields[name]
        expected: tuple[type, ...] = wanted if isinstance(wanted, tuple) else (wanted,)
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join(_JSON_TYPE_NAMES.get(t, t.__name__) for t in expected)
            actual = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
            raise InvalidInput(f"{what}: field {name} must be {names}, not {actual}.")
    return body
