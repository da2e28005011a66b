"""What every API handler shares: errors in Apify's shape, body decoding, the data envelope.

Handlers here only translate HTTP to calls on the platform. Concrete classes are made by mixing a
handler with an auth base (``auth.py``): Jupyter's auth for users, per-run tokens for actors.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import brotli
import orjson
from tornado import web
from tornado.log import app_log

from ..platform.core import Platform
from ..platform.errors import InvalidInput, NotFound, PlatformError
from .principals import Principal
from .views import Views

T = TypeVar("T")

_TYPE_BY_STATUS = {
    400: "invalid-input", 401: "token-not-provided", 403: "insufficient-permissions",
    404: "page-not-found", 405: "method-not-allowed", 409: "conflict", 413: "request-too-large",
}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ApiHandlerMixin:
    """Mixed into a tornado RequestHandler subclass; ``principal`` is set by the auth base's prepare."""

    principal: Principal

    # -- context ----------------------------------------------------------------------------------

    @property
    def platform(self) -> Platform:
        return self.settings["jupyter_actors_platform"]  # type: ignore[attr-defined]

    @property
    def views(self) -> Views:
        return self.settings["jupyter_actors_views"]  # type: ignore[attr-defined]

    @property
    def run_events(self):
        return self.settings["jupyter_actors_run_events"]  # type: ignore[attr-defined]

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking platform call off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    # -- errors -----------------------------------------------------------------------------------

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
        """Refusals (PlatformError, HTTPError) are answers, not crashes: log them without a traceback."""
        if isinstance(value, (PlatformError, web.HTTPError)):
            status = value.status if isinstance(value, PlatformError) else value.status_code
            if status >= 500:
                app_log.warning("%s %s: %s", self.request.method, self.request.path, value)  # type: ignore[attr-defined]
            return
        super().log_exception(typ, value, tb)  # type: ignore[misc]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PlatformError):
            status_code, error_type, message = exc.status, exc.type, exc.message
        elif isinstance(exc, web.HTTPError):
            status_code = exc.status_code
            error_type = _TYPE_BY_STATUS.get(status_code, "http-error")
            message = exc.log_message % exc.args if exc.log_message and exc.args else (
                exc.log_message or exc.reason or self._reason)  # type: ignore[attr-defined]
        else:
            error_type, message = "internal-server-error", "The server failed to process the request; see its log."
        self.set_status(status_code)  # type: ignore[attr-defined]
        self.clear_header("Content-Encoding")  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json; charset=utf-8")  # type: ignore[attr-defined]
        self.finish(json.dumps({"error": {"type": error_type, "message": message}}))  # type: ignore[attr-defined]

    # -- request ----------------------------------------------------------------------------------

    def raw_body(self) -> bytes:
        """The request body with any Content-Encoding (gzip, br, deflate) removed."""
        body: bytes = self.request.body  # type: ignore[attr-defined]
        encoding = (self.request.headers.get("Content-Encoding") or "").strip().lower()  # type: ignore[attr-defined]
        try:
            if encoding in ("", "identity"):
                return body
            if encoding == "gzip":
                return gzip.decompress(body)
            if encoding == "br":
                return brotli.decompress(body)
            if encoding == "deflate":
                try:
                    return zlib.decompress(body)
                except zlib.error:
                    return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate
        except Exception:  # noqa: BLE001 - any decoder error means a corrupt body
            raise InvalidInput(f"The request body is not valid {encoding} data.") from None
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; use gzip, br or deflate.")

    def json_body(self, *, default: Any = None) -> Any:
        body = self.raw_body()
        if not body.strip():
            return default
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"The request body is not valid JSON: {exc}.") from None

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.get_query_argument(name, default)  # type: ignore[attr-defined]

    def query_int(self, name: str, default: int | None = None, *, minimum: int = 0) -> int | None:
        text = self.query(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"Query parameter {name} must be a whole number, not {text!r}.") from None
        if value < minimum:
            raise InvalidInput(f"Query parameter {name} must be at least {minimum}, not {value}.")
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
        unknown = set(self.request.query_arguments) - allowed - {"token"}  # type: ignore[attr-defined]
        if unknown:
            raise InvalidInput(
                f"Unknown option(s): {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(allowed))}."
            )

    # -- response ---------------------------------------------------------------------------------

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json; charset=utf-8")  # type: ignore[attr-defined]
        self.finish(orjson.dumps(value))  # type: ignore[attr-defined]

    def send_data(self, value: Any, status: int = 200) -> None:
        """Apify's ``{"data": ...}`` envelope."""
        self.send_json({"data": value}, status)

    def send_list(self, items: list, *, total: int, offset: int, limit: int | None, desc: bool) -> None:
        self.send_data({
            "total": total, "offset": offset, "limit": limit if limit is not None else total,
            "desc": desc, "count": len(items), "items": items,
        })

    def paging(self, default_limit: int | None = 1000) -> tuple[int, int | None, bool]:
        offset = self.query_int("offset", 0) or 0
        limit = self.query_int("limit", default_limit)
        return offset, limit, self.query_bool("desc")


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} was not found.", type="record-not-found")
