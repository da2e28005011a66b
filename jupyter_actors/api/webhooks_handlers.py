"""Webhooks and their dispatches: ``/v2/webhooks``, ``/v2/webhook-dispatches`` and an actor's webhooks.

The user may do everything; a run token may only add a webhook of its own run (``Actor.add_webhook``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..platform.fields import checked_fields
from ..platform.errors import Conflict, InvalidInput
from ..platform.webhooks.service import WebhookSettings
from .base import ApiHandlerMixin
from .principals import require
from .webhook_views import dispatch_view, webhook_view

_OPTIONAL_STR = (str, type(None))
_OPTIONAL_BOOL = (bool, type(None))
#: The webhook object's writable fields (Apify's create/update body) with their JSON types.
WEBHOOK_FIELDS: dict[str, type | tuple[type, ...]] = {
    "eventTypes": list, "condition": dict, "requestUrl": str, "payloadTemplate": _OPTIONAL_STR,
    "headersTemplate": _OPTIONAL_STR, "description": _OPTIONAL_STR, "isAdHoc": _OPTIONAL_BOOL,
    "ignoreSslErrors": _OPTIONAL_BOOL, "doNotRetry": _OPTIONAL_BOOL, "idempotencyKey": _OPTIONAL_STR,
    "shouldInterpolateStrings": _OPTIONAL_BOOL,
    "isApifyIntegration": _OPTIONAL_BOOL,  # the JavaScript SDK's addWebhook may send it
}
#: The fields of an ad-hoc webhook in a run start's ``webhooks`` (apify-client's WebhookRepresentation).
AD_HOC_FIELDS = {name: WEBHOOK_FIELDS[name] for name in (
    "eventTypes", "requestUrl", "payloadTemplate", "headersTemplate", "description", "ignoreSslErrors",
    "doNotRetry", "idempotencyKey", "shouldInterpolateStrings")}
CONDITION_FIELDS = {"actorId": "actor_id", "actorTaskId": "actor_task_id", "actorRunId": "actor_run_id"}
_COLUMNS = {"eventTypes": "event_types", "requestUrl": "request_url", "payloadTemplate": "payload_template",
            "headersTemplate": "headers_template", "description": "description", "isAdHoc": "is_ad_hoc",
            "ignoreSslErrors": "ignore_ssl_errors", "doNotRetry": "do_not_retry",
            "idempotencyKey": "idempotency_key", "shouldInterpolateStrings": "should_interpolate_strings"}
_FLAGS = {"isAdHoc", "ignoreSslErrors", "doNotRetry", "shouldInterpolateStrings"}


def settings_changes(body: dict, what: str = "") -> dict[str, Any]:
    """A (type-checked) webhook body as WebhookSettings field values; null flags are false."""
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name == "condition":
            checked_fields(value, dict.fromkeys(CONDITION_FIELDS, _OPTIONAL_STR), what=f"{what}condition")
            for field, column in CONDITION_FIELDS.items():
                if value.get(field):
                    changes[column] = value[field]
        elif name == "eventTypes":
            if not all(isinstance(item, str) for item in value):
                raise InvalidInput(f"{what}eventTypes must be a list of event type strings.")
            changes["event_types"] = tuple(value)
        elif name == "isApifyIntegration":
            if value:
                raise InvalidInput(f"{what}isApifyIntegration: Apify's integrations are not available here; "
                                   "leave it out or false.")
        elif name in _FLAGS:
            changes[_COLUMNS[name]] = bool(value)
        else:
            changes[_COLUMNS[name]] = value
    return changes


def decode_ad_hoc(text: str) -> list[WebhookSettings]:
    """The ``webhooks`` query parameter of a run start: base64 of a JSON array of webhook objects."""
    try:
        value = json.loads(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidInput("webhooks must be base64 of a JSON array of webhooks "
                           '([{"eventTypes": [...], "requestUrl": "..."}]), as apify-client sends it.') from None
    if not isinstance(value, list):
        raise InvalidInput("webhooks must be a JSON array of webhooks (base64-encoded).")
    specs = []
    for index, item in enumerate(value):
        checked_fields(item, AD_HOC_FIELDS, what=f"webhooks[{index}]")
        changes = settings_changes(item, f"webhooks[{index}].")
        if "event_types" not in changes or "request_url" not in changes:
            raise InvalidInput(f"webhooks[{index}] needs eventTypes and requestUrl.")
        specs.append(WebhookSettings(**changes))
    return specs


class WebhookAccess(ApiHandlerMixin):
    def webhook_with_stats(self, webhook_id: str) -> dict:
        """Blocking (the registry): call it through ``self.call``."""
        webhook = self.platform.webhooks.get(webhook_id)
        return webhook_view(webhook, *self.platform.webhooks.stats(webhook["id"]))

    async def send_webhooks(self, *, actor: str | None = None, task: str | None = None) -> None:
        """A page of all webhooks, or of those whose condition is ``actor`` or ``task``."""
        require(self.principal.may_manage_webhooks, "list webhooks")
        offset, limit, desc = self.paging()
        webhooks = await self.call(self.platform.webhooks.all, actor=actor, task=task, desc=desc)
        page = webhooks[offset: offset + limit if limit is not None else None]
        views = await self.call(lambda: [webhook_view(w, *self.platform.webhooks.stats(w["id"])) for w in page])
        self.send_list(views, total=len(webhooks), offset=offset, limit=limit, desc=desc)

    async def send_dispatches(self, webhook_id: str | None) -> None:
        require(self.principal.may_manage_webhooks, "list webhook dispatches")
        offset, limit, desc = self.paging()
        dispatches = await self.call(self.platform.webhooks.dispatches, webhook_id=webhook_id, desc=desc)
        page = dispatches[offset: offset + limit if limit is not None else None]
        views = await self.call(lambda: [dispatch_view(d, self.platform.webhooks.get(d["webhook_id"])) for d in page])
        self.send_list(views, total=len(dispatches), offset=offset, limit=limit, desc=desc)


class WebhookListHandler(WebhookAccess):
    async def get(self) -> None:
        await self.send_webhooks()

    async def post(self) -> None:
        """Create; with an ``idempotencyKey`` already used, the existing webhook (200, not 201)."""
        body = await self.json_object(WEBHOOK_FIELDS, required=True)
        for name in ("eventTypes", "condition", "requestUrl"):
            if name not in body:
                raise InvalidInput(f"A webhook needs {name}; it has eventTypes, condition and requestUrl at least.")
        changes = settings_changes(body)
        own_run = self.principal.run_id
        if not self.principal.may_manage_webhooks:
            require(changes.get("actor_run_id") == own_run and not {"actor_id", "actor_task_id"} & set(changes),
                    "add webhooks other than ones of its own run (condition.actorRunId)")
        webhook, created = await self.call(self.platform.webhooks.create, WebhookSettings(**changes))
        if own_run is not None and webhook["actor_run_id"] != own_run:
            raise Conflict("This idempotencyKey belongs to another webhook; use a key of your own.")
        self.send_data(await self.call(self.webhook_with_stats, webhook["id"]), 201 if created else 200)


class WebhookHandler(WebhookAccess):
    async def get(self, webhook_id: str) -> None:
        require(self.principal.may_manage_webhooks, "read webhooks")
        self.send_data(await self.call(self.webhook_with_stats, webhook_id))

    async def put(self, webhook_id: str) -> None:
        require(self.principal.may_manage_webhooks, "change webhooks")
        changes = settings_changes(await self.json_object(WEBHOOK_FIELDS))
        if "idempotency_key" in changes:
            raise InvalidInput("idempotencyKey is fixed when a webhook is created; create another webhook instead.")
        webhook = await self.call(self.platform.webhooks.update, webhook_id, changes)
        self.send_data(await self.call(self.webhook_with_stats, webhook["id"]))

    async def delete(self, webhook_id: str) -> None:
        require(self.principal.may_manage_webhooks, "delete webhooks")
        await self.call(self.platform.webhooks.delete, webhook_id)
        self.set_status(204)
        self.finish()


class WebhookTestHandler(WebhookAccess):
    async def post(self, webhook_id: str) -> None:
        require(self.principal.may_manage_webhooks, "test webhooks")
        dispatch = await self.call(self.platform.webhooks.test, webhook_id)
        webhook = await self.call(self.platform.webhooks.get, webhook_id)
        self.send_data(dispatch_view(dispatch, webhook), 201)


class WebhookDispatchesHandler(WebhookAccess):
    async def get(self, webhook_id: str) -> None:
        await self.send_dispatches(webhook_id)


class DispatchListHandler(WebhookAccess):
    async def get(self) -> None:
        await self.send_dispatches(None)


class DispatchHandler(WebhookAccess):
    async def get(self, dispatch_id: str) -> None:
        require(self.principal.may_manage_webhooks, "read webhook dispatches")
        dispatch = await self.call(self.platform.webhooks.dispatch, dispatch_id)
        webhook = await self.call(self.platform.webhooks.get, dispatch["webhook_id"])
        self.send_data(dispatch_view(dispatch, webhook))


class ActorWebhooksHandler(WebhookAccess):
    async def get(self, actor_id: str) -> None:
        await self.send_webhooks(actor=actor_id)


class TaskWebhooksHandler(WebhookAccess):
    async def get(self, task_id: str) -> None:
        await self.send_webhooks(task=task_id)
