"""The URL table of Apify API v2 as served here, shared by the user-facing and actor-facing servers."""

from __future__ import annotations

from tornado import web

from . import actors_handlers as actors
from . import runs_handlers as runs
from . import storages_handlers as storages
from . import users_handlers as users
from .base import ApiHandlerMixin
from .run_refs import BY_ID, LAST_OF_ACTOR

ID = r"([^/]+)"

#: Everything under a run, whether the path names it by id or as an actor's last run.
_RUN_SUBPATHS: list[tuple[str, type]] = [
    ("", runs.RunHandler),
    ("/abort", runs.RunAbortHandler),
    ("/resurrect", runs.RunResurrectHandler),
    ("/metamorph", runs.RunNotSupportedHandler),
    ("/reboot", runs.RunNotSupportedHandler),
    ("/log", runs.RunLogHandler),
    ("/stats-samples", runs.RunStatsSamplesHandler),
]


def run_routes(prefix: str, run_ref: str) -> list[tuple[str, type, dict]]:
    """A run's own routes and its default storages' routes under ``prefix``."""
    own = [(prefix + sub, handler, {"run_ref": run_ref}) for sub, handler in _RUN_SUBPATHS]
    return own + storages.run_storage_routes(prefix, run_ref)


# (path under /v2, handler mixin, extra kwargs)
ROUTES: list[tuple[str, type, dict]] = [
    (r"/actor-runs", runs.RunListHandler, {}),
    *run_routes(rf"/actor-runs/{ID}", BY_ID),
    (rf"/logs/{ID}", actors.LogHandler, {}),
    (rf"/actor-builds/{ID}", actors.BuildHandler, {}),
    (rf"/actor-builds/{ID}/log", actors.BuildLogHandler, {}),
    (rf"/users/{ID}", users.UserHandler, {}),
]
for _actors in ("actors", "acts"):  # apify-client 3 says actors, older clients and docs say acts
    ROUTES += [
        (rf"/{_actors}", actors.ActorListHandler, {}),
        (rf"/{_actors}/{ID}", actors.ActorHandler, {}),
        (rf"/{_actors}/{ID}/runs", actors.ActorRunsHandler, {}),
        *run_routes(rf"/{_actors}/{ID}/runs/last", LAST_OF_ACTOR),
        (rf"/{_actors}/{ID}/builds", actors.ActorBuildsHandler, {}),
        (rf"/{_actors}/{ID}/validate-input", actors.ValidateInputHandler, {}),
        (rf"/{_actors}/{ID}/versions", actors.ActorVersionsHandler, {}),
        (rf"/{_actors}/{ID}/versions/{ID}", actors.ActorVersionHandler, {}),
    ]
ROUTES += storages.ROUTES


def make_handlers(prefix: str, auth_base: type, namespace: str) -> list[tuple[str, type, dict]]:
    """Concrete tornado handlers: each route's logic mixed with ``auth_base``, mounted under ``prefix``."""
    made: dict[type, type] = {}
    handlers = []
    for path, mixin, kwargs in ROUTES:
        if mixin not in made:
            made[mixin] = type(f"{namespace}{mixin.__name__}", (mixin, auth_base), {})
        handlers.append((prefix.rstrip("/") + "/v2" + path + "/?", made[mixin], kwargs))
    not_found = type(f"{namespace}NotFound", (NotFoundHandlerMixin, auth_base), {})
    handlers.append((prefix.rstrip("/") + "/v2/.*", not_found, {}))
    return handlers


class NotFoundHandlerMixin(ApiHandlerMixin):
    """Unknown paths under /v2 answer 404 in Apify's shape (after authentication)."""

    def _not_found(self, *args: str) -> None:
        raise web.HTTPError(404, "This API endpoint does not exist.")

    get = post = put = delete = head = patch = _not_found
