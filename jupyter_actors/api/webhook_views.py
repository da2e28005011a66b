"""Webhook and dispatch records turned into Apify's JSON objects."""

from __future__ import annotations

import json

from ..platform.models import USERNAME
from ..platform.webhooks.store import DISPATCH_ACTIVE, Dispatch, Webhook


def condition(webhook: Webhook) -> dict:
    pairs = (("actorId", webhook["actor_id"]), ("actorTaskId", webhook["actor_task_id"]),
             ("actorRunId", webhook["actor_run_id"]))
    return {name: value for name, value in pairs if value}


def webhook_view(webhook: Webhook, total: int, last: Dispatch | None) -> dict:
    """``total`` and ``last``: the webhook's dispatch count and newest dispatch (``WebhookService.stats``)."""
    last_dispatch = None
    if last is not None:
        calls = json.loads(last["calls"])
        finished = calls[-1].get("finishedAt") if calls and last["status"] != DISPATCH_ACTIVE else None
        last_dispatch = {"status": last["status"], "finishedAt": finished}
    return {
        "id": webhook["id"],
        "createdAt": webhook["created_at"],
        "modifiedAt": webhook["modified_at"],
        "userId": USERNAME,
        "isAdHoc": bool(webhook["is_ad_hoc"]),
        "isApifyIntegration": False,
        "actionType": "HTTP_REQUEST",
        "shouldInterpolateStrings": bool(webhook["should_interpolate_strings"]),
        "eventTypes": json.loads(webhook["event_types"]),
        "condition": condition(webhook),
        "ignoreSslErrors": bool(webhook["ignore_ssl_errors"]),
        "doNotRetry": bool(webhook["do_not_retry"]),
        "requestUrl": webhook["request_url"],
        "payloadTemplate": webhook["payload_template"],
        "headersTemplate": webhook["headers_template"],
        "description": webhook["description"],
        "idempotencyKey": webhook["idempotency_key"],
        "lastDispatch": last_dispatch,
        "stats": {"totalDispatches": total},
    }


def dispatch_view(dispatch: Dispatch, webhook: Webhook) -> dict:
    return {
        "id": dispatch["id"],
        "userId": USERNAME,
        "webhookId": dispatch["webhook_id"],
        "createdAt": dispatch["created_at"],
        "status": dispatch["status"],
        "eventType": dispatch["event_type"],
        "eventData": json.loads(dispatch["event_data"]) if dispatch["event_data"] else None,
        "calls": json.loads(dispatch["calls"]),
        "webhook": {"actionType": "HTTP_REQUEST", "requestUrl": webhook["request_url"],
                    "isAdHoc": bool(webhook["is_ad_hoc"]), "condition": condition(webhook)},
    }
