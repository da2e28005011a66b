"""Deleting what is no longer wanted: finished runs after the retention period, and on request.

A run goes with its default storages, the unnamed storages it created itself, and its log; named
storages stay (Apify's rule), whoever created them. What was
deleted leaves a tombstone, so it answers 404 with a message saying it expired or was deleted.
Images that no build refers to any more are removed from the engine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from pathlib import Path

from .backends.base import Backend
from .clock import iso, utcnow
from .errors import Conflict, NotFound
from .lifecycle import RunStatus
from .models import Actor, Run
from .runlog import run_log_path
from .storages import DATASETS, KEY_VALUE_STORES, REQUEST_QUEUES, StorageKind, Storages
from .stores import Stores, Tombstones

log = logging.getLogger(__name__)


def default_storages(run: Run) -> list[tuple[StorageKind, str]]:
    """A run's default storages as ``(kind, id)``: they go with the run."""
    return [
        (KEY_VALUE_STORES, run["default_key_value_store_id"]),
        (DATASETS, run["default_dataset_id"]),
        (REQUEST_QUEUES, run["default_request_queue_id"]),
    ]


def run_storages(storages: Storages, run: Run) -> list[tuple[StorageKind, str]]:
    """What goes with a run: its defaults and every other unnamed storage it created."""
    own = default_storages(run)
    ids = {storage_id for _, storage_id in own}
    own += [(storage.kind, storage.id) for storage in storages.run_storages(run["id"])
            if storage.created_by_run and storage.name is None and storage.id not in ids]
    return own


def tombstone_message(tombstones: Tombstones, id_: str, what: str, retention_days: float) -> str | None:
    """Why ``id_`` answers 404 (expired or deleted, and when), or None when it never existed."""
    row = tombstones.get(id_)
    if row is None:
        return None
    if row["reason"] == "expired":
        return (f"{what} {id_} expired: it was deleted on {row['deleted_at']} after the data retention period "
                f"of {retention_days:g} days.")
    return f"{what} {id_} was deleted on {row['deleted_at']}."


class Retention:
    def __init__(self, stores: Stores, storages: Storages, backend: Backend, *,
                 logs_dir: Path, retention_days: float, tombstone_retention_days: float = 0.0) -> None:
        self.stores = stores
        self.storages = storages
        self.backend = backend
        self.logs_dir = logs_dir
        self.retention_days = retention_days
        self.tombstone_retention_days = tombstone_retention_days

    def prune_tombstones(self) -> int:
        """Forget deletions older than ``tombstone_retention_days`` (they then answer a plain 404)."""
        days = self.tombstone_retention_days
        if days <= 0:
            return 0
        pruned = self.stores.tombstones.prune(iso(utcnow() - dt.timedelta(days=days)) or "")
        if pruned:
            log.info("retention: forgot %d deletion(s) older than %g days", pruned, days)
        return pruned

    def tombstone_message(self, id_: str, what: str) -> str | None:
        return tombstone_message(self.stores.tombstones, id_, what, self.retention_days)

    def delete_run(self, run: Run, *, reason: str = "deleted") -> None:
        """Delete a finished run, its default storages, the unnamed ones it created and its log; refused for
        an unfinished run."""
        run_id = run["id"]
        if not RunStatus(run["status"]).is_terminal:
            raise Conflict(f"Run {run_id} is {run['status']}; abort it before deleting it.", type="run-not-finished")
        storages = run_storages(self.storages, run)
        for kind, storage_id in storages:
            with contextlib.suppress(NotFound):
                self.storages.delete(kind, storage_id)
        self.stores.runs.delete(run_id, [(str(kind), storage_id) for kind, storage_id in storages], reason)
        self.storages.forget_run(run_id)
        run_log_path(self.logs_dir, run_id).unlink(missing_ok=True)

    def delete_actor(self, actor: Actor) -> None:
        """Delete an actor with its versions, builds, runs and their default storages; refused while it runs."""
        active = set(self.stores.runs.active_ids(actor_id=actor["id"]))
        for build in self.stores.builds.of_actor(actor["id"]):  # runs metamorphed into it run its builds
            active.update(self.stores.runs.active_ids(build_id=build["id"]))
        if active:
            raise Conflict(f"Actor {actor['name']} has {len(active)} unfinished run(s) (its own, or runs metamorphed "
                           "into it); abort them first.")
        for run in self.stores.runs.query(actor["id"]):
            self.delete_run(run)
        images = [b["image"] for b in self.stores.builds.of_actor(actor["id"]) if b["image"]]
        self.stores.actors.delete(actor["id"])
        self.remove_unused_images(images)

    def delete_build(self, build_id: str) -> None:
        """Delete a build (its tags too) and its image when no other build uses that image."""
        build = self.stores.builds.get(build_id)
        in_use = self.stores.runs.active_ids(build_id=build_id)
        if in_use:
            raise Conflict(f"Build {build['build_number']} is used by {len(in_use)} unfinished run(s).")
        self.stores.builds.delete(build_id)
        self.remove_unused_images([build["image"]] if build["image"] else [])

    def remove_unused_images(self, images: list[str]) -> None:
        for image in images:
            if self.stores.builds.image_in_use(image):
                continue
            try:
                self.backend.remove_image(image)
            except Exception:  # an image a container still uses stays; nothing refers to it
                log.warning("could not remove image %s", image)

    def expire_runs(self) -> list[str]:
        """Delete finished runs older than the retention period, and tombstones older than theirs; returns
        the runs' ids."""
        self.prune_tombstones()
        days = self.retention_days
        if days <= 0:
            return []
        cutoff = iso(utcnow() - dt.timedelta(days=days)) or ""
        expired = []
        for run_id in self.stores.runs.finished_before(cutoff):
            run = self.stores.runs.find(run_id)
            if run is None:
                continue  # deleted meanwhile
            try:
                self.delete_run(run, reason="expired")
                expired.append(run_id)
            except (Conflict, NotFound):
                continue  # resurrected or deleted meanwhile
        if expired:
            log.info("retention: deleted %d run(s) older than %g days", len(expired), days)
        return expired
