"""Actors and versions: define actors from source files, build them and start runs (builds themselves
are in ``builds_handlers.py``)."""

from __future__ import annotations

import json
from typing import Any

from ..platform.builds import BUILD_STATUSES_ACTIVE
from ..platform.fields import FieldTypes, checked_fields
from ..platform.errors import InvalidInput
from ..platform.input_schema import invalid_input
from ..platform.models import Actor, Build, Run, Version
from ..platform.sources import ActorDefinition, actor_spec_fields
from .actor_fields import refuse_unsupported_actor_fields
from .base import ApiHandlerMixin
from .principals import require
from .runs_handlers import RunAccess, RunListing
from .webhooks_handlers import decode_ad_hoc

RUN_START_OPTIONS = {
    "webServerPublic",  # ours: the run's container web server is reachable without Jupyter login
    "build", "memory", "timeout", "waitForFinish", "maxItems", "maxTotalChargeUsd", "restartOnError",
    "forcePermissionLevel", "webhooks", "contentType",
}
#: Apify's run options that runs here cannot honour: refused when set, so nothing is silently ignored.
UNSUPPORTED_RUN_OPTIONS = {
    "maxTotalChargeUsd": "maxTotalChargeUsd is not supported here: runs are not charged (leave it unset)",
    "forcePermissionLevel": "forcePermissionLevel is not supported here: no permission levels (leave it unset)",
}


#: Fields of Apify's actor object this API acts on, with their JSON types; other fields are ignored.
ACTOR_FIELD_TYPES: FieldTypes = {"name": str, "title": (str, type(None)), "description": (str, type(None)),
                                 "versions": (list, type(None)), "defaultRunOptions": (dict, type(None)),
                                 "taggedBuilds": (dict, type(None))}
RUN_OPTION_TYPES: FieldTypes = {"build": (str, type(None)), "memoryMbytes": (int, type(None)),
                                "timeoutSecs": (int, type(None))}
VERSION_FIELD_TYPES: FieldTypes = {"versionNumber": str, "buildTag": (str, type(None)),
                                   "envVars": (list, type(None)), "inputSchema": (dict, type(None))}
ENV_VAR_TYPES: FieldTypes = {"name": str, "value": str, "isSecret": bool}
#: The fields of Apify's version update body (apify-client's UpdateVersionRequest).
VERSION_UPDATE_FIELDS = {"versionNumber", "sourceType", "sourceFiles", "envVars", "buildTag", "inputSchema",
                         "applyEnvVarsToBuild", "gitRepoUrl", "tarballUrl", "gitHubGistUrl"}
RUN_OPTION_COLUMNS = {"build": "default_build", "memoryMbytes": "default_memory_mb",
                      "timeoutSecs": "default_timeout_secs"}


def checked_actor_body(body: object, *, require_name: bool = False) -> dict:
    """The create/update body with the fields we use type-checked, before anything is written."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object (an actor with a name and versions).")
    if require_name and not isinstance(body.get("name"), str):
        raise InvalidInput("The body needs a name (a string), "
                           "for example {\"name\": \"my-actor\", \"versions\": [...]}.")
    checked_fields(body, ACTOR_FIELD_TYPES, what="The actor", ignore_unknown=True)
    checked_fields(body.get("defaultRunOptions") or {}, RUN_OPTION_TYPES, what="defaultRunOptions",
                   ignore_unknown=True)
    refuse_unsupported_actor_fields(body)
    return body


def definition_from_body(name: str, body: dict, existing_version: dict | None = None) -> ActorDefinition:
    """Apify's create/update-actor body (``versions`` with ``SOURCE_FILES``) to an ActorDefinition."""
    versions = body.get("versions") or []
    if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
        raise InvalidInput("versions must be a list of version objects.")
    version = versions[-1] if versions else (existing_version or {})
    source_type = version.get("sourceType", "SOURCE_FILES")
    if source_type != "SOURCE_FILES":
        raise InvalidInput(f"sourceType {source_type!r} is not supported here; use SOURCE_FILES with sourceFiles.")
    files = version.get("sourceFiles")
    if not isinstance(files, list) or not files:
        raise InvalidInput("A version needs sourceFiles: a list of {name, format, content} objects.")
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(
                entry.get("content"), str) or entry.get("format", "TEXT") not in ("TEXT", "BASE64"):
            raise InvalidInput("Each source file needs a name, a content string and a format of TEXT or BASE64.")
    checked_fields(version, VERSION_FIELD_TYPES, what="The version", ignore_unknown=True)
    for var in version.get("envVars") or []:
        if not isinstance(var, dict) or not isinstance(var.get("name"), str):
            raise InvalidInput("Each of envVars needs a name: {\"name\": ..., \"value\": ..., \"isSecret\": false}.")
        checked_fields(var, ENV_VAR_TYPES, what="envVars", ignore_unknown=True)
    defaults = body.get("defaultRunOptions") or {}
    # .actor/actor.json among the files counts as for a directory; what the body says explicitly wins.
    fields = actor_spec_fields(files, name)
    fields["name"] = name
    explicit = {
        "version": version.get("versionNumber"), "build_tag": version.get("buildTag"),
        "title": body.get("title"), "description": body.get("description"),
        "input_schema": version.get("inputSchema"), "env_vars": version.get("envVars"),
        "default_memory_mb": defaults.get("memoryMbytes"), "default_timeout_secs": defaults.get("timeoutSecs"),
    }
    fields.update({key: value for key, value in explicit.items() if value is not None})
    fields["version"] = str(fields["version"])
    return ActorDefinition(**fields)


class ActorAccess(ApiHandlerMixin):
    async def readable_actor(self, actor_id: str) -> Actor:
        """The actor, if the caller may read it (a run token: only its own actor)."""
        actor = await self.call(self.platform.get_actor, actor_id)
        require(self.principal.may_read_actor(actor["id"]), f"read actor {actor_id}")
        return actor

    async def readable_build(self, build_id: str) -> Build:
        build = await self.call(self.platform.get_build, build_id)
        require(self.principal.may_read_actor(build["actor_id"]), f"read build {build_id}")
        return build

    def send_builds(self, builds: list[Build]) -> None:
        """A page of ``builds`` (oldest first; newest first with ``desc``)."""
        offset, limit, desc = self.paging()
        if desc:
            builds.reverse()
        page = builds[offset: offset + limit if limit is not None else None]
        self.send_list([self.views.build(b) for b in page], total=len(builds), offset=offset, limit=limit, desc=desc)

    async def send_build(self, build: Build) -> None:
        """The build, once it finished or ``waitForFinish`` seconds passed."""
        wait = self.wait_secs()
        if wait and build["status"] in BUILD_STATUSES_ACTIVE:
            build = await self.call(self.platform.wait_build, build["id"], wait)
        self.send_data(self.views.build(build))

    def actor_view(self, actor: Actor) -> dict[str, Any]:
        """Blocking (the registry): call it through ``self.call``."""
        builds = {build["id"]: build for build in self.platform.list_builds(actor["id"])}
        return self.views.actor(actor, self.platform.versions(actor["id"]), self.platform.build_tags(actor["id"]),
                                builds)


class ActorListHandler(ActorAccess):
    async def get(self) -> None:
        require(self.principal.may_manage_actors, "list actors")
        if self.query("sortBy") not in (None, "createdAt"):
            raise InvalidInput("Query parameter sortBy: only createdAt (the default) is supported here.")
        offset, limit, desc = self.paging()
        actors = await self.call(self.platform.list_actors)
        if desc:
            actors.reverse()
        page = actors[offset: offset + limit if limit is not None else None]
        views = await self.call(lambda: [self.actor_view(a) for a in page])
        self.send_list(views, total=len(actors), offset=offset, limit=limit, desc=desc)

    async def post(self) -> None:
        require(self.principal.may_manage_actors, "create actors")
        body = checked_actor_body(await self.json_body(default={}), require_name=True)
        actor = await self.call(self.platform.create_actor, definition_from_body(body["name"], body))
        self.send_data(await self.call(self.actor_view, actor), 201)


class ActorHandler(ActorAccess):
    async def get(self, actor_id: str) -> None:
        self.send_data(await self.call(self.actor_view, await self.readable_actor(actor_id)))

    async def put(self, actor_id: str) -> None:
        """Update; new versions, the run defaults, a new ``name`` and ``taggedBuilds`` are validated before
        any is written. A rename keeps the id (runs, builds, tasks and webhooks point to it)."""
        require(self.principal.may_manage_actors, "change actors")
        actor = await self.call(self.platform.get_actor, actor_id)
        body = checked_actor_body(await self.json_body(default={}))
        defaults = body.get("defaultRunOptions") or {}
        changes = {RUN_OPTION_COLUMNS[key]: value for key, value in defaults.items() if key in RUN_OPTION_COLUMNS}
        changes.update({field: body[field] for field in ("title", "description") if field in body})
        if body.get("name", actor["name"]) != actor["name"]:
            changes["name"] = body["name"]
        tagged = body.get("taggedBuilds")
        if body.get("versions"):
            await self.call(self.platform.actors.checked_update, actor["id"], tagged_builds=tagged, **changes)
            # One transaction writes the version with the title, description, memory and timeout.
            kept = {"title": actor["title"], "description": actor["description"]}
            actor = await self.call(self.platform.create_actor, definition_from_body(actor["name"], {**kept, **body}))
            changes = {key: value for key, value in changes.items() if key in ("default_build", "name")}
        if changes or tagged:
            actor = await self.call(self.platform.update_actor, actor["id"], tagged_builds=tagged, **changes)
        self.send_data(await self.call(self.actor_view, actor))

    async def delete(self, actor_id: str) -> None:
        require(self.principal.may_manage_actors, "delete actors")
        await self.call(self.platform.delete_actor, actor_id)
        self.set_status(204)
        self.finish()


class StartInput(ApiHandlerMixin):
    async def start_input(self) -> tuple[bytes | bytearray | None, str | None]:
        """The input a start sends (None: none) with its content type (``contentType`` or the header)."""
        body = await self.raw_body()
        if body.strip() in (b"", b"null"):
            return None, None
        return body, self.content_type_header(self.query("contentType") or self.request.headers.get("Content-Type"),
                                              default="application/json; charset=utf-8")


class ValidateInputHandler(StartInput, ActorAccess):
    """``POST /v2/acts/{id}/validate-input``: ``{"valid": true}``, or 400 naming each bad field, as a start would."""

    async def post(self, actor_id: str) -> None:
        self.reject_unknown_query({"build", "contentType"})
        actor = await self.readable_actor(actor_id)
        run_input, content_type = await self.start_input()
        check = await self.call(self.platform.validate_input, actor["id"], run_input, content_type=content_type,
                                build=self.query("build"))
        if not check.valid:
            raise invalid_input(check.errors)
        self.send_json({"valid": True})


class RunMetamorphHandler(StartInput, RunAccess):
    """``POST /v2/actor-runs/{id}/metamorph?targetActorId=...``: the running run becomes a run of the target actor
    with the body as its new input; the run itself (its token) or the user may metamorph it."""

    async def post(self, ref: str) -> None:
        self.reject_unknown_query(self.query_options({"targetActorId", "build", "contentType"}))
        target = self.query("targetActorId")
        if not target:
            raise InvalidInput("targetActorId is required: the id or name of the actor to metamorph the run into.")
        run = await self.load_run(ref, access="update")
        run_input, content_type = await self.start_input()
        run = await self.call(self.platform.metamorph_run, run["id"], target, build=self.query("build"),
                              input=run_input, content_type=content_type)
        self.send_data(await self.call(self.views.run, run))


class RunStarting(StartInput, RunListing):
    """Starting a run of an actor or of a task: the same query options, checked before anything is stored."""

    def start_options(self) -> dict[str, Any]:
        """The platform's start arguments from the query (build, memory, timeout, who starts it)."""
        self.reject_unknown_query(RUN_START_OPTIONS)
        given = {"maxTotalChargeUsd": self.query_float("maxTotalChargeUsd") is not None,
                 "forcePermissionLevel": bool(self.query("forcePermissionLevel"))}
        refused = [name for name in UNSUPPORTED_RUN_OPTIONS if given[name]]
        if refused:
            raise InvalidInput("; ".join(UNSUPPORTED_RUN_OPTIONS[name] for name in refused) + ".")
        web_public = self.query_bool("webServerPublic")
        require(self.principal.may_publish_web or not web_public, "start a run with a public web server")
        encoded = self.query("webhooks")
        return {"build": self.query("build"), "memory_mb": self.query("memory"), "timeout_secs": self.query("timeout"),
                "origin": "ACTOR" if self.principal.run_id else "API", "parent_run_id": self.principal.run_id,
                "web_public": web_public, "webhooks": decode_ad_hoc(encoded) if encoded else [],
                "max_items": self.query_int("maxItems", minimum=1), **self.restart_option()}

    def restart_option(self) -> dict[str, bool]:
        """``restartOnError`` when the query gives it (a task's own option applies otherwise)."""
        return {"restart_on_error": self.query_bool("restartOnError")} if self.query("restartOnError") else {}

    async def send_started(self, run: Run, wait: int) -> None:
        """201 with the run, once it finished or ``waitForFinish`` seconds passed."""
        run = await self.wait_for_finish(run, wait)
        self.send_data(await self.call(self.views.run, run), 201)


class ActorRunsHandler(RunStarting):
    async def post(self, actor_id: str) -> None:
        """Start a run; every option is checked before the platform stores anything."""
        options = self.start_options()
        wait = self.wait_secs()
        run_input, content_type = await self.start_input()
        run = await self.call(self.platform.start_run, actor_id, input=run_input, content_type=content_type,
                              **options)
        await self.send_started(run, wait)

    async def get(self, actor_id: str) -> None:
        await self.send_runs(actor_id)


class ActorBuildsHandler(ActorAccess):
    async def post(self, actor_id: str) -> None:
        require(self.principal.may_manage_actors, "build actors")
        wait = self.wait_secs()
        for option in ("useCache", "betaPackages"):  # Apify's options: identical sources always reuse a build
            self.query_bool(option)
        build = await self.call(
            self.platform.build, actor_id, version=self.query("version"), tag=self.query("tag"), wait=False,
        )
        if wait and build["status"] in BUILD_STATUSES_ACTIVE:
            build = await self.call(self.platform.wait_build, build["id"], wait)
        self.send_data(self.views.build(build), 201)

    async def get(self, actor_id: str) -> None:
        self.send_builds(await self.call(self.platform.list_builds, (await self.readable_actor(actor_id))["id"]))


class ActorVersionsHandler(ActorAccess):
    async def get(self, actor_id: str) -> None:
        versions = await self.call(self.platform.versions, (await self.readable_actor(actor_id))["id"])
        items = [self.views.version(v) for v in versions]
        self.send_data({"total": len(items), "items": items})

    async def post(self, actor_id: str) -> None:
        require(self.principal.may_manage_actors, "change actors")
        actor = await self.call(self.platform.get_actor, actor_id)
        body = await self.json_body(default={})
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a version object.")
        kept = {"title": actor["title"], "description": actor["description"]}
        await self.call(self.platform.create_actor, definition_from_body(actor["name"], {**kept, "versions": [body]}))
        version = await self.call(self.platform.get_version, actor["id"], str(body.get("versionNumber", "0.0")))
        self.send_data(self.views.version(version), 201)


class ActorVersionHandler(ActorAccess):
    async def get(self, actor_id: str, version_number: str) -> None:
        actor = await self.readable_actor(actor_id)
        version = await self.call(self.platform.get_version, actor["id"], version_number)
        self.send_data(self.views.version(version))

    async def put(self, actor_id: str, version_number: str) -> None:
        """Change a version: the fields sent replace the stored ones, the others stay (as apify-client sends)."""
        require(self.principal.may_manage_actors, "change actors")
        actor = await self.call(self.platform.get_actor, actor_id)
        current = await self.call(self.platform.get_version, actor["id"], version_number)
        body = checked_version_update(await self.json_body(default={}), version_number)
        merged = {**stored_version_body(current, keep_schema="sourceFiles" not in body), **body,
                  "versionNumber": version_number}
        if "envVars" in body:
            merged["envVars"] = kept_secret_values(body["envVars"] or [], json.loads(current["env_vars"]))
        kept = {"title": actor["title"], "description": actor["description"]}
        await self.call(self.platform.create_actor, definition_from_body(actor["name"], {**kept, "versions": [merged]}))
        self.send_data(self.views.version(await self.call(self.platform.get_version, actor["id"], version_number)))

    async def delete(self, actor_id: str, version_number: str) -> None:
        """Delete a version (its builds stay); an actor's only version answers 409."""
        require(self.principal.may_manage_actors, "change actors")
        await self.call(self.platform.actors.delete_version, actor_id, version_number)
        self.set_status(204)
        self.finish()


def checked_version_update(body: object, version_number: str) -> dict[str, Any]:
    """A version update body: known fields only, the ones this platform cannot honour refused."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a version object, for example {\"buildTag\": \"beta\"}.")
    unknown = set(body) - VERSION_UPDATE_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown version field(s): {', '.join(sorted(unknown))}; "
                           f"allowed: {', '.join(sorted(VERSION_UPDATE_FIELDS))}.")
    if body.get("versionNumber") not in (None, version_number):
        raise InvalidInput(f"A version's number is fixed ({version_number}); create version "
                           f"{body['versionNumber']} with POST .../versions instead.")
    if body.get("applyEnvVarsToBuild"):
        raise InvalidInput("applyEnvVarsToBuild is not supported here: builds do not see the version's "
                           "environment variables (leave it false).")
    for field in ("gitRepoUrl", "tarballUrl", "gitHubGistUrl"):
        if body.get(field):
            raise InvalidInput(f"{field} is not supported here; use sourceType SOURCE_FILES with sourceFiles.")
    checked_fields(body, VERSION_FIELD_TYPES, what="The version", ignore_unknown=True)
    return {key: value for key, value in body.items()
            if value is not None and key not in ("applyEnvVarsToBuild", "gitRepoUrl", "tarballUrl", "gitHubGistUrl")}


def stored_version_body(version: Version, *, keep_schema: bool) -> dict[str, Any]:
    """A stored version as the version object it was made from (secret values included, never sent).

    ``keep_schema``: carry the stored input schema over (not when new source files bring their own)."""
    body: dict[str, Any] = {"versionNumber": version["version_number"], "sourceType": version["source_type"],
                            "sourceFiles": json.loads(version["source_files"]), "buildTag": version["build_tag"],
                            "envVars": json.loads(version["env_vars"])}
    if keep_schema and version["input_schema"]:
        body["inputSchema"] = json.loads(version["input_schema"])
    return body


def kept_secret_values(sent: list, stored: list[dict[str, Any]]) -> list:
    """A variable sent back without its value (as the API shows a secret one) keeps its stored value;
    a new one needs a value."""
    values = {var["name"]: var.get("value") for var in stored}
    kept = []
    for var in sent:
        if isinstance(var, dict) and var.get("value") is None:
            if var.get("name") not in values:
                raise InvalidInput(f"envVars: {var.get('name')!r} is new, so it needs a value.")
            var = {**var, "value": values[var["name"]]}
        kept.append(var)
    return kept


class ActorEnvVarsHandler(ActorAccess):
    """A version's environment variables; secret ones are listed without their values."""

    async def get(self, actor_id: str, version_number: str) -> None:
        actor = await self.readable_actor(actor_id)
        env_vars = await self.call(self.platform.actors.env_vars, actor["id"], version_number)
        self.send_data({"total": len(env_vars), "items": [self.views.env_var(var) for var in env_vars]})

    async def post(self, actor_id: str, version_number: str) -> None:
        require(self.principal.may_manage_actors, "change actors")
        body = await self.json_body(default=None)
        var = await self.call(self.platform.actors.add_env_var, actor_id, version_number, body)
        self.send_data(self.views.env_var(var), 201)


class ActorEnvVarHandler(ActorAccess):
    async def get(self, actor_id: str, version_number: str, name: str) -> None:
        actor = await self.readable_actor(actor_id)
        var = await self.call(self.platform.actors.env_var, actor["id"], version_number, name)
        self.send_data(self.views.env_var(var))

    async def put(self, actor_id: str, version_number: str, name: str) -> None:
        """Fields left out keep their values (a secret's value need not be sent again)."""
        require(self.principal.may_manage_actors, "change actors")
        body = await self.json_body(default=None)
        var = await self.call(self.platform.actors.update_env_var, actor_id, version_number, name, body)
        self.send_data(self.views.env_var(var))

    async def delete(self, actor_id: str, version_number: str, name: str) -> None:
        require(self.principal.may_manage_actors, "change actors")
        await self.call(self.platform.actors.delete_env_var, actor_id, version_number, name)
        self.set_status(204)
        self.finish()
