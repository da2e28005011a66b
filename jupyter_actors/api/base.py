"""What every API handler shares: errors in Apify's shape, body decoding, the data envelope.

Over 400 lines on purpose: it is the one base every handler shares (errors, bodies, queries, envelopes);
splitting it would scatter the wire rules.

Handlers here only translate HTTP to calls on the platform. Each route's logic class is combined with
an auth base into a concrete handler: per-run tokens for actors (``run_token_handlers.py``), Jupyter's
auth for the user (``server/user_handlers.py``); ``routes.py`` maps the URLs to them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import zlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeAlias, TypeVar, overload

import brotli
import orjson
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream
from tornado.log import app_log

from ..platform.core import Platform
from ..platform.fields import checked_fields
from ..platform.errors import InvalidInput, NotFound, PlatformError, disk_full
from ..platform.storages import MAX_RECORD_BYTES
from . import calls
from .principals import Principal
from .views import Views

T = TypeVar("T")

_TYPE_BY_STATUS = {
    400: "invalid-input", 401: "token-not-provided", 403: "insufficient-permissions",
    404: "page-not-found", 405: "method-not-allowed", 409: "conflict", 413: "request-too-large",
}
#: The largest request body accepted (413 beyond), also after decompression: the record cap, so the
#: biggest record fits and no endpoint ever holds more than that of one request in memory.
MAX_BODY_BYTES = MAX_RECORD_BYTES
#: Bodies up to this size are read and discarded before the 413; past it the connection is dropped.
MAX_DRAINED_BODY_BYTES = 4 * MAX_RECORD_BYTES
#: A run token's cap on every body but a record's: Apify's own payload limit (its clients and SDKs
#: split pushes and batches to fit), so one run cannot make the server parse 100 MiB of JSON.
MAX_RUN_BODY_BYTES = 9 * 1024 * 1024
#: Apify's cap on requests per batch add or delete (its clients send batches of at most 25): a batch
#: is one write transaction on the queue, which blocks its other writers while it lasts.
MAX_BATCH_REQUESTS = 25
#: Apify's platform cap on ``waitForFinish``; the clients loop for longer waits.
MAX_WAIT_SECS = 60
MAX_CONTENT_TYPE_CHARS = 255
#: An upload gives the event loop back after each this many bytes (a few of tornado's 64 KiB reads).
YIELD_EVERY_BYTES = 256 * 1024
#: Put before Jupyter's policy on every API response: records, items, logs and listings hold bytes an
#: actor wrote, so a browser that opens one on Jupyter's origin must give it an opaque origin and no
#: scripts (never ``allow-same-origin``). The first ``sandbox`` directive wins over any later one.
SANDBOX_POLICY = "sandbox"
#: The largest integer a query parameter may carry: SQLite's and orjson's 64-bit signed range.
MAX_QUERY_INT = 2**63 - 1
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}  # not "": "?attachment=" is a typo, not a choice


class ApiHandlerMixin(web.RequestHandler):
    """A route's logic, mixed with an auth base into the concrete handlers (``api/run_token_handlers.py``
    for actors, ``server/user_handlers.py`` for the user); ``principal`` is set by the auth base's prepare.

    A RequestHandler itself so that type checkers and readers see what ``self`` offers; it comes first
    in a concrete handler's bases, so its ``prepare`` runs the auth base's through ``super()``.
    """

    principal: Principal

    # -- context ----------------------------------------------------------------------------------

    @property
    def platform(self) -> Platform:
        return self.settings["jupyter_actors_platform"]

    @property
    def views(self) -> Views:
        return self.settings["jupyter_actors_views"]

    @property
    def run_events(self):
        return self.settings["jupyter_actors_run_events"]

    async def call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking platform call off the event loop (an actor's in the actors' pool, within its run's share)."""
        actor_calls = self.settings.get("jupyter_actors_actor_calls")
        try:
            return await calls.call(self.principal.run_id, actor_calls, function, *args, **kwargs)
        except (OSError, sqlite3.OperationalError) as exc:  # a full disk is an answer (507), not a crash
            full = disk_full(exc)
            if full is None:
                raise
            raise full from exc

    async def children(self) -> set[str]:
        """Runs the calling run started (it may read them and their storages); none for the user."""
        if self.principal.run_id is None:
            return set()
        return await self.call(self.platform.child_run_ids, self.principal.run_id)

    def set_default_headers(self) -> None:
        """Every response, errors included (tornado re-applies these on ``clear``): sandboxed and unsniffed."""
        super().set_default_headers()
        jupyter_policy = getattr(self, "content_security_policy", None)  # the user API's; none on the actor API
        self.set_header(
            "Content-Security-Policy", f"{SANDBOX_POLICY}; {jupyter_policy}" if jupyter_policy else SANDBOX_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")

    def client_stream(self) -> IOStream | None:
        """The client's socket, to tell a client that went away from a quiet one."""
        connection = self.request.connection
        return connection.stream if isinstance(connection, HTTP1Connection) else None

    # -- errors -----------------------------------------------------------------------------------

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        """Refusals (PlatformError, HTTPError) are answers, not crashes: log them without a traceback."""
        if isinstance(value, (PlatformError, web.HTTPError)):
            status = value.status if isinstance(value, PlatformError) else value.status_code
            if status >= 500:
                app_log.warning("%s %s: %s", self.request.method, self.request.path, value)
            return
        # Not tornado's message: it prints the full URI, and ``?token=`` may be a credential.
        app_log.error("Uncaught exception in %s %s", self.request.method, self.request.path, exc_info=value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        data = None
        if isinstance(exc, PlatformError):
            status_code, error_type, message, data = exc.status, exc.type, exc.message, exc.data
        elif isinstance(exc, web.HTTPError):
            status_code = exc.status_code
            error_type = _TYPE_BY_STATUS.get(status_code, "http-error")
            message = exc.log_message % exc.args if exc.log_message and exc.args else (
                exc.log_message or exc.reason or self._reason)
        else:
            error_type, message = "internal-server-error", "The server failed to process the request; see its log."
        self.set_status(status_code)
        if status_code == 405:  # RFC 9110: a 405 names the methods the resource has
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        if getattr(self, "_refused_unread", False):
            # Refused in prepare, before the body was read: tornado will close the connection after
            # this answer, so say so, or a keep-alive client races its next request into the close.
            self.set_header("Connection", "close")
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        error = {"type": error_type, "message": message, **({"data": data} if data is not None else {})}
        self.finish(json.dumps({"error": error}))

    # -- request ----------------------------------------------------------------------------------

    # Bodies are streamed in (tornado calls ``prepare`` before reading them), so an oversized body is
    # refused in Apify's error shape instead of tornado's bare "Content-Length too long" disconnect.
    _stream_request_body = True

    async def prepare(self, **auth_options: Any) -> None:
        """Authenticate (the auth base, with its options: Jupyter's takes ``_redirect_to_login``), then
        size up the body before tornado reads it.

        A body over MAX_BODY_BYTES is read and thrown away, then refused with 413 by ``raw_body``:
        answering before the upload ends would close the connection under the client, which then
        often sees a reset instead of the answer. Only a body too big even to drain is refused at once.
        """
        self._refused_unread = True  # until the body is accepted for reading (see write_error)
        authenticated = super().prepare(**auth_options)
        if authenticated is not None:
            await authenticated
        self._body = bytearray()
        self._body_overflow = False
        self.body_cap = self.body_limit()
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            if not is_ascii_digits(declared.strip()):
                raise InvalidInput(f"Content-Length {declared!r} is not a number of bytes.")
            if int(declared) > MAX_DRAINED_BODY_BYTES:
                raise body_too_large(int(declared), self.body_cap)
            self._body_overflow = int(declared) > self.body_cap
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):  # the only kind tornado's HTTPServer makes
            connection.set_max_body_size(MAX_DRAINED_BODY_BYTES)
        self._refused_unread = False
        self._unyielded = 0
        self._budget_held = await self.settings["jupyter_actors_body_budget"].acquire(self.body_memory(declared))

    def body_memory(self, declared: str | None) -> int:
        """Bytes this request's body will hold in memory: as sent, plus up to the cap when it is inflated."""
        headers = self.request.headers
        if self._body_overflow or (declared is None and "Transfer-Encoding" not in headers):
            return 0  # drained and refused, or no body at all
        size = min(int(declared), self.body_cap) if declared is not None else self.body_cap
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        return size + (self.body_cap if encoding not in ("", "identity") else 0)

    def _release_body_memory(self) -> None:
        held, self._budget_held = getattr(self, "_budget_held", 0), 0
        if held:
            self.settings["jupyter_actors_body_budget"].release(held)

    def on_finish(self) -> None:
        self._release_body_memory()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._release_body_memory()
        super().on_connection_close()

    #: Whether a run token may send a body up to MAX_BODY_BYTES here (records), not MAX_RUN_BODY_BYTES.
    large_bodies_for_runs = False

    def body_limit(self) -> int:
        """The user's bodies may be MAX_BODY_BYTES; a run's only where it stores bytes as they are."""
        principal = getattr(self, "principal", None)
        if principal is None or principal.run_id is None or self.large_bodies_for_runs:
            return MAX_BODY_BYTES
        return MAX_RUN_BODY_BYTES

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._body_overflow or len(self._body) + len(chunk) > self.body_cap:
            self._body_overflow = True
            self._body = bytearray()
        else:
            self._body += chunk
        # Tornado reads an upload that keeps arriving without ever giving the loop back: Jupyter's loop
        # would serve nothing else until the last byte. An awaitable returned here makes it yield.
        self._unyielded += len(chunk)
        if self._unyielded < YIELD_EVERY_BYTES:
            return None
        self._unyielded = 0
        return asyncio.sleep(0)

    async def raw_body(self) -> bytes | bytearray:
        """The request body with any Content-Encoding (gzip, br, deflate) removed, at most the body cap.
        Inflating runs in a worker thread: it takes a while for a large body, and the loop is Jupyter's."""
        if self._body_overflow:
            raise body_too_large(None, self.body_cap)
        body = self._body  # not copied: up to 100 MiB, and every consumer takes a bytearray
        encoding = (self.request.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("", "identity"):
            return body
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; use gzip, br or deflate.")
        try:
            decoded = await self.call(decoder, body, self.body_cap)
        except _TooLarge:
            raise body_too_large(None, self.body_cap) from None
        except Exception:  # any decoder error means a corrupt body
            raise InvalidInput(f"The request body is not valid {encoding} data.") from None
        self._body = bytearray()  # the encoded copy is no longer needed
        return decoded

    async def json_body(self, *, default: Any = None) -> Any:
        """The body parsed as JSON, in a worker thread (a large body takes long to parse)."""
        body = await self.raw_body()
        if not body.strip():
            return default
        return await self.call(_parse_json, body)

    async def json_object(self, fields: dict[str, type | tuple[type, ...]], *, required: bool = False) -> dict:
        """A JSON object body whose keys are all in ``fields``, each of the type listed there.

        Checked before anything is changed, so a body with one wrong field changes nothing.
        """
        body = await self.json_body(default=None if required else {})
        if body is None and required:
            raise InvalidInput(f"The body is required: a JSON object with some of: {', '.join(fields)}.")
        return checked_fields(body, fields)

    def content_type_header(self, value: str | None, default: str = "application/octet-stream") -> str:
        """A content type to store and later send back verbatim: so it must be a valid header value."""
        value = (value or "").strip() or default
        if len(value) > MAX_CONTENT_TYPE_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InvalidInput(
                f"Content type {value[:100]!r} is not allowed: at most {MAX_CONTENT_TYPE_CHARS} characters "
                "and no control characters."
            )
        return value

    def wait_secs(self) -> int:
        """``waitForFinish``: how long to hold the request for a run or build to finish, capped at 60 s."""
        return min(self.query_int("waitForFinish", 0) or 0, MAX_WAIT_SECS)

    @overload
    def query(self, name: str) -> str | None: ...

    @overload
    def query(self, name: str, default: str) -> str: ...

    @overload
    def query(self, name: str, default: None) -> str | None: ...

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.get_query_argument(name, default)

    def query_int(self, name: str, default: int | None = None, *, minimum: int = 0,
                  maximum: int = MAX_QUERY_INT) -> int | None:
        """ASCII digits only (``int`` also takes ``²``-like Unicode digits, spaces and ``_``), within bounds."""
        text = self.query(name)
        if text is None or text == "":
            return default
        if not is_ascii_digits(text.removeprefix("-")):
            raise InvalidInput(f"Query parameter {name} must be a whole number, not {text[:50]!r}.")
        if len(text) > len(str(MAX_QUERY_INT)) + 1 or int(text) > maximum:
            raise InvalidInput(f"Query parameter {name} must be at most {maximum}, not {text[:50]}.")
        value = int(text)
        if value < minimum:
            raise InvalidInput(f"Query parameter {name} must be at least {minimum}, not {value}.")
        return value

    def query_float(self, name: str) -> float | None:
        text = self.query(name)
        if text is None or text == "":
            return None
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0 or value == float("inf"):
            raise InvalidInput(f"Query parameter {name} must be a number of at least 0, not {text!r}.")
        return value

    def query_bool(self, name: str, default: bool = False) -> bool:
        text = self.query(name)
        if text is None:
            return default
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise InvalidInput(f"Query parameter {name} must be true or false, not {text!r}.")

    def query_list(self, name: str) -> list[str] | None:
        text = self.query(name)
        if not text:
            return None
        return [part.strip() for part in text.split(",") if part.strip()]

    def reject_unknown_query(self, allowed: set[str]) -> None:
        unknown = set(self.request.query_arguments) - allowed - {"token"}
        if unknown:
            raise InvalidInput(
                f"Unknown option(s): {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(allowed))}."
            )

    # -- response ---------------------------------------------------------------------------------

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps(value))

    def send_data(self, value: Any, status: int = 200) -> None:
        """Apify's ``{"data": ...}`` envelope."""
        self.send_json({"data": value}, status)

    def send_list(self, items: list, *, total: int, offset: int, limit: int | None, desc: bool) -> None:
        self.send_data({
            "total": total, "offset": offset, "limit": limit if limit is not None else total,
            "desc": desc, "count": len(items), "items": items,
        })

    def paging(self, default_limit: int | None = 1000) -> tuple[int, int | None, bool]:
        """``limit=0`` lets the server decide, as apify-client's ``iterate`` sends it (its first page)."""
        offset = self.query_int("offset", 0) or 0
        limit = self.query_int("limit", default_limit) or default_limit
        return offset, limit, self.query_bool("desc")


#: A row of the URL table: path under /v2, the route's logic, and the kwargs its ``initialize`` takes.
Route: TypeAlias = tuple[str, type[ApiHandlerMixin], dict[str, Any]]


#: Apify's ``generalAccess`` values that describe how access works here: only a token (or a signed URL) reads.
TOKEN_ONLY_ACCESS = (None, "FOLLOW_USER_SETTING", "RESTRICTED")


def check_general_access(value: object) -> None:
    """Refuse a ``generalAccess`` that would make a run or storage readable without a token: not supported here."""
    if value not in TOKEN_ONLY_ACCESS:
        raise InvalidInput(f"generalAccess {value!r} is not supported here: runs and storages are read with the "
                           "token only (or a signed public URL, e.g. create_items_public_url); send RESTRICTED, "
                           "FOLLOW_USER_SETTING or leave it out.")


def shared_only(ownership: str | None) -> bool:
    """A storage list's ``ownership``: every storage here is the one user's own, none is shared with them."""
    if ownership not in (None, "ownedByMe", "sharedWithMe"):
        raise InvalidInput(f"Query parameter ownership must be ownedByMe or sharedWithMe, not {ownership!r}.")
    return ownership == "sharedWithMe"


def allowed_methods(handler: type) -> list[str]:
    """The HTTP methods a handler class implements (tornado's defaults answer 405)."""
    return [method for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
            if getattr(handler, method.lower(), None) is not getattr(web.RequestHandler, method.lower())]


def is_ascii_digits(text: str) -> bool:
    """``str.isdigit`` is True for ``²`` and other Unicode digits that ``int`` refuses or misreads."""
    return text.isascii() and text.isdigit()


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} was not found.", type="record-not-found")


def _parse_json(body: bytes | bytearray) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The request body is not valid JSON: {exc}.") from None


def body_too_large(size: int | None, cap: int = MAX_BODY_BYTES) -> InvalidInput:
    what = f"The request body is {size} bytes" if size is not None else "The request body is too large"
    return InvalidInput(
        f"{what}; at most {cap} bytes ({cap / (1024 * 1024):g} MiB, after decompression) "
        "are accepted here. Split the data into several records, pushes or batches.",
        type="request-too-large", status=413,
    )


class _TooLarge(Exception):
    """A compressed body that inflates past the body cap (a decompression bomb, or just too big)."""


def _inflate_zlib(body: bytes, wbits: int, cap: int) -> bytearray:
    """Decode every member of a gzip/zlib stream, never producing more than ``cap`` bytes."""
    output = bytearray()
    data = body
    while True:
        decoder = zlib.decompressobj(wbits)
        output += decoder.decompress(data, cap + 1 - len(output))
        if len(output) > cap or decoder.unconsumed_tail:
            raise _TooLarge
        if not decoder.eof:
            raise ValueError("truncated stream")
        data = decoder.unused_data
        if not data:
            return output  # not copied to bytes: every consumer takes a bytearray


def _inflate_deflate(body: bytes, cap: int) -> bytearray:
    """HTTP ``deflate`` is zlib-wrapped by the RFC, but some clients send raw deflate: accept both."""
    try:
        return _inflate_zlib(body, zlib.MAX_WBITS, cap)
    except zlib.error:
        return _inflate_zlib(body, -zlib.MAX_WBITS, cap)


def _inflate_brotli(body: bytes, cap: int) -> bytes:
    decoder = brotli.Decompressor()
    output = decoder.process(body, output_buffer_limit=cap + 1)
    if len(output) > cap:
        raise _TooLarge
    if not decoder.is_finished():
        raise ValueError("truncated stream")
    return output


_DECODERS: dict[str, Callable[[bytes, int], bytes | bytearray]] = {
    "gzip": lambda body, cap: _inflate_zlib(body, 16 + zlib.MAX_WBITS, cap),
    "x-gzip": lambda body, cap: _inflate_zlib(body, 16 + zlib.MAX_WBITS, cap),
    "deflate": _inflate_deflate,
    "br": _inflate_brotli,
}
