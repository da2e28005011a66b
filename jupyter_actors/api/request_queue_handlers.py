"""Request queues over HTTP: requests, batches, the head and its locks, as apify-client and crawlee use them."""

from __future__ import annotations

from ..platform.errors import Forbidden, InvalidInput, NotFound
from ..platform.storages import (
    REQUEST_QUEUES,
    unique_key_to_request_id,
)
from .base import MAX_BATCH_REQUESTS
from .storages_handlers import StorageAccess

# -- request queues ----------------------------------------------------------------------------------


class RequestsHandler(StorageAccess):
    kind = REQUEST_QUEUES

    async def get(self, ref: str) -> None:
        meta = await self.storage(ref)
        listing = await self.call(
            self.storages.list_requests, meta["id"], limit=self.query_int("limit"), cursor=self.query("cursor"),
            exclusive_start_id=self.query("exclusiveStartId"), filter=self.query_list("filter"),
            client_key=self.query("clientKey"),
        )
        listing["items"] = [self.views.request(item) for item in listing["items"]]
        self.send_data(listing)

    async def post(self, ref: str) -> None:
        meta = await self.storage(ref)
        body = await self.json_body()
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a request object with at least a url.")
        result = await self.call(
            self.storages.add_requests, meta["id"], [body], forefront=self.query_bool("forefront"),
            client_key=self.query("clientKey"),
        )
        processed = result["processedRequests"]
        self.send_data(processed[0] if processed else result, 201)


class RequestsBatchHandler(StorageAccess):
    kind = REQUEST_QUEUES

    async def post(self, ref: str) -> None:
        meta = await self.storage(ref)
        body = await self.json_body()
        if not isinstance(body, list):
            raise InvalidInput("The body must be a JSON array of request objects.")
        check_batch_size(body)
        result = await self.call(
            self.storages.add_requests, meta["id"], body, forefront=self.query_bool("forefront"),
            client_key=self.query("clientKey"),
        )
        self.send_data(result, 201)

    async def delete(self, ref: str) -> None:
        """Delete by id or uniqueKey. Every entry is checked before any is deleted; deleting a request
        that is not there counts as done (the call is idempotent, as a retried batch needs)."""
        meta = await self.storage(ref)
        body = await self.json_body()
        if not isinstance(body, list) or not all(
            isinstance(entry, dict) and (isinstance(entry.get("id"), str) or isinstance(entry.get("uniqueKey"), str))
            for entry in body
        ):
            raise InvalidInput("The body must be a JSON array of {\"id\": ...} or {\"uniqueKey\": ...} objects.")
        check_batch_size(body)
        processed = [
            {"id": entry.get("id") or unique_key_to_request_id(entry["uniqueKey"]), "uniqueKey": entry.get("uniqueKey")}
            for entry in body
        ]
        refused = await self.call(_delete_requests, self.storages, meta["id"], processed, **self.lock_owner())
        refused_ids = {entry["id"] for entry in refused}
        self.send_data({"processedRequests": [entry for entry in processed if entry["id"] not in refused_ids],
                        "unprocessedRequests": refused})


def check_batch_size(batch: list) -> None:
    if len(batch) > MAX_BATCH_REQUESTS:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH_REQUESTS} requests (as on Apify); this one has "
                           f"{len(batch)}. Send them in several batches. Nothing was changed.")


def _delete_requests(storages, queue_id: str, entries: list[dict], **owner) -> list[dict]:
    """Delete each; the entries refused because another client holds their lock come back."""
    refused = []
    for entry in entries:
        try:
            storages.delete_request(queue_id, entry["id"], **owner)
        except NotFound:
            pass
        except Forbidden:
            request = storages.get_request(queue_id, entry["id"])
            refused.append({key: request[key] for key in ("id", "uniqueKey", "url", "method")})
    return refused


class RequestHandler(StorageAccess):
    kind = REQUEST_QUEUES

    async def get(self, ref: str, request_id: str) -> None:
        meta = await self.storage(ref)
        self.send_data(self.views.request(await self.call(self.storages.get_request, meta["id"], request_id)))

    async def put(self, ref: str, request_id: str) -> None:
        meta = await self.storage(ref)
        body = await self.json_body()
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a request object.")
        result = await self.call(
            self.storages.update_request, meta["id"], request_id, body, forefront=self.query_bool("forefront"),
            **self.lock_owner(),
        )
        self.send_data(result)

    async def delete(self, ref: str, request_id: str) -> None:
        meta = await self.storage(ref)
        await self.call(self.storages.delete_request, meta["id"], request_id, **self.lock_owner())
        self.set_status(204)
        self.finish()


class RequestLockHandler(StorageAccess):
    """``PUT`` prolongs the caller's lock on a request, ``DELETE`` releases it."""

    kind = REQUEST_QUEUES

    async def put(self, ref: str, request_id: str) -> None:
        meta = await self.storage(ref)
        result = await self.call(
            self.storages.prolong_request_lock, meta["id"], request_id, lock_secs=self.required_lock_secs(),
            forefront=self.query_bool("forefront"), **self.lock_owner(),
        )
        self.send_data(result)

    async def delete(self, ref: str, request_id: str) -> None:
        meta = await self.storage(ref)
        await self.call(self.storages.delete_request_lock, meta["id"], request_id,
                        forefront=self.query_bool("forefront"), **self.lock_owner())
        self.set_status(204)
        self.finish()


class UnlockRequestsHandler(StorageAccess):
    kind = REQUEST_QUEUES

    async def post(self, ref: str) -> None:
        meta = await self.storage(ref)
        self.send_data(await self.call(self.storages.unlock_requests, meta["id"], **self.lock_owner()))


class HeadHandler(StorageAccess):
    kind = REQUEST_QUEUES

    async def get(self, ref: str) -> None:
        meta = await self.storage(ref)
        head = await self.call(self.storages.list_head, meta["id"], limit=self.query_int("limit", 100),
                               client_key=self.query("clientKey"))
        self.send_data(head)


class HeadLockHandler(StorageAccess):
    """``POST .../head/lock``: the first available requests, locked for ``lockSecs`` to this client."""

    kind = REQUEST_QUEUES

    async def post(self, ref: str) -> None:
        meta = await self.storage(ref)
        head = await self.call(self.storages.lock_head, meta["id"], lock_secs=self.required_lock_secs(),
                               limit=self.query_int("limit", minimum=1), **self.lock_owner())
        self.send_data(head)
