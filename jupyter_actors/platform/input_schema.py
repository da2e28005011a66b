"""An actor's input schema (Apify's ``input_schema.json``) enforced on every run start.

Apify's format is JSON Schema plus its own keywords: UI ones (``editor``, ``prefill``, ``sectionCaption``,
``enumTitles``, ``isSecret``...) that do not constrain the value, and a few that do (``nullable``, and the
item shapes the array editors imply). The schema is translated to plain JSON Schema and checked with
``jsonschema``; each bad field is named as Apify names it (``input.<field>``), and missing fields get the
schema's ``default``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .json_schema import dotted, error_path, schema_problem
from .json_schema import errors as schema_errors

#: JSON Schema keywords a property may carry that constrain its value (the rest are Apify's UI hints).
VALUE_KEYWORDS = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
                  "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "items", "properties",
                  "required", "minProperties", "maxProperties", "additionalProperties", "const", "format")
#: Property types Apify's input schema allows.
TYPES = ("string", "integer", "number", "boolean", "array", "object")
#: Editors Apify offers for each type; another editor is a mistake in the schema.
EDITORS = {
    "string": {"textfield", "textarea", "javascript", "python", "select", "datepicker", "hidden", "fileupload",
               "json"},
    "integer": {"number", "hidden"},
    "number": {"number", "hidden"},
    "boolean": {"checkbox", "hidden"},
    "array": {"json", "requestListSources", "pseudoUrls", "globs", "keyValue", "stringList", "select", "hidden"},
    "object": {"json", "proxy", "hidden"},
}
#: What each array editor stores in every item (Apify validates these shapes too).
EDITOR_ITEMS: dict[str, dict[str, Any]] = {
    "stringList": {"type": "string"},
    "keyValue": {"type": "object", "required": ["key", "value"],
                 "properties": {"key": {"type": "string"}, "value": {"type": "string"}}},
    "globs": {"type": "object", "required": ["glob"], "properties": {"glob": {"type": "string"}}},
    "pseudoUrls": {"type": "object", "required": ["purl"], "properties": {"purl": {"type": "string"}}},
    "requestListSources": {"type": "object", "anyOf": [{"required": ["url"]}, {"required": ["requestsFromUrl"]}],
                           "properties": {"url": {"type": "string"}, "requestsFromUrl": {"type": "string"}}},
}


@dataclass(frozen=True)
class InputCheck:
    """The outcome of checking one input: the input with defaults filled in, or what is wrong with it."""

    value: dict[str, Any]
    errors: list[str]

    @property
    def valid(self) -> bool:
        return not self.errors


def schema_problems(schema: Any) -> list[str]:
    """What makes ``schema`` unusable as an input schema (empty: it is fine)."""
    if not isinstance(schema, dict):
        return ["the input schema must be a JSON object"]
    problems = []
    if schema.get("type", "object") != "object":
        problems.append("its type must be object")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return [*problems, "properties must be an object"]
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        problems.append("required must be a list of property names")
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            problems.append(f"property {name} must be an object")
            continue
        kind = spec.get("type")
        if kind not in TYPES:
            problems.append(f"property {name} needs a type, one of {', '.join(TYPES)}")
            continue
        editor = spec.get("editor")
        if editor is not None and editor not in EDITORS[kind]:
            problems.append(f"property {name}: editor {editor!r} is not one for {kind}s "
                            f"({', '.join(sorted(EDITORS[kind]))})")
        if "enum" in spec and not isinstance(spec["enum"], list):
            problems.append(f"property {name}: enum must be a list")
        titles = spec.get("enumTitles")
        if titles is not None and (not isinstance(titles, list) or len(titles) != len(spec.get("enum") or [])):
            problems.append(f"property {name}: enumTitles must be a list as long as enum")
        if spec.get("isSecret") and kind != "string":
            problems.append(f"property {name}: only strings can be secret (isSecret)")
    if not problems:
        problem = schema_problem(to_json_schema(schema))
        if problem:
            problems.append(problem)
    return problems


def _property_schema(spec: dict[str, Any]) -> dict[str, Any]:
    prop = {key: copy.deepcopy(spec[key]) for key in VALUE_KEYWORDS if key in spec}
    editor_items = EDITOR_ITEMS.get(spec.get("editor", ""))
    if spec.get("type") == "array" and editor_items is not None:
        prop["items"] = {**editor_items, **prop.get("items", {})} if isinstance(prop.get("items"), dict) \
            else editor_items
    if spec.get("nullable"):
        prop["type"] = [prop["type"], "null"]
        if "enum" in prop:
            prop["enum"] = [*prop["enum"], None]
    return prop


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Apify's input schema as plain JSON Schema (draft 7), UI keywords dropped, array editors' shapes added."""
    properties = schema.get("properties") or {}
    return {
        "type": "object",
        "properties": {name: _property_schema(spec) for name, spec in properties.items()},
        "required": list(schema.get("required") or []),
    }


def check_input(schema: dict[str, Any], value: Any) -> InputCheck:
    """Check ``value`` (the parsed JSON input; None: no input) and fill in the schema's defaults."""
    problems = schema_problems(schema)
    if problems:
        raise InvalidInput("The actor's input schema is not valid: " + "; ".join(problems) +
                           ". Fix the schema and save the version again.", type="invalid-input-schema")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return InputCheck(value={}, errors=[f"Field input must be a JSON object, not {type(value).__name__}"])
    filled = dict(value)
    for name, spec in (schema.get("properties") or {}).items():
        if name not in filled and "default" in spec:
            filled[name] = copy.deepcopy(spec["default"])
    secret = {name for name, spec in (schema.get("properties") or {}).items() if spec.get("isSecret")}
    found = []
    for error in schema_errors(to_json_schema(schema), filled):  # Apify names a field input.a.b, input.a[0]
        field = dotted(error_path(error), "input")
        if error.validator == "required":
            found.append(f"Field {field} is required")
        elif error.absolute_path and error.absolute_path[0] in secret:  # jsonschema quotes the value: never echo
            found.append(f"Field {field} is not valid (it fails {error.validator})")
        else:
            found.append(f"Field {field}: {error.message}")
    return InputCheck(value=filled, errors=found)


def invalid_input(errors: list[str]) -> InvalidInput:
    """Apify's refusal of an input: one message naming each bad field."""
    return InvalidInput("Input is not valid: " + "; ".join(errors) + ".", type="invalid-input")


__all__ = ["InputCheck", "check_input", "invalid_input", "schema_problems", "to_json_schema"]
