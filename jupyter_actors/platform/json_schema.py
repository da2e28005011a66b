"""JSON Schema (draft 7, with ``jsonschema``) as every schema the platform applies uses it: an actor's
input schema, a dataset schema's ``fields`` and a key-value store collection's ``jsonSchema``.

One validator setup, so all of them accept the same schemas and name a bad field the same way; a
validator is compiled once per distinct schema, since item pushes check against the same one again and again.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError, ValidationError

#: The only ``$schema`` Apify's storage schemas allow besides none (they are validated with AJV's draft 7).
DRAFT_7 = "http://json-schema.org/draft-07/schema#"


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable draft-7 JSON Schema (None: it is)."""
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        return f"{'.'.join(str(p) for p in exc.path) or 'the schema'}: {exc.message}"
    return None


def validator(schema: dict[str, Any]) -> Draft7Validator:
    """A validator for a schema ``schema_problem`` found fine."""
    return _compiled(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=256)
def _compiled(text: str) -> Draft7Validator:
    return Draft7Validator(json.loads(text))


def errors(schema: dict[str, Any], value: Any) -> list[ValidationError]:
    """Each way ``value`` fails ``schema``, in the order of the fields they are about."""
    return sorted(validator(schema).iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])


def error_path(error: ValidationError) -> list[str | int]:
    """The path of the field an error is about; for a missing required property, that property's."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        # One error per missing property; its message starts with the property's repr.
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(next((name for name in missing if error.message.startswith(repr(name))), missing[0]))
    return path


def dotted(path: list[str | int], root: str = "") -> str:
    """``a.b[0]`` (``root.a.b[0]`` with a root): how a bad field is named in messages."""
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the value)"


def pointer(path: list[str | int]) -> str:
    """A JSON pointer (``/a/0``), as AJV's ``instancePath`` has it."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


__all__ = ["DRAFT_7", "dotted", "error_path", "errors", "pointer", "schema_problem", "validator"]
