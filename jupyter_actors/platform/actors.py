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
from .sources import ActorDefinition, validate_name
from .stores import Stores

#: Actor fields ``update`` may change.
UPDATABLE = frozenset({"name", "default_build", "default_memory_mb", "default_timeout_secs", "title", "description"})


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
            "dataset_schema": _json_or_none(definition.dataset_schema),
            "key_value_store_schema": _json_or_none(definition.key_value_store_schema),
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

    def update(self, actor: str, *, tagged_builds: object = None, **values: Any) -> Actor:
        """Change the name (the id, runs and builds stay), the default run configuration (default_build,
        default_memory_mb, default_timeout_secs), title, description, and with ``tagged_builds`` (Apify's
        ``{tag: {"buildId": ...} | None}``) which build each tag names; all is checked before anything is written."""
        row = self.get(actor)
        values, tags = self.checked_update(row["id"], tagged_builds=tagged_builds, **values)
        self.stores.actors.update(row["id"], {**values, "modified_at": now_iso()}, tags)
        return self.get(row["id"])

    def checked_update(self, actor_id: str, *, tagged_builds: object = None,
                       **values: Any) -> tuple[dict[str, Any], dict[str, str | None]]:
        """``update``'s checks alone: (column values, tag changes), or the InvalidInput/Conflict it would raise."""
        unknown = set(values) - UPDATABLE
        if unknown:
            raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(UPDATABLE))}.")
        if "name" in values:
            validate_name(values["name"])
            if self.stores.actors.name_taken(values["name"], other_than=actor_id):
                raise Conflict(f"An actor named {values['name']!r} exists already; pick another name.",
                               type="actor-name-not-unique")
        if "default_memory_mb" in values:
            values["default_memory_mb"] = limits_mod.validate_memory(values["default_memory_mb"])
        if "default_timeout_secs" in values:
            values["default_timeout_secs"] = limits_mod.validate_timeout(values["default_timeout_secs"])
        return values, self._checked_tags(actor_id, tagged_builds)

    def _checked_tags(self, actor_id: str, tagged_builds: object) -> dict[str, str | None]:
        """Apify's ``taggedBuilds``: each tag to a build of this actor ({"buildId": ...}), or None to remove it."""
        if tagged_builds is None:
            return {}
        if not isinstance(tagged_builds, dict):
            raise InvalidInput('taggedBuilds must be an object of tags to {"buildId": ...} or null.')
        tags: dict[str, str | None] = {}
        for tag, target in tagged_builds.items():
            if not tag or len(tag) > 64:
                raise InvalidInput(f"taggedBuilds: the tag {tag!r} must be 1-64 characters.")
            if target is None:
                tags[tag] = None
                continue
            build_id = target.get("buildId") if isinstance(target, dict) else None
            if not isinstance(build_id, str):
                raise InvalidInput(f'taggedBuilds.{tag} must be {{"buildId": "..."}}, or null to remove the tag.')
            try:
                build_actor: str | None = self.stores.builds.get(build_id)["actor_id"]
            except NotFound:
                build_actor = None
            if build_actor != actor_id:
                raise InvalidInput(f"taggedBuilds.{tag}: {build_id!r} is not a build of this actor; "
                                   "name one of its builds (GET /v2/acts/{id}/builds).")
            tags[tag] = build_id
        return tags

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


def _json_or_none(value: object) -> str | None:
    return dumps(value) if value is not None else None
