"""Storage schemas of Apify's actor definition: a dataset's views and a key-value store's collections.

An actor's ``.actor/dataset_schema.json`` (or ``storages.dataset`` of actor.json) names views, each a
transformation of the items (``fields``, ``omit``, ``unwind``, ``flatten``, ``limit``, ``desc``); its
``key_value_store_schema.json`` (``storages.keyValueStore``) names collections of keys (``key`` or
``keyPrefix``), each of which may limit its records' ``contentTypes`` and give their ``jsonSchema``. They are
checked once, when the actor or the storage is defined, and attached to the storages a run of it creates, so
``?view=`` and ``?collection=`` read them from the storage, and pushes and record writes are checked against
the dataset schema's ``fields`` and the collections (``check_items``, ``check_record``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .. import json_schema
from ..errors import InvalidInput
from .kinds import DATASETS, KEY_VALUE_STORES, LABELS, StorageKind

#: The transformation keys of a dataset view this platform applies; any other is refused when the schema is read.
VIEW_TRANSFORMATIONS = ("fields", "omit", "unwind", "flatten", "limit", "desc")
#: A refused push lists at most this many invalid items in ``data.invalidItems`` (the message says how many more).
MAX_INVALID_ITEMS = 1000
#: Errors listed per invalid item, at most.
MAX_ITEM_ERRORS = 20


@dataclass(frozen=True)
class View:
    """A dataset view's transformation: item options that hold unless the request gives its own."""

    fields: tuple[str, ...] | None = None
    omit: tuple[str, ...] | None = None
    unwind: tuple[str, ...] | None = None
    flatten: tuple[str, ...] | None = None
    limit: int | None = None
    desc: bool | None = None


@dataclass(frozen=True)
class Collection:
    """A key-value store collection: exactly one key, or the keys that start with a prefix; ``content_types``
    and ``json_schema`` (when given) are what its records must be."""

    key: str | None = None
    key_prefix: str | None = None
    content_types: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None

    def covers(self, key: str) -> bool:
        return key == self.key if self.key is not None else key.startswith(self.key_prefix or "")

    def prefix_with(self, prefix: str | None) -> str | None:
        """The prefix that lists this collection's keys that also start with ``prefix`` (None: no key can)."""
        own = self.key if self.key is not None else self.key_prefix or ""
        if prefix is None or own.startswith(prefix):
            return own
        if self.key is None and prefix.startswith(own):
            return prefix
        return None


def check_dataset_schema(schema: object, where: str = "The dataset schema") -> dict[str, Any]:
    """Apify's dataset schema with its views' transformations and its ``fields`` (the JSON Schema of one item)
    checked; a view's ``display`` is kept as it is (the notebook reads its labels, ``Dataset.to_pandas``)."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where} must be a JSON object with views.")
    if schema.get("fields") is not None:
        _check_json_schema(schema["fields"], f"{where}: fields (the JSON Schema of one item)")
    views = schema.get("views", {})
    if not isinstance(views, dict):
        raise InvalidInput(f"{where}: views must be an object of view names to views.")
    for name, view in views.items():
        _view_from(view, f"{where}: view {name!r}")
        _check_display(view.get("display"), f"{where}: view {name!r}: display")
    return schema


def _check_display(display: object, where: str) -> None:
    """A view's ``display``: its ``properties`` name fields, each with an optional ``label`` (the notebook's
    column name) and ``format`` (Apify Console's; not applied here)."""
    if display is None:
        return
    if not isinstance(display, dict):
        raise InvalidInput(f"{where} must be an object.")
    properties = display.get("properties", {})
    if not isinstance(properties, dict):
        raise InvalidInput(f"{where}.properties must be an object of field names to their display.")
    for field, spec in properties.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("label", ""), str) \
                or not isinstance(spec.get("format", ""), str):
            raise InvalidInput(f"{where}.properties.{field} must be an object whose label and format are strings.")


def check_key_value_store_schema(schema: object, where: str = "The key-value store schema") -> dict[str, Any]:
    """Apify's key-value store schema with each collection's ``key`` or ``keyPrefix`` checked."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where} must be a JSON object with collections.")
    collections = schema.get("collections", {})
    if not isinstance(collections, dict):
        raise InvalidInput(f"{where}: collections must be an object of collection names to collections.")
    for name, collection in collections.items():
        _collection_from(collection, f"{where}: collection {name!r}")
    return schema


def schema_json(kind: StorageKind, schema: object) -> str | None:
    """A storage's schema checked for its kind, as stored (JSON text); request queues have none."""
    if schema is None:
        return None
    if kind == DATASETS:
        return json.dumps(check_dataset_schema(schema))
    if kind == KEY_VALUE_STORES:
        return json.dumps(check_key_value_store_schema(schema))
    raise InvalidInput(f"A {LABELS[kind].lower()} has no schema; schemas are for datasets and key-value stores.")


def check_items(schema_text: str | None) -> Callable[[list[Any]], None] | None:
    """What checks a push's parsed items against a dataset's stored schema (``schema_json``): None when the
    schema has no ``fields``, so a dataset without one takes any object."""
    return _items_check(schema_text) if schema_text else None


@lru_cache(maxsize=256)
def _items_check(schema_text: str) -> Callable[[list[Any]], None] | None:
    fields = json.loads(schema_text).get("fields")
    if fields is None:
        return None
    _check_json_schema(fields, "This dataset's schema: fields")  # stored before fields were checked

    def check(items: list[Any]) -> None:
        """Apify's refusal of a push with items that do not match: all of them listed, nothing stored."""
        invalid = []
        for position, item in enumerate(items):
            errors = json_schema.errors(fields, item)
            if errors:
                invalid.append((position, errors))
        if not invalid:
            return
        position, errors = invalid[0]
        first = f"item {position}, {json_schema.dotted(json_schema.error_path(errors[0]))}: {errors[0].message}"
        more = (f"; data.invalidItems lists the first {MAX_INVALID_ITEMS}" if len(invalid) > MAX_INVALID_ITEMS
                else "; data.invalidItems lists each")
        raise InvalidInput(
            f"Schema validation failed: {len(invalid)} of the {len(items)} items pushed do not match the dataset "
            f"schema's fields, so none was stored (first: {first}){more}.", type="schema-validation-error",
            data={"invalidItems": [{"itemPosition": position, "validationErrors": [
                _ajv_error(error) for error in errors[:MAX_ITEM_ERRORS]]} for position, errors in
                invalid[:MAX_INVALID_ITEMS]]})

    return check


def _ajv_error(error: Any) -> dict[str, Any]:
    """A jsonschema error in the shape of the AJV error objects Apify lists (``instancePath``, ``schemaPath``,
    ``keyword``, ``params``, ``message``)."""
    keyword = error.validator
    params = ({"missingProperty": json_schema.error_path(error)[-1]} if keyword == "required"
              else {keyword: error.validator_value})
    return {"instancePath": json_schema.pointer(list(error.absolute_path)),
            "schemaPath": "#" + json_schema.pointer(list(error.absolute_schema_path)),
            "keyword": keyword, "params": params, "message": error.message}


def check_record(schema_text: str | None, key: str, value: bytes | bytearray | memoryview, content_type: str) -> None:
    """Refuse a record that a collection of its store's stored schema covering ``key`` does not allow: another
    content type than the collection's ``contentTypes``, or JSON not matching its ``jsonSchema``."""
    if not schema_text:
        return
    media = _media_type(content_type)
    for name, collection in _collections(schema_text):
        if not collection.covers(key):
            continue
        where = f"Record {key!r} is in collection {name!r} of this key-value store's schema"
        if collection.content_types is not None and media not in {_media_type(t) for t in collection.content_types}:
            raise InvalidInput(f"{where}, whose records must be of content type "
                               f"{' or '.join(collection.content_types)}, not {content_type!r}; store it with one of "
                               "those, or under a key outside the collection.", type="schema-validation-error")
        if collection.json_schema is not None and (media == "application/json" or media.endswith("+json")):
            try:
                document = json.loads(bytes(value))
            except ValueError:
                raise InvalidInput(f"{where}, which has a JSON Schema, and its content type says JSON, but the "
                                   "value is not valid JSON.", type="schema-validation-error") from None
            errors = json_schema.errors(collection.json_schema, document)
            if errors:
                raise InvalidInput(f"{where}, and it does not match the collection's JSON Schema: " + "; ".join(
                    f"{json_schema.dotted(json_schema.error_path(e))}: {e.message}" for e in errors[:MAX_ITEM_ERRORS])
                    + ".", type="schema-validation-error")


@lru_cache(maxsize=256)
def _collections(schema_text: str) -> tuple[tuple[str, Collection], ...]:
    collections = json.loads(schema_text).get("collections") or {}
    return tuple((name, _collection_from(collection, f"This key-value store's schema: collection {name!r}"))
                 for name, collection in collections.items())


def _media_type(content_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``: the parameters do not make another type."""
    return content_type.partition(";")[0].strip().lower()


def _check_json_schema(schema: object, where: str) -> None:
    """A JSON Schema in a storage schema: an object, draft 7 (Apify validates with AJV's draft 7)."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where} must be a JSON Schema (an object).")
    declared = schema.get("$schema")
    if declared is not None and declared != json_schema.DRAFT_7:
        raise InvalidInput(f"{where}: $schema must be {json_schema.DRAFT_7} or left out, not {declared!r}.")
    problem = json_schema.schema_problem(schema)
    if problem:
        raise InvalidInput(f"{where} is not a valid JSON Schema: {problem}.")


def dataset_view(schema: dict[str, Any] | None, name: str) -> View:
    """The view ``name`` of a dataset's schema; InvalidInput naming the known views otherwise."""
    return _view_from(_named_part(schema, "views", "view", name, "dataset", ".actor/dataset_schema.json",
                                  "fields, omit, unwind and flatten"), f"view {name!r}")


def store_collection(schema: dict[str, Any] | None, name: str) -> Collection:
    """The collection ``name`` of a key-value store's schema; InvalidInput naming the known ones otherwise."""
    return _collection_from(_named_part(schema, "collections", "collection", name, "key-value store",
                                        ".actor/key_value_store_schema.json", "prefix"), f"collection {name!r}")


def _named_part(schema: dict[str, Any] | None, section: str, what: str, name: str, storage: str, source: str,
                instead: str) -> object:
    """``schema[section][name]`` (a view or a collection), or InvalidInput saying what the storage has."""
    if schema is None:
        raise InvalidInput(f"{what} {name!r}: this {storage} has no schema, so it has no {section}. "
                           f"{section.capitalize()} come from the {storage} schema of the actor whose run made the "
                           f"{storage} ({source}); use {instead} instead.")
    parts = schema.get(section) or {}
    if name not in parts:
        raise InvalidInput(f"{what} {name!r} is not a {what} of this {storage}; its {section} are: "
                           f"{', '.join(sorted(parts)) or '(none)'}.")
    return parts[name]


def _view_from(view: object, where: str) -> View:
    if not isinstance(view, dict):
        raise InvalidInput(f"{where} must be an object with a transformation.")
    transformation = view.get("transformation", {})
    if not isinstance(transformation, dict):
        raise InvalidInput(f"{where}: transformation must be an object.")
    unknown = set(transformation) - set(VIEW_TRANSFORMATIONS)
    if unknown:
        raise InvalidInput(f"{where}: transformation {', '.join(sorted(unknown))} is not supported here; "
                           f"a view may use {', '.join(VIEW_TRANSFORMATIONS)}.")
    lists = {name: _names(transformation.get(name), f"{where}: transformation.{name}")
             for name in ("fields", "omit", "unwind", "flatten")}
    limit = transformation.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput(f"{where}: transformation.limit must be a whole number of 0 or more.")
    desc = transformation.get("desc")
    if desc is not None and not isinstance(desc, bool):
        raise InvalidInput(f"{where}: transformation.desc must be true or false.")
    return View(**lists, limit=limit, desc=desc)


def _names(value: object, where: str) -> tuple[str, ...] | None:
    """A list of field names; Apify's ``unwind`` may also be one name (or a comma-separated string)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise InvalidInput(f"{where} must be a list of field names.")
    return tuple(value)


def _collection_from(collection: object, where: str) -> Collection:
    if not isinstance(collection, dict):
        raise InvalidInput(f"{where} must be an object with a key or a keyPrefix.")
    key, prefix = collection.get("key"), collection.get("keyPrefix")
    if (key is None) == (prefix is None) or not isinstance(key if key is not None else prefix, str):
        raise InvalidInput(f"{where} needs exactly one of key and keyPrefix, a string.")
    types = collection.get("contentTypes")
    if types is not None and (not isinstance(types, list) or not types
                              or not all(isinstance(t, str) and "/" in t for t in types)):
        raise InvalidInput(f"{where}: contentTypes must be a list of content types such as application/json.")
    schema = collection.get("jsonSchema")
    if schema is not None:
        _check_json_schema(schema, f"{where}: jsonSchema")
    return Collection(key=key, key_prefix=prefix, content_types=tuple(types) if types is not None else None,
                      json_schema=schema)
