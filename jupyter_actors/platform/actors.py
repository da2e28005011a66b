"""Actors and their versions: created from a definition, looked up by id or name, changed, deleted."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import env_vars as env_vars_mod
from . import limits as limits_mod
from .clock import now_iso
from .errors import Conflict, InvalidInput, NotFound
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

    def delete_version(self, actor: str, version: str) -> None:
        """Delete a version; its builds stay. The last version stays: an actor is built from one."""
        row = self.get(actor)
        self.version(row["id"], version)
        if not self.stores.actors.delete_version(row["id"], version):
            raise Conflict(f"Version {version} is the only version of {row['name']}: an actor needs one to be "
                           "built. Create another version first, or delete the actor.")

    # -- a version's environment variables ----------------------------------------------------------

    def env_vars(self, actor: str, version: str) -> list[env_vars_mod.EnvVar]:
        """With their values, secret ones too: for the runs, never for display."""
        env_vars: list[env_vars_mod.EnvVar] = json.loads(self.version(self.get(actor)["id"], version)["env_vars"])
        return env_vars

    def env_var(self, actor: str, version: str, name: str) -> env_vars_mod.EnvVar:
        return env_vars_mod.find(self.env_vars(actor, version), name)

    def add_env_var(self, actor: str, version: str, body: object) -> env_vars_mod.EnvVar:
        var = env_vars_mod.check_env_var(body)
        self._change_env_vars(actor, version, lambda current: env_vars_mod.added(current, var))
        return var

    def update_env_var(self, actor: str, version: str, name: str, body: object) -> env_vars_mod.EnvVar:
        """Fields left out keep their values, so a secret's value need not be sent again."""
        var = env_vars_mod.check_env_var(body, existing=self.env_var(actor, version, name))
        self._change_env_vars(actor, version, lambda current: env_vars_mod.replaced(current, name, var))
        return var

    def delete_env_var(self, actor: str, version: str, name: str) -> None:
        self._change_env_vars(actor, version, lambda current: env_vars_mod.removed(current, name))

    def _change_env_vars(self, actor: str, version: str,
                         change: Callable[[list[env_vars_mod.EnvVar]], list[env_vars_mod.EnvVar]]) -> None:
        row = self.get(actor)
        self.version(row["id"], version)
        self.stores.actors.change_env_vars(row["id"], version, change)
