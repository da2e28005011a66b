"""Actors and their versions: created from a definition, looked up by id or name, changed, deleted."""

from __future__ import annotations

from typing import Any

from . import limits as limits_mod
from .clock import now_iso
from .errors import InvalidInput, NotFound
from .ids import new_id
from .models import USERNAME, Actor, Version
from .registry import dumps
from .sources import ActorDefinition
from .stores import Stores

#: Actor fields ``update`` may change.
UPDATABLE = frozenset({"default_build", "default_memory_mb", "default_timeout_secs", "title", "description"})


class ActorService:
    def __init__(self, stores: Stores, *, default_memory_mb: int, default_timeout_secs: int) -> None:
        self.stores = stores
        self.default_memory_mb = default_memory_mb
        self.default_timeout_secs = default_timeout_secs

    def create(self, definition: ActorDefinition) -> Actor:
        """Create the actor, or update it (and its version) when one of that name exists."""
        now = now_iso()
        values: dict[str, Any] = {
            "title": definition.title,
            "description": definition.description,
            "modified_at": now,
        }
        if definition.default_memory_mb is not None:
            values["default_memory_mb"] = limits_mod.validate_memory(definition.default_memory_mb)
        values["min_memory_mb"], values["max_memory_mb"] = limits_mod.memory_range(
            values.get("default_memory_mb"), definition.min_memory_mb, definition.max_memory_mb)
        if definition.default_timeout_secs is not None:
            values["default_timeout_secs"] = limits_mod.validate_timeout(definition.default_timeout_secs)
        new_actor = {
            "id": new_id(), "username": USERNAME, "created_at": now, "default_build": "latest",
            "default_memory_mb": self.default_memory_mb, "default_timeout_secs": self.default_timeout_secs,
        }
        actor_id = self.stores.actors.save(definition.name, values, new_actor, {
            "version_number": definition.version,
            "source_type": "SOURCE_FILES",
            "source_files": dumps(definition.files),
            "env_vars": dumps(definition.env_vars),
            "build_tag": definition.build_tag,
            "dockerfile": definition.dockerfile,
            "input_schema": dumps(definition.input_schema) if definition.input_schema is not None else None,
            "created_at": now,
            "modified_at": now,
        })
        return self.get(actor_id)

    def get(self, actor: str) -> Actor:
        """By id, name, or ``username/name`` / ``username~name``."""
        row = self.stores.actors.find(actor)
        if row is None:
            raise NotFound(f"Actor {actor!r} was not found.", type="record-not-found")
        return row

    def all(self) -> list[Actor]:
        return self.stores.actors.all()

    def update(self, actor: str, **values: Any) -> Actor:
        """Change the default run configuration (default_build, default_memory_mb, default_timeout_secs)."""
        row = self.get(actor)
        unknown = set(values) - UPDATABLE
        if unknown:
            raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(UPDATABLE))}.")
        if "default_memory_mb" in values:
            values["default_memory_mb"] = limits_mod.validate_memory(values["default_memory_mb"])
        if "default_timeout_secs" in values:
            values["default_timeout_secs"] = limits_mod.validate_timeout(values["default_timeout_secs"])
        self.stores.actors.update(row["id"], {**values, "modified_at": now_iso()})
        return self.get(row["id"])

    def versions(self, actor: str) -> list[Version]:
        return self.stores.actors.versions(self.get(actor)["id"])

    def version(self, actor_id: str, version: str | None = None) -> Version:
        """A version by number, or the newest one."""
        for row in self.stores.actors.versions(actor_id, newest_first=True):
            if version is None or row["version_number"] == version:
                return row
        raise NotFound(f"Version {version or '(any)'} of actor {actor_id} was not found.")
