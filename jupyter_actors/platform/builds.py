"""Builds: a version of an actor's source turned into a Docker image, numbered and tagged as Apify does.

Build numbers are ``<version>.<n>`` (0.0.1, 0.0.2, ...); identical source on the same base image
reuses the existing image instead of building again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from . import sources
from .clock import now_iso
from .backends.base import Backend
from .errors import BuildFailed, PlatformError
from .from_images import FromResolver
from .ids import new_id
from .lifecycle import LABEL_BUILD, LABEL_INSTANCE
from .models import Actor, Build, Version
from .stores import BuildStore

BUILD_STATUSES_ACTIVE = ("READY", "RUNNING")
#: Host proxy settings passed to builds, as the docker CLI does from its config.
PROXY_BUILD_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class BuildAborted(Exception):
    """Raised from a build's log callback once its abort was asked: it unwinds the engine's build stream
    (closing it cancels the engine's build)."""


def image_name(instance_id: str, actor_name: str, build_number: str) -> str:
    return f"jupyter-actors-{instance_id}/{actor_name}:{build_number}"


class Builder:
    """Runs one build at a time per call; the platform decides whether that happens in a thread."""

    def __init__(self, store: BuildStore, backend: Backend, instance_id: str, logs_dir: Path, *,
                 base_image: str, build_memory_mb: int, download_wheels: Callable[..., Any] | None,
                 push_to: str | None = None, network: bool = True,
                 base_image_map: dict[str, str] | None = None) -> None:
        self.store = store
        self.backend = backend
        self.instance_id = instance_id
        self.logs_dir = logs_dir
        self.base_image = base_image
        self.build_memory_mb = build_memory_mb
        self.download_wheels = download_wheels
        #: Registry every built image is pushed to, for cluster nodes to pull (None: keep it local).
        self.push_to = push_to.rstrip("/") if push_to else None
        #: Builds reach the network (the build_network setting).
        self.network = network
        #: FROM repository -> local equivalent, for images the engine cannot pull (see from_images).
        self.base_image_map = dict(base_image_map or {})
        #: Builds asked to stop: they end ABORTED at their next log line.
        self.aborting: set[str] = set()

    def abort(self, build_id: str) -> None:
        self.aborting.add(build_id)

    def _unused_image_name(self, actor_name: str, build: Build) -> str:
        """``name:number``, or ``name:number-buildid`` when a build of another actor holds that image (an actor
        renamed away from this name keeps its images), so a build never retags an image another build runs."""
        tag = image_name(self.instance_id, actor_name, build["build_number"])
        if any(self.store.image_in_use(image) for image in (tag, f"{self.push_to}/{tag}" if self.push_to else tag)):
            tag = image_name(self.instance_id, actor_name, f"{build['build_number']}-{build['id']}")
        return tag

    def log_path(self, build_id: str) -> Path:
        return self.logs_dir / f"build-{build_id}.log"

    def find_reusable(self, actor_id: str, version: str, source_hash: str) -> Build | None:
        for row in self.store.succeeded_with_source(actor_id, version, source_hash):
            if row["image"] and self.backend.image_exists(row["image"]):
                return row
        return None

    def source_hash_of(self, version_row: Version) -> str:
        # The images a build may start FROM: a new one of them means a new build, not a reused one.
        bases = [self.base_image, *sorted(set(self.base_image_map.values()))]
        base_id = ",".join(self.backend.image_id(b) if self.backend.image_exists(b) else b for b in bases)
        return sources.source_hash(json.loads(version_row["source_files"]), version_row["dockerfile"], base_id)

    def create_record(self, actor: Actor, version_row: Version, source_hash: str) -> Build:
        return self.store.create({
            "id": new_id(),
            "actor_id": actor["id"],
            "version_number": version_row["version_number"],
            "status": "RUNNING",
            "status_message": None,
            "source_hash": source_hash,
            "image": None,
            "memory_mb": self.build_memory_mb,
            "started_at": now_iso(),
            "finished_at": None,
        })

    def run(self, actor: Actor, version_row: Version, build: Build) -> Build:
        """Build the image for ``build`` (a RUNNING record); returns the finished record."""
        log_path = self.log_path(build["id"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log_file:

            def write(line: str) -> None:
                log_file.write(f"{now_iso()} {line}\n")
                log_file.flush()

            def on_log(line: str) -> None:
                if build["id"] in self.aborting:
                    raise BuildAborted
                write(line)

            values: dict[str, Any]
            try:
                image_id = self._build(actor, version_row, build, on_log)
                values = {"status": "SUCCEEDED", "image": image_id, "status_message": "Build finished"}
            except BuildAborted:
                write("The build was aborted")
                values = {"status": "ABORTED", "status_message": "The build was aborted"}
            except PlatformError as exc:
                values = {"status": "FAILED", "status_message": exc.message}
            except Exception as exc:  # a build failure must be recorded, whatever it was
                on_log(f"Build failed: {exc}")
                values = {"status": "FAILED", "status_message": f"Build failed: {exc}"}
        self.aborting.discard(build["id"])
        values["finished_at"] = now_iso()
        self.store.update(build["id"], values)
        return cast(Build, {**build, **values})

    def _build(self, actor: Actor, version_row: Version, build: Build, on_log: Callable[[str], None]) -> str:
        files = json.loads(version_row["source_files"])
        names = {entry["name"] for entry in files}
        with tempfile.TemporaryDirectory(prefix="jupyter-actors-build-") as tmp:
            context = Path(tmp)
            sources.write_files(files, context)
            generated = version_row["dockerfile"] is None
            dockerfile = version_row["dockerfile"] or ".jupyter-actors.Dockerfile"
            if generated:
                (context / dockerfile).write_text(sources.generated_dockerfile(names))
            buildargs = {"BASE_IMAGE": self.base_image}
            if self.network:  # a company proxy the host uses: Docker's predefined args, kept out of the image
                buildargs.update({key: os.environ[key] for key in PROXY_BUILD_ARGS if os.environ.get(key)})
            text = (context / dockerfile).read_text(errors="replace")
            uses_base = generated or "BASE_IMAGE" in text
            if uses_base and not self.backend.image_exists(self.base_image):
                raise BuildFailed(
                    f"The base image {self.base_image} does not exist. Run `jupyter-actors setup` to build it "
                    "(or `docker pull` it if you configured a registry image)."
                )
            if "requirements.txt" in names and self.download_wheels is not None and (
                    generated or sources.WHEELS_DIR in text):
                on_log("Downloading Python packages on the host for an offline install")
                self.download_wheels(context / "requirements.txt", context / sources.WHEELS_DIR, log=on_log)
            resolved = FromResolver(self.backend, self.base_image_map, on_log).resolve(text, buildargs)
            if resolved is not None:  # the user's Dockerfile stays as it is in the context
                dockerfile = ".jupyter-actors.Dockerfile"
                (context / dockerfile).write_text(resolved)
            if not self.network:
                on_log("Building without network (build_network is off)")
            tag = self._unused_image_name(actor["name"], build)
            on_log(f"Building image {tag}" + (f" from {self.base_image}" if uses_base else f" with {dockerfile}"))
            image_id = self.backend.build_image(
                str(context),
                tag=tag,
                dockerfile=dockerfile,
                memory_mb=self.build_memory_mb,
                buildargs=buildargs,
                labels={LABEL_INSTANCE: self.instance_id, LABEL_BUILD: build["id"]},
                on_log=on_log,
                network=self.network,
            )
            on_log(f"Built image {image_id}")
            if self.push_to:
                on_log(f"Pushing {tag} to {self.push_to}")
                try:
                    tag = self.backend.push_image(tag, f"{self.push_to}/{tag}")
                except Exception as exc:  # the engine's message says what is wrong
                    raise BuildFailed(f"The image was built but could not be pushed to {self.push_to}: {exc}") from None
                on_log(f"Pushed {tag}")
            return tag
