"""Deleting what is no longer wanted: finished runs after the retention period, and on request.

A run goes with its default storages and its log; named storages stay (Apify's rule). What was
deleted leaves a tombstone, so it answers 404 with a message saying it expired or was deleted.
Images that no build refers to any more are removed from the engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from .clock import iso, now_iso, utcnow
from .errors import Conflict, NotFound
from .lifecycle import RunStatus

if TYPE_CHECKING:
    from .core import Platform

log = logging.getLogger(__name__)

DEFAULT_STORAGES = (
    ("key_value_stores", "default_key_value_store_id"),
    ("datasets", "default_dataset_id"),
    ("request_queues", "default_request_queue_id"),
)


def tombstone_message(platform: Platform, id_: str, what: str) -> str | None:
    row = platform.registry.query_one("SELECT * FROM tombstones WHERE id = ?", (id_,))
    if row is None:
        return None
    if row["reason"] == "expired":
        return (f"{what} {id_} expired: it was deleted on {row['deleted_at']} after the data retention period "
                f"of {platform.config.retention_days:g} days.")
    return f"{what} {id_} was deleted on {row['deleted_at']}."


def delete_run(platform: Platform, run_id: str, *, reason: str = "deleted") -> None:
    """Delete a finished run, its default storages and its log; refused for an unfinished run."""
    run = platform.get_run(run_id)
    if not RunStatus(run["status"]).is_terminal:
        raise Conflict(f"Run {run_id} is {run['status']}; abort it before deleting it.", type="run-not-finished")
    now = now_iso()
    for kind, column in DEFAULT_STORAGES:
        storage_id = run[column]
        try:
            platform.storages.delete(kind, storage_id)
        except NotFound:
            pass
    with platform.registry.transaction() as db:
        for kind, column in DEFAULT_STORAGES:
            db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)", (run[column], kind, reason, now))
        db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'run', ?, ?)", (run_id, reason, now))
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    platform.log_path(run_id).unlink(missing_ok=True)


def delete_build(platform: Platform, build_id: str) -> None:
    """Delete a build (its tags too) and its image when no other build uses that image."""
    build = platform.get_build(build_id)
    in_use = platform.registry.query(
        "SELECT id FROM runs WHERE build_id = ? AND status IN ('READY','RUNNING','TIMING-OUT','ABORTING')", (build_id,)
    )
    if in_use:
        raise Conflict(f"Build {build['build_number']} is used by {len(in_use)} unfinished run(s).")
    with platform.registry.transaction() as db:
        db.execute("DELETE FROM build_tags WHERE build_id = ?", (build_id,))
        db.execute("DELETE FROM builds WHERE id = ?", (build_id,))
        db.execute("INSERT OR REPLACE INTO tombstones VALUES (?, 'build', 'deleted', ?)", (build_id, now_iso()))
    remove_unused_images(platform, [build["image"]] if build["image"] else [])


def remove_unused_images(platform: Platform, images: list[str]) -> None:
    for image in images:
        if platform.registry.query_one("SELECT id FROM builds WHERE image = ?", (image,)):
            continue
        try:
            platform.backend.remove_image(image)
        except Exception:  # noqa: BLE001 - an image a container still uses stays; nothing refers to it
            log.warning("could not remove image %s", image)


def expire_runs(platform: Platform) -> list[str]:
    """Delete finished runs older than the retention period; returns their ids."""
    days = platform.config.retention_days
    if days <= 0:
        return []
    cutoff = iso(utcnow() - dt.timedelta(days=days))
    rows = platform.registry.query(
        "SELECT id FROM runs WHERE status IN ('SUCCEEDED','FAILED','TIMED-OUT','ABORTED') AND finished_at < ?",
        (cutoff,),
    )
    expired = []
    for row in rows:
        try:
            delete_run(platform, row["id"], reason="expired")
            expired.append(row["id"])
        except (Conflict, NotFound):
            continue  # resurrected or deleted meanwhile
    if expired:
        log.info("retention: deleted %d run(s) older than %g days", len(expired), days)
    return expired
