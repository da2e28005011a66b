"""The HTTP client of the notebook side: the only module that talks to the server (httpx, sync).

Everything else in ``jupyter_actors.notebook`` goes through a ``Client``; none of it touches Docker
or the platform package, so a notebook works the same against a local or a remote server.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from .discovery import CA_VARIABLE, TOKEN_VARIABLE, URL_VARIABLE, discover, parent_server, split_socket_url
from .errors import ApiError, InvalidInputError, NotFoundError, ServerNotFound

# Long-polls (waitForFinish) hold a request for up to 60 s, so reads may take a little longer.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=90.0)
# A dropped connection (server restart, proxy hiccup) is retried for methods that may be repeated.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_ATTEMPTS = 5
RETRY_DEADLINE_SECS = 30.0
RETRY_FIRST_DELAY_SECS = 0.2

NOT_CONFIGURED = (
    "No jupyter-actors server is configured for this kernel. Open the notebook from a Jupyter server "
    f"that has the jupyter_actors extension enabled (its kernels get {URL_VARIABLE} and {TOKEN_VARIABLE}), "
    "or point the client at one: jupyter_actors.connect('http://127.0.0.1:8888/actors/api', token='<jupyter token>'), "
    f"or set the environment variables {URL_VARIABLE} and {TOKEN_VARIABLE} "
    f"(and {CA_VARIABLE} for an HTTPS server with its own certificate)."
)


NO_TOKEN = (
    "The server needs authentication and this kernel has no token (kernels of a server with the "
    f"jupyter_actors extension get one in {TOKEN_VARIABLE}): pass jupyter_actors.connect(token=...) with the "
    f"server's token, or set {TOKEN_VARIABLE}."
)


class Client:
    """A connection to one server's ``.../actors/api``; thread-safe (the live view uses it from threads)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 retry_attempts: int = RETRY_ATTEMPTS, retry_deadline: float = RETRY_DEADLINE_SECS,
                 uds: str | None = None, verify: str | bool = True) -> None:
        """``url`` may be ``http+unix://<quoted socket path>/...`` (Jupyter's ``--sock``), or give ``uds``;
        ``verify`` is a CA file (an HTTPS server's self-signed certfile) or a bool."""
        http_url, socket_path = split_socket_url(url)
        self.url = url.rstrip("/")
        self.uds = uds or socket_path
        self.retry_attempts = retry_attempts
        self.retry_deadline = retry_deadline
        self.token = token or ""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        tls = trust(verify)
        transport = httpx.HTTPTransport(uds=self.uds, verify=tls) if self.uds else None
        self._http = httpx.Client(base_url=f"{http_url.rstrip('/')}/v2", headers=headers, timeout=timeout,
                                  verify=tls, transport=transport)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    # -- requests ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; 4xx/5xx become ``ApiError`` subclasses carrying the server's message.

        Transport errors are retried with exponential backoff, within ``retry_attempts`` and
        ``retry_deadline`` seconds, when repeating cannot do harm (see ``may_retry``).
        """
        deadline = time.monotonic() + self.retry_deadline
        delay = RETRY_FIRST_DELAY_SECS
        attempt = 1
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except httpx.TransportError as exc:
                if not (attempt < self.retry_attempts and time.monotonic() + delay < deadline
                        and may_retry(method, exc)):
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise ServerNotFound(f"Cannot reach the jupyter-actors server at {self.url}{tries}: "
                                         f"{exc or type(exc).__name__}") from None
            time.sleep(delay)  # backoff before the next attempt, not synchronisation
            attempt += 1
            delay *= 2
        if response.status_code == 401 and not self.token:
            raise ApiError(NO_TOKEN, status=401, type="unauthorized")
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


def trust(verify: str | bool) -> ssl.SSLContext | bool:
    """A CA file is trusted on top of the usual roots: a server's own ``certfile`` then verifies whether it
    is self-signed (it is its own root) or signed by a public CA (the roots verify it)."""
    if not isinstance(verify, str):
        return verify
    context = httpx.create_ssl_context()
    context.load_verify_locations(cafile=verify)
    return context


def may_retry(method: str, exc: httpx.TransportError) -> bool:
    """Idempotent methods always; a POST only when it never reached the server (no connection made)."""
    return method.upper() in IDEMPOTENT or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


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


def connect(url: str | None = None, token: str | None = None, *, verify: str | bool | None = None) -> Client:
    """Point this kernel at a server: explicit arguments, else what ``discovery`` finds.

    ``verify``: a CA file to trust (an HTTPS server's self-signed certfile), False, or the default.
    """
    global _default
    if url:
        token = os.environ.get(TOKEN_VARIABLE) if token is None else token
        verify = (os.environ.get(CA_VARIABLE) or True) if verify is None else verify
        client = Client(url, token, verify=verify)
    else:
        endpoint = discover(server=parent_server())
        if endpoint is None:
            raise ServerNotFound(NOT_CONFIGURED)
        client = Client(endpoint.url, endpoint.token if token is None else token, uds=endpoint.uds,
                        verify=endpoint.verify if verify is None else verify)
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
