"""The URL table of Apify API v2 as served here, shared by the user-facing and actor-facing servers.

The table names each route's logic class; each server mounts it with its own concrete handlers (the
logic behind its auth), declared in ``api/run_token_handlers.py`` and ``server/user_handlers.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado import web

from . import actors_handlers as actors
from . import builds_handlers as builds
from . import runs_handlers as runs
from . import schedules_handlers as schedules
from . import storage_routes as storages
from . import tasks_handlers as tasks
from . import unsupported_handlers as unsupported
from . import users_handlers as users
from . import webhooks_handlers as webhooks
from .base import ApiHandlerMixin, Route
from .run_refs import BY_ID, LAST_OF_ACTOR, LAST_OF_TASK

ID = r"([^/]+)"

#: Everything under a run, whether the path names it by id or as an actor's last run.
_RUN_SUBPATHS: list[tuple[str, type[ApiHandlerMixin]]] = [
    ("", runs.RunHandler),
    ("/abort", runs.RunAbortHandler),
    ("/resurrect", runs.RunResurrectHandler),
    ("/metamorph", actors.RunMetamorphHandler),
    ("/reboot", runs.RunRebootHandler),
    ("/log", runs.RunLogHandler),
    ("/stats-samples", runs.RunStatsSamplesHandler),
    ("/charge", unsupported.RunChargeHandler),
]


def run_routes(prefix: str, run_ref: str) -> list[Route]:
    """A run's own routes and its default storages' routes under ``prefix``."""
    own: list[Route] = [(prefix + sub, handler, {"run_ref": run_ref}) for sub, handler in _RUN_SUBPATHS]
    return own + storages.run_storage_routes(prefix, run_ref)


# (path under /v2, the route's logic, extra kwargs)
ROUTES: list[Route] = [
    (r"/actor-runs", runs.RunListHandler, {}),
    *run_routes(rf"/actor-runs/{ID}", BY_ID),
    (rf"/logs/{ID}", builds.LogHandler, {}),
    (r"/actor-builds", builds.BuildListHandler, {}),
    (rf"/actor-builds/{ID}", builds.BuildHandler, {}),
    (rf"/actor-builds/{ID}/abort", builds.BuildAbortHandler, {}),
    (rf"/actor-builds/{ID}/openapi.json", builds.BuildOpenApiHandler, {}),
    (rf"/actor-builds/{ID}/log", builds.BuildLogHandler, {}),
    (rf"/users/{ID}", users.UserHandler, {}),
    (rf"/users/{ID}/limits", users.UserLimitsHandler, {}),
    (rf"/users/{ID}/usage/monthly", users.UserMonthlyUsageHandler, {}),
    (r"/actor-tasks", tasks.TaskListHandler, {}),
    (rf"/actor-tasks/{ID}", tasks.TaskHandler, {}),
    (rf"/actor-tasks/{ID}/input", tasks.TaskInputHandler, {}),
    (rf"/actor-tasks/{ID}/runs", tasks.TaskRunsHandler, {}),
    (rf"/actor-tasks/{ID}/webhooks", webhooks.TaskWebhooksHandler, {}),
    *run_routes(rf"/actor-tasks/{ID}/runs/last", LAST_OF_TASK),
    (r"/schedules", schedules.ScheduleListHandler, {}),
    (rf"/schedules/{ID}", schedules.ScheduleHandler, {}),
    (rf"/schedules/{ID}/log", schedules.ScheduleLogHandler, {}),
    (r"/webhooks", webhooks.WebhookListHandler, {}),
    (rf"/webhooks/{ID}", webhooks.WebhookHandler, {}),
    (rf"/webhooks/{ID}/test", webhooks.WebhookTestHandler, {}),
    (rf"/webhooks/{ID}/dispatches", webhooks.WebhookDispatchesHandler, {}),
    (r"/webhook-dispatches", webhooks.DispatchListHandler, {}),
    (r"/store", unsupported.StoreHandler, {}),
    (rf"/webhook-dispatches/{ID}", webhooks.DispatchHandler, {}),
]
for _actors in ("actors", "acts"):  # apify-client 3 says actors, older clients and docs say acts
    ROUTES += [
        (rf"/{_actors}", actors.ActorListHandler, {}),
        (rf"/{_actors}/{ID}", actors.ActorHandler, {}),
        (rf"/{_actors}/{ID}/runs", actors.ActorRunsHandler, {}),
        *run_routes(rf"/{_actors}/{ID}/runs/last", LAST_OF_ACTOR),
        (rf"/{_actors}/{ID}/builds", actors.ActorBuildsHandler, {}),
        (rf"/{_actors}/{ID}/builds/default", builds.ActorDefaultBuildHandler, {}),
        (rf"/{_actors}/{ID}/validate-input", actors.ValidateInputHandler, {}),
        (rf"/{_actors}/{ID}/versions", actors.ActorVersionsHandler, {}),
        (rf"/{_actors}/{ID}/versions/{ID}", actors.ActorVersionHandler, {}),
        (rf"/{_actors}/{ID}/versions/{ID}/env-vars", actors.ActorEnvVarsHandler, {}),
        (rf"/{_actors}/{ID}/versions/{ID}/env-vars/{ID}", actors.ActorEnvVarHandler, {}),
        (rf"/{_actors}/{ID}/webhooks", webhooks.ActorWebhooksHandler, {}),
    ]
ROUTES += storages.ROUTES


class NotFoundHandlerMixin(ApiHandlerMixin):
    """Unknown paths under /v2 answer 404 in Apify's shape (after authentication)."""

    def _not_found(self, *args: str) -> None:
        raise web.HTTPError(404, "This API endpoint does not exist.")

    get = post = put = delete = head = patch = _not_found


#: A server's concrete handlers by the logic class each one serves.
HandlerTable = Mapping[type[ApiHandlerMixin], type[ApiHandlerMixin]]


def handler_table(namespace: Mapping[str, Any], auth_base: type[web.RequestHandler]) -> HandlerTable:
    """The concrete handlers a module declares (its classes that put a route's logic behind ``auth_base``),
    keyed by their first base, the route logic: declaring the class is all a new route needs."""
    return {value.__bases__[0]: value for value in namespace.values()
            if isinstance(value, type) and issubclass(value, ApiHandlerMixin) and auth_base in value.__bases__}


def make_handlers(prefix: str, table: HandlerTable) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The tornado rules of every route mounted under ``prefix``, with the server's concrete handlers."""

    def concrete(logic: type[ApiHandlerMixin]) -> type[ApiHandlerMixin]:
        if logic not in table:
            raise LookupError(f"{logic.__module__}.{logic.__name__} has a route but no concrete handler here: "
                              "declare one in api/run_token_handlers.py and in server/user_handlers.py.")
        return table[logic]

    base = prefix.rstrip("/") + "/v2"
    handlers: list[tuple[str, type[web.RequestHandler], dict[str, Any]]] = [
        (base + path + "/?", concrete(logic), kwargs) for path, logic, kwargs in ROUTES]
    handlers.append((base + "/.*", concrete(NotFoundHandlerMixin), {}))
    return handlers
