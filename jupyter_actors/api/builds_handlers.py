"""Builds over HTTP: one build, all builds, abort, the build's log (also followed live) and its OpenAPI."""

from __future__ import annotations

import json
from typing import Any

from ..platform.builds import BUILD_STATUSES_ACTIVE
from ..platform.errors import NotFound
from ..platform.models import Build, Version
from .actors_handlers import ActorAccess
from .build_openapi import build_openapi
from .principals import require
from .runs_handlers import LogStreaming, RunLogHandler


class BuildListHandler(ActorAccess):
    """``GET /v2/actor-builds``: the user's builds of every actor."""

    async def get(self) -> None:
        require(self.principal.may_manage_actors, "list builds")
        self.reject_unknown_query({"offset", "limit", "desc"})
        self.send_builds(await self.call(self.platform.builds.all))


class BuildHandler(ActorAccess):
    async def get(self, build_id: str) -> None:
        await self.send_build(await self.readable_build(build_id))

    async def delete(self, build_id: str) -> None:
        require(self.principal.may_manage_actors, "delete builds")
        await self.call(self.platform.delete_build, build_id)
        self.set_status(204)
        self.finish()


class BuildAbortHandler(ActorAccess):
    async def post(self, build_id: str) -> None:
        """A running build ends ABORTED (waited for up to ``waitForFinish`` seconds); a finished one is
        answered as it is, unchanged (Apify)."""
        require(self.principal.may_manage_actors, "abort builds")
        build = await self.readable_build(build_id)
        await self.send_build(await self.call(self.platform.builds.abort, build["id"]))


class BuildOpenApiHandler(ActorAccess):
    """``GET /v2/actor-builds/{id}/openapi.json``: an OpenAPI document for running the build's actor."""

    async def get(self, build_id: str) -> None:
        build = await self.readable_build(build_id)
        self.send_json(await self.call(self._document, build))

    def _document(self, build: Build) -> dict[str, Any]:
        try:
            version: Version | None = self.platform.get_version(build["actor_id"], build["version_number"])
        except NotFound:
            version = None  # the built version was deleted since: any JSON object
        schema = json.loads(version["input_schema"]) if version and version["input_schema"] else None
        return build_openapi(self.platform.get_actor(build["actor_id"]), build, schema, self.views.api_url)


class ActorDefaultBuildHandler(ActorAccess):
    """``GET /v2/acts/{id}/builds/default``: the build a run uses when it names none."""

    async def get(self, actor_id: str) -> None:
        actor = await self.readable_actor(actor_id)
        await self.send_build(await self.call(self.platform.builds.default, actor["id"]))


class BuildLogHandler(ActorAccess, LogStreaming):
    """The build's log; with ``stream=true`` the response stays open and follows until the build ends."""

    async def get(self, build_id: str) -> None:
        self.check_log_options()
        await self.send_build_log(await self.readable_build(build_id))

    async def send_build_log(self, build: Build) -> None:
        build_id = build["id"]
        await self.send_log(self.platform.build_log_path(build_id), lambda: self.platform.build_log(build_id),
                            lambda: self.platform.get_build(build_id)["status"] not in BUILD_STATUSES_ACTIVE)


class LogHandler(BuildLogHandler, RunLogHandler):
    """``/v2/logs/{id}``: Apify's one address for the log of a run or of a build."""

    async def get(self, ref: str) -> None:
        self.check_log_options()
        try:
            run = await self.load_run(ref)
        except NotFound as missing:
            try:
                build = await self.readable_build(ref)
            except NotFound:
                raise missing from None  # neither: the run's message (it may say why it is gone)
            await self.send_build_log(build)
            return
        await self.send_run_log(run)
