"""Builds of actor versions: admitted against the memory quota, run in a thread, tagged when they succeed."""

from __future__ import annotations

import threading

from .actors import ActorService
from .builds import BUILD_STATUSES_ACTIVE, Builder
from .changes import BUILD_CREATED, BUILD_FINISHED_EVENTS, Changes
from .errors import InvalidInput, NotFound
from .models import Actor, Build
from .quota import Admission
from .stores import Stores


class BuildService:
    def __init__(self, stores: Stores, actors: ActorService, builder: Builder, admission: Admission,
                 changes: Changes) -> None:
        self.stores = stores
        self.actors = actors
        self.builder = builder
        self.admission = admission
        self.changes = changes

    def build(self, actor: str, *, version: str | None = None, tag: str | None = None, wait: bool = True) -> Build:
        """Build a version (the newest by default); identical source reuses the existing build."""
        actor_row = self.actors.get(actor)
        version_row = self.actors.version(actor_row["id"], version)
        tag = tag or version_row["build_tag"] or "latest"
        self.builder.backend.require_engine()  # refused (503) before a build is recorded while the engine is away
        source_hash = self.builder.source_hash_of(version_row)
        reusable = self.builder.find_reusable(actor_row["id"], version_row["version_number"], source_hash)
        if reusable is not None:
            self.stores.actors.tag(actor_row["id"], tag, reusable["id"])
            return reusable
        with self.admission.lock:
            self.admission.check(self.builder.build_memory_mb, what="build")
            build = self.builder.create_record(actor_row, version_row, source_hash)
            self.admission.hold_build(build["id"], build["memory_mb"])
        self.changes.notify_build(build)
        self.changes.event(BUILD_CREATED, build)

        def run_build() -> None:
            finished = None
            try:
                finished = self.builder.run(actor_row, version_row, build)
                if finished["status"] == "SUCCEEDED":
                    self.stores.actors.tag(actor_row["id"], tag, build["id"])
            finally:
                self.admission.release_build(build["id"])
                self.changes.notify_build(self.get(build["id"]))
            event = BUILD_FINISHED_EVENTS.get(finished["status"])
            if event is not None:
                self.changes.event(event, self.get(build["id"]))

        if wait:
            run_build()
            return self.get(build["id"])
        threading.Thread(target=run_build, name=f"build-{build['id']}", daemon=True).start()
        return build

    def get(self, build_id: str) -> Build:
        return self.stores.builds.get(build_id)

    def wait(self, build_id: str, timeout: float | None = None) -> Build:
        return self.changes.wait_for(lambda: self.get(build_id),
                                     lambda b: b["status"] not in BUILD_STATUSES_ACTIVE, timeout)

    def of_actor(self, actor: str) -> list[Build]:
        return self.stores.builds.of_actor(self.actors.get(actor)["id"])

    def all(self) -> list[Build]:
        """Every build of every actor, oldest first."""
        return self.stores.builds.all()

    def abort(self, build_id: str) -> Build:
        """Stop a running build: it ends ABORTED at its next log line. A finished build stays as it is (Apify)."""
        build = self.get(build_id)
        if build["status"] in BUILD_STATUSES_ACTIVE:
            self.builder.abort(build_id)
        return self.get(build_id)

    def default(self, actor: str) -> Build:
        """The build a run of the actor uses when it names none (its default tag), whatever its status."""
        actor_row = self.actors.get(actor)
        return self._find(actor_row, actor_row["default_build"] or "latest")

    def _find(self, actor_row: Actor, wanted: str) -> Build:
        """A tag (``latest``) or a build number (``0.0.3``) to a build."""
        tags = self.tags(actor_row["id"])
        build_id = tags.get(wanted)
        row = (self.get(build_id) if build_id is not None
               else self.stores.builds.by_number_or_id(actor_row["id"], wanted))
        if row is None:
            raise NotFound(
                f"Actor {actor_row['name']} has no build {wanted!r}; build it first "
                f"(tags: {', '.join(sorted(tags)) or 'none'}).",
                type="record-not-found",
            )
        return row

    def tags(self, actor_id: str) -> dict[str, str]:
        return self.stores.actors.build_tags(actor_id)

    def log(self, build_id: str) -> bytes:
        self.get(build_id)
        path = self.builder.log_path(build_id)
        return path.read_bytes() if path.exists() else b""

    def resolve(self, actor_row: Actor, build: str | None) -> Build:
        """A tag (``latest``) or a build number (``0.0.3``) to a finished build."""
        row = self._find(actor_row, build or actor_row["default_build"] or "latest")
        if row["status"] != "SUCCEEDED":
            raise InvalidInput(f"Build {row['build_number']} of {actor_row['name']} is {row['status']}, not SUCCEEDED.")
        return row
