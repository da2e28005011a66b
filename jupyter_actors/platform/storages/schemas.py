"""Storage schemas of Apify's actor definition: a dataset's views and a key-value store's collections.

An actor's ``.actor/dataset_schema.json`` (or ``storages.dataset`` of actor.json) names views, each a
transformation of the items (``fields``, ``omit``, ``unwind``, ``flatten``, ``limit``, ``desc``); its
``key_value_store_schema.json`` (``storages.keyValueStore``) names collections of keys (``key`` or
``keyPrefix``). They are checked once, when the actor or the storage is defined, and attached to the
storages a run of it creates, so ``?view=`` and ``?collection=`` read them from the storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from .kinds import DATASETS, KEY_VALUE_STORES, LABELS, StorageKind

#: The transformation keys of a dataset view this platform applies; any other is refused when the schema is read.
VIEW_TRANSFORMATIONS = ("fields", "omit", "unwind", "flatten", "limit", "desc")


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
    """A key-value store collection: exactly one key, or the keys that start with a prefix."""

    key: str | None = None
    key_prefix: str | None = None

    def prefix_with(self, prefix: str | None) -> str | None:
        """The prefix that lists this collection's keys that also start with ``prefix`` (None: no key can)."""
        own = self.key if self.key is not None else self.key_prefix or ""
        if prefix is None or own.startswith(prefix):
            return own
        if self.key is None and prefix.startswith(own):
            return prefix
        return None


def check_dataset_schema(schema: object, where: str = "The dataset schema") -> dict[str, Any]:
    """Apify's dataset schema with its views' transformations checked (``display`` and ``fields`` are kept as
    they are: they describe the Console's output tab and item validation, which this platform does not do)."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where} must be a JSON object with views.")
    views = schema.get("views", {})
    if not isinstance(views, dict):
        raise InvalidInput(f"{where}: views must be an object of view names to views.")
    for name, view in views.items():
        _view_from(view, f"{where}: view {name!r}")
    return schema


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
    return Collection(key=key, key_prefix=prefix)
