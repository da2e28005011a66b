"""The HTTP client of the notebook side: the only module that talks to the server (httpx, sync).

Everything else in ``jupyter_actors.notebook`` goes through a ``Client``; none of it touches Docker
or the platform package, so a notebook works the same against a local or a remote server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from .errors import ApiError, InvalidInputError, NotFoundError, ServerNotFound

URL_VARIABLE = "JUPYTER_ACTORS_API_URL"
TOKEN_VARIABLE = "JUPYTER_ACTORS_TOKEN"
# Long-polls (waitForFinish) hold a request for up to 60 s, so reads may take a little longer.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=90.0)

NOT_CONFIGURED = (
    "No jupyter-actors server is configured for this kernel. Open the notebook from a Jupyter server "
    f"that has the jupyter_actors extension enabled (its kernels get {URL_VARIABLE} and {TOKEN_VARIABLE}), "
    "or point the client at one: jupyter_actors.connect('http://127.0.0.1:8888/actors/api', token='<jupyter token>'), "
    f"or set the environment variables {URL_VARIABLE} and {TOKEN_VARIABLE}."
)


class Client:
    """A connection to one server's ``.../actors/api``; thread-safe (the live view uses it from threads)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token or ""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=f"{self.url}/v2", headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    # -- requests ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; 4xx/5xx become ``ApiError`` subclasses carrying the server's message."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerNotFound(f"Cannot reach the jupyter-actors server at {self.url}: {exc}") from None
        raise_for_error(response)
        return response

    def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of Apify's ``{"data": ...}`` envelope."""
        return self.request(method, path, **kwargs).json()["data"]

    def get(self, path: str, **params: Any) -> Any:
        return self.data("GET", path, params=_params(params))

    def post(self, path: str, json: Any = None, **params: Any) -> Any:  # httpx's name
        return self.data("POST", path, json=json, params=_params(params))

    def iter_pages(self, path: str, page_size: int = 1000, **params: Any) -> Iterator[dict]:
        """Every item of an offset/limit listing (runs, builds, actors)."""
        offset = 0
        while True:
            page = self.get(path, offset=offset, limit=page_size, **params)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def stream_lines(self, path: str, stop: threading.Event | None = None, **params: Any) -> Iterator[str]:
        """Lines of a streamed text response (the followed run log) as they arrive.

        Setting ``stop`` ends the iteration at the next line; ``close_streams`` ends it at once.
        """
        timeout = httpx.Timeout(30.0, read=None)
        try:
            with self._http.stream("GET", path, params=_params(params), timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_error(response)
                for line in response.iter_lines():
                    if stop is not None and stop.is_set():
                        return
                    yield line
        except httpx.TransportError as exc:
            if stop is not None and stop.is_set():
                return
            raise ServerNotFound(f"The log stream from {self.url} broke off: {exc}") from None


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without Nones; booleans as Apify's true/false."""
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def raise_for_error(response: httpx.Response) -> None:
    """Turn Apify's ``{"error": {"type", "message"}}`` into the matching exception."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        message, error_type = str(error.get("message") or ""), str(error.get("type") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, error_type = response.text.strip()[:500] or response.reason_phrase, ""
    if response.status_code in (401, 403) and not message:
        message = "The server refused the token; check JUPYTER_ACTORS_TOKEN or the token given to connect()."
    cls = {404: NotFoundError, 400: InvalidInputError}.get(response.status_code, ApiError)
    raise cls(message or f"HTTP {response.status_code}", status=response.status_code, type=error_type)


# -- the default client ----------------------------------------------------------------------------

_default: Client | None = None
_default_lock = threading.Lock()


def connect(url: str | None = None, token: str | None = None) -> Client:
    """Point this kernel at a server (explicit arguments, else the environment variables)."""
    global _default
    url = url or os.environ.get(URL_VARIABLE)
    if token is None:
        token = os.environ.get(TOKEN_VARIABLE)
    if not url:
        raise ServerNotFound(NOT_CONFIGURED)
    client = Client(url, token)
    with _default_lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close()
    return client


def default_client() -> Client:
    """The client set by ``connect()``, or one made from the environment on first use."""
    with _default_lock:
        client = _default
    return client if client is not None else connect()


def resolve(client: Client | None) -> Client:
    return client if client is not None else default_client()


__all__ = ["Client", "connect", "default_client"]
