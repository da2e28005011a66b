"""Actor tasks (``/v2/actor-tasks``): CRUD, their input, and their runs; thin HTTP over platform/tasks.py."""

from __future__ import annotations

from typing import Any

from ..platform.errors import InvalidInput
from ..platform.models import Task
from ..platform.tasks import TaskOptions
from .actors_handlers import RunStarting
from .base import ApiHandlerMixin
from .principals import require

#: Body fields of Apify's create/update-task request that this API acts on, with their JSON types.
TASK_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "actId": (str,), "name": (str,), "options": (dict, type(None)), "input": (dict, type(None)),
    "title": (str, type(None)), "description": (str, type(None)),
    # apify-client sends these as empty objects (or isPublic false); anything in them is refused below.
    "actorStandby": (dict, type(None)), "publicConfig": (dict, type(None)), "isPublic": (bool, type(None)),
}
JSON_NAMES = {str: "a string", dict: "a JSON object", bool: "true or false", type(None): "null", list: "an array",
              int: "a number", float: "a number"}
NOT_SUPPORTED = {
    "actorStandby": "Standby mode is not supported here; leave actorStandby empty",
    "publicConfig": "Tasks are not published here; leave publicConfig empty",
    "isPublic": "Tasks are not published here; isPublic must be false",
}


def checked_task_body(body: object, *, create: bool) -> dict[str, Any]:
    """The create/update body, every field checked before anything is written."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object: a task with actId, name, options and input.")
    allowed = set(TASK_FIELD_TYPES) if create else set(TASK_FIELD_TYPES) - {"actId"}
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"Unknown task field(s): {', '.join(sorted(unknown))}. "
                           f"Allowed: {', '.join(sorted(allowed))}.")
    for field, types in TASK_FIELD_TYPES.items():
        if field in body and (not isinstance(body[field], types) or (isinstance(body[field], bool)
                                                                     and bool not in types)):
            wanted = " or ".join(JSON_NAMES[t] for t in types)
            raise InvalidInput(f"Task field {field} must be {wanted}, not {JSON_NAMES.get(type(body[field]), 'that')}.")
    for field, message in NOT_SUPPORTED.items():
        if body.get(field):  # {} and false are what apify-client sends when they are not used
            raise InvalidInput(f"{message}.")
    if create and ("actId" not in body or "name" not in body):
        raise InvalidInput("A task needs actId (the actor's id or username~name) and a name, "
                           "for example {\"actId\": \"local~my-actor\", \"name\": \"my-task\"}.")
    return body


class TaskAccess(ApiHandlerMixin):
    def require_manage(self, what: str) -> None:
        """Tasks are the user's: a run token may start them, not read or change them."""
        require(self.principal.may_manage_actors, what)

    def task_view(self, task: Task) -> dict:
        """Blocking (the registry): call it through ``self.call``."""
        return self.views.task(task, self.platform.get_actor(task["actor_id"]),
                               self.platform.tasks.run_count(task["id"]))


class TaskListHandler(TaskAccess):
    async def get(self) -> None:
        self.require_manage("list actor tasks")
        self.reject_unknown_query({"offset", "limit", "desc"})
        offset, limit, desc = self.paging()
        tasks = await self.call(self.platform.list_tasks)
        if desc:
            tasks.reverse()
        page = tasks[offset: offset + limit if limit is not None else None]
        views = await self.call(lambda: [self.task_view(task) for task in page])
        self.send_list(views, total=len(tasks), offset=offset, limit=limit, desc=desc)

    async def post(self) -> None:
        self.require_manage("create actor tasks")
        body = checked_task_body(await self.json_body(default={}), create=True)
        task = await self.call(
            self.platform.create_task, body["actId"], body["name"], options=TaskOptions.parse(body.get("options")),
            input=body.get("input"), title=body.get("title"), description=body.get("description"),
        )
        self.send_data(await self.call(self.task_view, task), 201)


class TaskHandler(TaskAccess):
    async def get(self, task_id: str) -> None:
        self.require_manage("read actor tasks")
        self.send_data(await self.call(self.task_view, await self.call(self.platform.get_task, task_id)))

    async def put(self, task_id: str) -> None:
        """Update: ``options`` fields left out keep their values (apify-client sends only what changes)."""
        self.require_manage("change actor tasks")
        body = checked_task_body(await self.json_body(default={}), create=False)
        task = await self.call(self.platform.get_task, task_id)
        changes: dict[str, Any] = {field: body[field] for field in ("name", "input", "title", "description")
                                   if field in body}
        if body.get("options") is not None:
            changes["options"] = TaskOptions.parse(body["options"], base=TaskOptions.of(task))
        task = await self.call(self.platform.update_task, task["id"], **changes)
        self.send_data(await self.call(self.task_view, task))

    async def delete(self, task_id: str) -> None:
        self.require_manage("delete actor tasks")
        await self.call(self.platform.delete_task, task_id)
        self.set_status(204)
        self.finish()


class TaskInputHandler(TaskAccess):
    """The task's input alone, as Apify serves it: the bare JSON object, no envelope."""

    async def get(self, task_id: str) -> None:
        self.require_manage("read actor tasks")
        self.send_json(await self.call(self.platform.tasks.input, task_id))

    async def put(self, task_id: str) -> None:
        self.require_manage("change actor tasks")
        body = await self.json_body(default=None)
        task = await self.call(self.platform.update_task, task_id, input=body)
        self.send_json(await self.call(self.platform.tasks.input, task["id"]))


class TaskRunsHandler(RunStarting):
    async def post(self, task_id: str) -> None:
        """Start a run of the task: a JSON object body overrides the task input's fields."""
        options = self.start_options()
        wait = self.wait_secs()
        content_type = (self.query("contentType") or self.request.headers.get("Content-Type") or "").lower()
        if content_type and content_type.split(";")[0].strip() != "application/json":
            raise InvalidInput(f"A task run's input must be JSON (Content-Type application/json), "
                               f"not {content_type[:100]!r}: its fields override the task's input.")
        override = await self.json_body(default=None)
        run = await self.call(self.platform.start_task, task_id, input=override, **options)
        await self.send_started(run, wait)

    async def get(self, task_id: str) -> None:
        await self.send_runs(None, task=task_id)
