"""Actor tasks: a saved configuration of an actor (its input and run options) that is run by name.

Apify's semantics: a task run is a run of the task's actor whose input is the task's input with the
fields of the run's own input laid over it, and whose build, memory and timeout are the caller's,
else the task's, else the actor's defaults. The run records the task (``actorTaskId``) and its
container sees it as APIFY_ACTOR_TASK_ID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import limits as limits_mod
from .actors import ActorService
from .clock import now_iso
from .errors import Conflict, InvalidInput, NotFound
from .ids import new_id
from .models import Run, Task
from .registry import dumps
from .runs.service import RunService, validate_max_items
from .sources import validate_name
from .stores import Stores

#: The task options this platform acts on, with their JSON types (Apify's ``TaskOptions``).
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "build": (str, type(None)), "timeoutSecs": (int, type(None)), "memoryMbytes": (int, type(None)),
    "restartOnError": (bool, type(None)), "maxItems": (int, type(None)), "maxTotalChargeUsd": (int, float, type(None)),
}
#: Options Apify has that runs here cannot honour: refused unless unset, never stored and ignored.
UNSUPPORTED_OPTIONS = {
    "maxTotalChargeUsd": "maxTotalChargeUsd is not supported here: runs are not charged (leave it unset)",
}


@dataclass(frozen=True)
class TaskOptions:
    """What a task fixes for its runs; None means "the actor's default"."""

    build: str | None = None
    timeout_secs: int | None = None
    memory_mb: int | None = None
    max_items: int | None = None
    restart_on_error: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"build": self.build, "timeoutSecs": self.timeout_secs, "memoryMbytes": self.memory_mb,
                "restartOnError": self.restart_on_error,
                **({"maxItems": self.max_items} if self.max_items is not None else {})}

    @classmethod
    def parse(cls, value: object, *, base: TaskOptions | None = None) -> TaskOptions:
        """Apify's ``options`` object, checked field by field; fields it leaves out keep ``base``'s values."""
        base = base or cls()
        if value is None:
            return base
        if not isinstance(value, dict):
            raise InvalidInput("options must be an object such as {\"build\": \"latest\", \"memoryMbytes\": 1024}.")
        unknown = set(value) - set(OPTION_TYPES)
        if unknown:
            raise InvalidInput(f"Unknown task option(s): {', '.join(sorted(unknown))}. "
                               f"Allowed: {', '.join(OPTION_TYPES)}.")
        for name, types in OPTION_TYPES.items():
            if name in value and (not isinstance(value[name], types)
                                  or (isinstance(value[name], bool) and bool not in types)):
                raise InvalidInput(f"options.{name} has the wrong type ({type(value[name]).__name__}).")
        for name, message in UNSUPPORTED_OPTIONS.items():
            if value.get(name) not in (None, False):
                raise InvalidInput(f"options.{message}.")
        memory = value.get("memoryMbytes", base.memory_mb)
        timeout = value.get("timeoutSecs", base.timeout_secs)
        restart = value.get("restartOnError", base.restart_on_error)
        return cls(
            build=value.get("build", base.build),
            memory_mb=limits_mod.validate_memory(memory) if memory is not None else None,
            timeout_secs=limits_mod.validate_timeout(timeout) if timeout is not None else None,
            max_items=validate_max_items(value.get("maxItems", base.max_items)),
            restart_on_error=bool(restart),
        )

    @classmethod
    def of(cls, task: Task) -> TaskOptions:
        stored = json.loads(task["options"])
        return cls(build=stored.get("build"), timeout_secs=stored.get("timeoutSecs"),
                   memory_mb=stored.get("memoryMbytes"), max_items=stored.get("maxItems"),
                   restart_on_error=bool(stored.get("restartOnError")))


def validate_task_input(value: object) -> dict[str, Any]:
    """A task's input is a JSON object (Apify's), so that a run's input can be laid over it field by field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("A task's input must be a JSON object, for example {\"url\": \"https://example.com\"}.")
    limits_mod.validate_input(dumps(value))
    return value


class TaskService:
    def __init__(self, stores: Stores, actors: ActorService, runs: RunService) -> None:
        self.stores = stores
        self.actors = actors
        self.runs = runs

    def get(self, ref: str) -> Task:
        """By id, name, or ``username/name`` / ``username~name``."""
        row = self.stores.tasks.find(ref)
        if row is None:
            raise NotFound(f"Actor task {ref!r} was not found.", type="record-not-found")
        return row

    def all(self) -> list[Task]:
        return self.stores.tasks.all()

    def create(self, actor: str, name: str, *, options: TaskOptions | None = None, input: object = None,
               title: str | None = None, description: str | None = None) -> Task:
        actor_row = self.actors.get(actor)
        validate_name(name, "Task")
        if self.stores.tasks.name_taken(name):
            raise Conflict(f"A task named {name!r} exists already; update it or pick another name.",
                           type="record-or-token-already-exists")
        now = now_iso()
        task_id = new_id()
        self.stores.tasks.insert({
            "id": task_id, "actor_id": actor_row["id"], "name": name, "title": title, "description": description,
            "options": dumps((options or TaskOptions()).to_json()), "input": dumps(validate_task_input(input)),
            "created_at": now, "modified_at": now,
        })
        return self.get(task_id)

    def update(self, ref: str, **changes: Any) -> Task:
        """Change ``name``, ``options`` (TaskOptions), ``input``, ``title`` or ``description``; all checked first."""
        task = self.get(ref)
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = validate_name(changes["name"], "Task")
            if self.stores.tasks.name_taken(values["name"], other_than=task["id"]):
                raise Conflict(f"A task named {values['name']!r} exists already.",
                               type="record-or-token-already-exists")
        if "options" in changes:
            values["options"] = dumps(changes["options"].to_json())
        if "input" in changes:
            values["input"] = dumps(validate_task_input(changes["input"]))
        for field in ("title", "description"):
            if field in changes:
                values[field] = changes[field]
        unknown = set(changes) - {"name", "options", "input", "title", "description"}
        if unknown:
            raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))} of a task.")
        if values:
            self.stores.tasks.update(task["id"], {**values, "modified_at": now_iso()})
        return self.get(task["id"])

    def delete(self, ref: str) -> None:
        """The task goes; its runs stay (they keep its id in actorTaskId)."""
        self.stores.tasks.delete(self.get(ref)["id"])

    def run_count(self, task_id: str) -> int:
        return self.stores.tasks.run_count(task_id)

    def input(self, ref: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.get(ref)["input"])
        return value

    def start(self, ref: str, *, input: object = None, build: str | None = None, memory_mb: int | str | None = None,
              timeout_secs: int | str | None = None, origin: str = "API", parent_run_id: str | None = None,
              web_public: bool = False, max_items: int | None = None, restart_on_error: bool | None = None) -> Run:
        """A run of the task's actor: ``input`` (a JSON object) overrides the task input's fields, and
        the options given here override the task's, which override the actor's defaults."""
        task = self.get(ref)
        if input is not None and not isinstance(input, dict):
            raise InvalidInput("A task run's input must be a JSON object; its fields override the task's input.")
        merged = {**json.loads(task["input"]), **(input or {})}
        options = TaskOptions.of(task)
        return self.runs.start(
            task["actor_id"], build=build or options.build,
            memory_mb=memory_mb if memory_mb is not None else options.memory_mb,
            timeout_secs=timeout_secs if timeout_secs is not None else options.timeout_secs,
            input=merged, origin=origin, parent_run_id=parent_run_id, web_public=web_public,
            actor_task_id=task["id"], max_items=max_items if max_items is not None else options.max_items,
            restart_on_error=restart_on_error if restart_on_error is not None else options.restart_on_error,
        )
