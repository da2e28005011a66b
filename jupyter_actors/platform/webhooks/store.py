"""The SQL of webhooks and their dispatches, returning typed records.

A dispatch is inserted once per webhook and occurrence (``event_key``), so an event told twice (or
replayed) never sends twice; its calls are appended one transaction per attempt.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict, cast

from ..clock import now_iso
from ..models import Build, Run
from ..registry import Registry, dumps

DISPATCH_ACTIVE = "ACTIVE"
DISPATCH_SUCCEEDED = "SUCCEEDED"
DISPATCH_FAILED = "FAILED"


class Webhook(TypedDict):
    id: str
    created_at: str
    modified_at: str
    is_ad_hoc: int
    event_types: str  # JSON list
    actor_id: str | None
    actor_task_id: str | None
    actor_run_id: str | None
    request_url: str
    payload_template: str | None
    headers_template: str | None
    description: str | None
    ignore_ssl_errors: int
    do_not_retry: int
    should_interpolate_strings: int
    idempotency_key: str | None


class Dispatch(TypedDict):
    id: str
    webhook_id: str
    event_key: str
    created_at: str
    status: str
    event_type: str
    event_data: str | None  # JSON object
    payload: str
    headers: str  # JSON object
    calls: str  # JSON list of {startedAt, finishedAt, errorMessage, responseStatus, responseBody}
    next_attempt_at: str | None


class DueDispatch(Dispatch):
    """A dispatch with what sending it needs from its webhook."""

    request_url: str
    ignore_ssl_errors: int
    do_not_retry: int


class WebhookStore:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- webhooks ---------------------------------------------------------------------------------

    def get(self, webhook_id: str) -> Webhook | None:
        return cast("Webhook | None", self.registry.query_one("SELECT * FROM webhooks WHERE id = ?", (webhook_id,)))

    def by_idempotency_key(self, key: str) -> Webhook | None:
        return cast("Webhook | None", self.registry.query_one(
            "SELECT * FROM webhooks WHERE idempotency_key = ?", (key,)))

    def insert(self, webhook: dict[str, Any]) -> Webhook:
        """Insert, or return the webhook that already has this ``idempotency_key``."""
        with self.registry.transaction() as db:
            key = webhook.get("idempotency_key")
            if key is not None:
                existing = db.execute("SELECT * FROM webhooks WHERE idempotency_key = ?", (key,)).fetchone()
                if existing is not None:
                    return cast(Webhook, dict(existing))
            self.registry.insert("webhooks", webhook, db)
        return cast(Webhook, dict(webhook))

    def update(self, webhook_id: str, values: dict[str, Any]) -> None:
        self.registry.update("webhooks", {"id": webhook_id}, {**values, "modified_at": now_iso()})

    def delete(self, webhook_id: str) -> None:
        with self.registry.transaction() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))

    def query(self, *, actor_id: str | None = None, actor_task_id: str | None = None,
              desc: bool = False) -> list[Webhook]:
        conditions = [(column, value) for column, value in (("actor_id", actor_id), ("actor_task_id", actor_task_id))
                      if value is not None]
        where = ("WHERE " + " AND ".join(f"{column} = ?" for column, _ in conditions)) if conditions else ""
        params = [value for _, value in conditions]
        order = "DESC" if desc else "ASC"
        return cast("list[Webhook]", self.registry.query(
            f"SELECT * FROM webhooks {where} ORDER BY created_at {order}, rowid {order}", params))

    def matching(self, *, actor_id: str, run_id: str | None, task_id: str | None = None) -> list[Webhook]:
        """Webhooks whose condition an event of this actor (and run, and the task it was started from) meets."""
        return cast("list[Webhook]", self.registry.query(
            "SELECT * FROM webhooks WHERE actor_id = ? OR (actor_run_id IS NOT NULL AND actor_run_id = ?) "
            "OR (actor_task_id IS NOT NULL AND actor_task_id = ?)", (actor_id, run_id, task_id)))

    # -- dispatches -------------------------------------------------------------------------------

    def add_dispatch(self, dispatch: dict[str, Any]) -> bool:
        """Store a dispatch unless one for the same webhook and occurrence exists; True if stored."""
        with self.registry.transaction() as db:
            columns = ", ".join(dispatch)
            marks = ", ".join("?" for _ in dispatch)
            cursor = db.execute(f"INSERT OR IGNORE INTO webhook_dispatches ({columns}) VALUES ({marks})",
                                list(dispatch.values()))
            return cursor.rowcount == 1

    def dispatch(self, dispatch_id: str) -> Dispatch | None:
        return cast("Dispatch | None", self.registry.query_one(
            "SELECT * FROM webhook_dispatches WHERE id = ?", (dispatch_id,)))

    def dispatches(self, *, webhook_id: str | None = None, desc: bool = False) -> list[Dispatch]:
        where, params = ("WHERE webhook_id = ?", [webhook_id]) if webhook_id is not None else ("", [])
        order = "DESC" if desc else "ASC"
        return cast("list[Dispatch]", self.registry.query(
            f"SELECT * FROM webhook_dispatches {where} ORDER BY created_at {order}, rowid {order}", params))

    def due(self, now: str, *, exclude: set[str], limit: int) -> list[DueDispatch]:
        """ACTIVE dispatches whose next attempt is due, oldest first, with their webhook's delivery settings."""
        rows = self.registry.query(
            "SELECT d.*, w.request_url, w.ignore_ssl_errors, w.do_not_retry FROM webhook_dispatches d "
            "JOIN webhooks w ON w.id = d.webhook_id WHERE d.status = ? AND d.next_attempt_at <= ? "
            "ORDER BY d.next_attempt_at LIMIT ?", (DISPATCH_ACTIVE, now, limit + len(exclude)))
        return cast("list[DueDispatch]", [row for row in rows if row["id"] not in exclude][:limit])

    def next_due(self, *, exclude: set[str]) -> str | None:
        """When the soonest ACTIVE dispatch not in ``exclude`` (being sent) is due."""
        rows = self.registry.query(
            "SELECT id, next_attempt_at FROM webhook_dispatches WHERE status = ? ORDER BY next_attempt_at LIMIT ?",
            (DISPATCH_ACTIVE, len(exclude) + 1))
        return next((row["next_attempt_at"] for row in rows if row["id"] not in exclude), None)

    def record_call(self, dispatch_id: str, call: dict[str, Any], status: str, next_attempt_at: str | None) -> None:
        with self.registry.transaction() as db:
            row = db.execute("SELECT calls FROM webhook_dispatches WHERE id = ?", (dispatch_id,)).fetchone()
            if row is None:
                return  # its webhook was deleted meanwhile
            calls = [*json.loads(row["calls"]), call]
            db.execute("UPDATE webhook_dispatches SET calls = ?, status = ?, next_attempt_at = ? WHERE id = ?",
                       (dumps(calls), status, next_attempt_at, dispatch_id))

    def stats(self, webhook_id: str) -> tuple[int, Dispatch | None]:
        """How many dispatches the webhook has, and its newest."""
        row = self.registry.query_one(
            "SELECT COUNT(*) AS total FROM webhook_dispatches WHERE webhook_id = ?", (webhook_id,))
        last = self.registry.query_one(
            "SELECT * FROM webhook_dispatches WHERE webhook_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (webhook_id,))
        return (int(row["total"]) if row else 0), cast("Dispatch | None", last)

    # -- what changed while no server was alive (read here, as only webhooks replay it) --------------

    def runs_changed_since(self, cutoff: str) -> list[Run]:
        return cast("list[Run]", self.registry.query(
            "SELECT * FROM runs WHERE created_at >= ? OR finished_at >= ? ORDER BY created_at", (cutoff, cutoff)))

    def builds_changed_since(self, cutoff: str) -> list[Build]:
        return cast("list[Build]", self.registry.query(
            "SELECT * FROM builds WHERE started_at >= ? OR finished_at >= ? ORDER BY started_at", (cutoff, cutoff)))
