"""What a request queue is given: a request as a client sent it, checked, and who asks about a lock.

Request IDs are derived from the unique key exactly as the apify SDK derives them, because the SDK
computes IDs on its own side.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..clock import iso, parse_iso
from ..errors import InvalidInput

#: The longest lock granted (a lost client's requests come back within it).
MAX_LOCK_SECS = 24 * 3600
#: Apify's bound on a ``clientKey``.
MAX_CLIENT_KEY_LENGTH = 32

#: The optional request fields clients send (crawlee's Request), with their JSON types: a request is
#: stored as sent, so a wrong type here would come back on every read and break the client.
OPTIONAL_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "userData": (dict, type(None)), "headers": (dict, type(None)), "payload": (str, type(None)),
    "noRetry": (bool, type(None)), "errorMessages": (list, type(None)), "loadedUrl": (str, type(None)),
}
MAX_RETRY_COUNT = 2**63 - 1  # SQLite's INTEGER


def unique_key_to_request_id(unique_key: str) -> str:
    """``base64(sha256(uniqueKey))`` without ``+``, ``/`` and ``=``, first 15 characters.

    The same as ``apify/storage_clients/_apify/_utils.py:unique_key_to_request_id``.
    """
    digest = hashlib.sha256(unique_key.encode("utf-8")).digest()
    encoded = base64.b64encode(digest).decode("ascii")
    return encoded.replace("+", "").replace("/", "").replace("=", "")[:15]


@dataclass(frozen=True)
class Locker:
    """Who asks about a lock. As in Apify, a lock belongs to the ``clientKey`` that took it and, for calls
    made by a run, to that run too (so a restarted run, whose SDK picks a new clientKey, keeps its locks)."""

    client_key: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.client_key is not None and len(self.client_key) > MAX_CLIENT_KEY_LENGTH:
            raise InvalidInput(
                f"clientKey must be 1 to {MAX_CLIENT_KEY_LENGTH} characters long; got {len(self.client_key)}."
            )

    def holds(self, lock_client: str | None, lock_run: str | None) -> bool:
        if self.client_key is not None and lock_client == self.client_key:
            return True
        if self.run_id is not None and lock_run == self.run_id:
            return True
        anonymous = self.client_key is None and self.run_id is None
        return anonymous and lock_client is None and lock_run is None


def lock_seconds(value: Any) -> float:
    """``lockSecs`` checked: a positive number of seconds, at most a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_LOCK_SECS:
        raise InvalidInput(f"lockSecs must be a number of seconds above 0 and at most {MAX_LOCK_SECS}; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class QueuedRequest:
    """A validated request: the indexed columns plus the full JSON body that ``get_request`` returns."""

    id: str
    unique_key: str
    url: str
    method: str
    retry_count: int
    handled_at: str | None
    body: bytes

    @classmethod
    def from_api(cls, raw: Any, *, where: str, request_id: str | None = None) -> QueuedRequest:
        """Check one request as sent by a client; ``request_id`` is the ID from the URL of an update."""
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be a JSON object with at least a 'url'.")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"{where} needs a 'url' string, for example 'https://example.com'.")
        unique_key = raw.get("uniqueKey", url)
        if not isinstance(unique_key, str) or not unique_key:
            raise InvalidInput(f"{where}: 'uniqueKey' must be a non-empty string (it defaults to the URL).")
        method = raw.get("method") or "GET"
        if not isinstance(method, str):
            raise InvalidInput(f"{where}: 'method' must be a string such as 'GET' or 'POST'.")
        retry_count = raw.get("retryCount", 0)
        if isinstance(retry_count, bool) or not isinstance(retry_count, int) or not 0 <= retry_count <= MAX_RETRY_COUNT:
            raise InvalidInput(f"{where}: 'retryCount' must be a whole number of at least 0.")
        for field, types in OPTIONAL_FIELD_TYPES.items():
            value = raw.get(field)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join("null" if t is type(None) else {dict: "an object", list: "an array",
                                    str: "a string", bool: "true or false"}[t] for t in types)
                raise InvalidInput(f"{where}: '{field}' must be {names}.")
        computed_id = unique_key_to_request_id(unique_key)
        if request_id is not None and request_id != computed_id:
            raise InvalidInput(
                f"{where}: request ID '{request_id}' does not belong to uniqueKey {unique_key!r} "
                f"(its ID is '{computed_id}'); IDs are derived from the unique key."
            )
        handled_at = handled_at_of(raw.get("handledAt"), where)
        body = {**raw, "id": computed_id, "uniqueKey": unique_key, "method": method, "retryCount": retry_count,
                "handledAt": handled_at}
        if handled_at is None:  # absent, as Apify serves it: crawlee (JS) rejects a null handledAt
            del body["handledAt"]
        try:
            encoded = orjson.dumps(body)
        except orjson.JSONEncodeError as error:
            raise InvalidInput(f"{where} must be JSON-serialisable: {error}.") from None
        return cls(computed_id, unique_key, url, method, retry_count, handled_at, encoded)


def handled_at_of(value: Any, where: str) -> str | None:
    """None, or the timestamp normalised to ``...T..:..:..mmmZ``; anything unparsable is refused."""
    if value is None:
        return None
    parsed: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    elif isinstance(value, str):
        try:
            parsed = parse_iso(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidInput(
            f"{where}: 'handledAt' must be an ISO 8601 timestamp such as '2024-01-31T12:00:00.000Z' or null."
        )
    return iso(parsed)
