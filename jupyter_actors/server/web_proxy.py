"""Each run's container web server, proxied at ``<base_url>actors/web/<unguessable id>/``.

The id maps to the run's web address on the server side (the container's bridge address on one
engine; never a host or port from the URL).
Access needs the user's Jupyter auth unless the run was started with a public web server. The
user's cookies and Authorization header never reach the actor, the actor cannot set cookies on
Jupyter's origin, and every proxied response carries ``Content-Security-Policy: sandbox`` without
``allow-same-origin``, so the actor's pages run in an opaque origin and cannot act as the user.
Nor can the actor borrow the user's origin another way: the ``token`` and ``_xsrf`` query parameters
are stripped, only inert response headers pass, and a redirect to anywhere else on Jupyter's host
(the user API serving a record, say) is refused.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import re
from urllib.parse import quote, unquote, unquote_plus, urljoin, urlsplit

from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, httputil, websocket
from tornado.ioloop import IOLoop
from tornado.simple_httpclient import HTTPStreamClosedError

from ..platform.lifecycle import RunStatus
from .auth import AUTH_RESOURCE

SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
DROPPED_REQUEST_HEADERS = {"cookie", "authorization", "host", "x-xsrftoken", "x-xsrf-token", "origin", "referer",
                           "connection", "upgrade", "keep-alive", "transfer-encoding", "te", "proxy-authorization",
                           "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                           "sec-websocket-protocol", "content-length", "accept-encoding"}
#: Query parameters Jupyter reads credentials from: the actor must never see them.
CREDENTIAL_PARAMS = {"token", "_xsrf"}
#: The only upstream response headers passed on: each describes the body or its caching. Everything
#: else could act on Jupyter's origin (Set-Cookie, Refresh, Clear-Site-Data, Link, Access-Control-*,
#: Alt-Svc, Strict-Transport-Security) or on a reverse proxy in front of Jupyter (X-Accel-Redirect).
PASSED_RESPONSE_HEADERS = {"content-type", "content-language", "content-disposition", "content-range",
                           "accept-ranges", "cache-control", "expires", "pragma", "age", "etag", "last-modified",
                           "vary", "allow", "retry-after", "location", "x-content-type-options", "x-robots-tag"}


def page(title: str, text: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;margin:2em'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p></body></html>")


def without_credentials(query: str) -> str:
    """The raw query string minus ``token`` and ``_xsrf`` (however their names are encoded); the
    actor's own parameters are kept byte for byte, in order."""
    kept = [part for part in query.split("&") if unquote_plus(part.partition("=")[0]) not in CREDENTIAL_PARAMS]
    return "&".join(kept)


def upstream_target(raw_path: str, base_url: str) -> str:
    """The request's path after ``<base_url>actors/web/<id>``, escaped exactly as the browser sent it
    (tornado's path arguments are decoded: ``%2F`` would become a real slash, ``%3F`` a query)."""
    _, slash, rest = raw_path[len(base_url) + len("actors/web/"):].partition("/")
    # Only bytes that may not appear raw in a request line are escaped; existing escapes stay.
    return quote((slash + rest or "/").encode("latin-1"), safe="/%!$&'()*+,;=:@-._~")


def location_leaves_run(location: str, request_url: str, jupyter_hosts: set[str], run_prefix: str) -> bool:
    """Whether a redirect to ``location`` lands on Jupyter's host (any of the names the request came
    by) outside the run's own prefix: there the browser would send the user's Jupyter cookies.

    Resolved as a browser does against the request's URL; anything a browser might read differently
    from ``urljoin`` (backslashes, control characters, encoded dot segments) counts as leaving.
    """
    if "\\" in location or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in location):
        return True
    target = urlsplit(urljoin(request_url, location))
    if target.scheme not in ("http", "https", "ws", "wss"):
        return target.scheme in ("javascript", "data", "blob", "file", "")
    host = canonical_host(target.hostname or "")
    if host is None:
        return True  # spelled in a way a browser rewrites (escapes, numeric forms): it may be Jupyter's
    if host not in jupyter_hosts:
        return False  # another host: a different site, where the user's Jupyter cookies do not apply
    if any(unquote(segment) in (".", "..") for segment in target.path.split("/")):
        return True
    return not target.path.startswith(run_prefix)


def canonical_host(host: str) -> str | None:
    """``host`` as a browser compares it, or None if a browser would rewrite it first (percent-escapes,
    non-ASCII, IPv4 in decimal, octal or hex forms)."""
    host = host.lower().rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return None
    if not re.fullmatch(r"[a-z0-9.-]+", host):
        return None
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):  # browsers parse it as an IPv4 address
        try:
            return host if str(ipaddress.IPv4Address(host)) == host else None
        except ValueError:
            return None
    return host


def request_hosts(request: httputil.HTTPServerRequest) -> set[str]:
    """The host names the browser may know Jupyter by: Host, and those a reverse proxy or the page say."""
    names = {request.host_name}
    for header in ("X-Forwarded-Host", "Origin", "Referer"):
        for value in request.headers.get_list(header):
            for part in value.split(","):
                part = part.strip()
                host = urlsplit(part if "//" in part else f"//{part}").hostname
                if host:
                    names.add(host)
    return {canonical for name in names if (canonical := canonical_host(name))}


class RunWebProxyHandler(websocket.WebSocketHandler, JupyterHandler):
    """HTTP (all methods, streamed) and websockets to the run's container port."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await JupyterHandler.prepare(self, _redirect_to_login=False)
        web_id = self.path_args[0]
        platform = self.settings["jupyter_actors_platform"]
        run = platform.run_for_web_id(web_id)
        if run is None:
            self._refuse(404, "Not found", "No actor run has this web server address.")
            return
        if not run["web_public"]:
            if self.current_user is None:
                self._refuse(403, "Forbidden", "Log in to Jupyter to open this run's web server.")
                return
            upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
            action = "read" if self.request.method in ("GET", "HEAD", "OPTIONS") and not upgrade else "write"
            if not self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource):
                self._refuse(403, "Forbidden", f"User {self.current_user.username} may not {action} actors.")
                return
        if RunStatus(run["status"]).is_terminal:
            self._refuse(404, "Run finished", f"The run {run['id']} has finished ({run['status']}); "
                                              "its web server is gone.")
            return
        reason = platform.web_unavailable_reason()
        if reason:
            self._refuse(501, "Not available", reason)
            return
        address = await IOLoop.current().run_in_executor(None, platform.web_address, run["id"])
        if address is None:
            self._refuse(503, "Starting", "The run's container is starting; try again in a moment.")
            return
        self.run_row = run
        self.address = address
        self.run_prefix = f"{self.settings['base_url']}actors/web/{web_id}/"

    def _refuse(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", SANDBOX)
        self.finish(page(title, text))

    def check_xsrf_cookie(self) -> None:
        return  # the actor's own forms post here; the actor never sees the user's credentials

    def check_origin(self, origin: str | None = None) -> bool:
        """A websocket from another origin would carry the user's cookie: only public runs allow it."""
        if getattr(self, "run_row", {}).get("web_public"):
            return True
        return JupyterHandler.check_origin(self)

    def upstream_url(self, scheme: str = "http") -> str:
        query = without_credentials(self.request.query)
        host, port = self.address
        path = upstream_target(self.request.path, self.settings["base_url"])
        return f"{scheme}://{host}:{port}{path}{'?' + query if query else ''}"

    # -- HTTP -------------------------------------------------------------------------------------

    async def get(self, web_id: str, path: str | None = None) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await websocket.WebSocketHandler.get(self, web_id, path)
            return
        await self.proxy(web_id, path)

    async def proxy(self, web_id: str, path: str | None = None) -> None:
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in DROPPED_REQUEST_HEADERS}
        headers["X-Forwarded-Prefix"] = self.run_prefix.rstrip("/")
        body = self.request.body if self.request.method not in ("GET", "HEAD", "OPTIONS") else None
        response = _UpstreamResponse(self)
        request = httpclient.HTTPRequest(
            self.upstream_url(), method=self.request.method, headers=headers, body=body,
            follow_redirects=False, header_callback=response.on_header, streaming_callback=response.on_chunk,
            request_timeout=3600, allow_nonstandard_methods=True, decompress_response=False,
        )
        try:
            await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError, httputil.HTTPInputError) as exc:
            self.log.debug("proxy to run %s failed: %r", self.run_row["id"], exc)
            if response.started:
                return
            if isinstance(exc, (httputil.HTTPInputError, HTTPStreamClosedError)):  # connected, no valid answer
                response.refusal = "The actor's web server sent a response that is not valid HTTP."
            else:  # refused, unreachable: nothing listens yet
                platform = self.settings["jupyter_actors_platform"]
                await IOLoop.current().run_in_executor(None, platform.forget_web_address, self.run_row["id"])
                self.clear()
                self._refuse(502, "Not up yet", "The actor's web server does not answer yet (nothing listens on "
                                                f"port {self.run_row['container_port']} in the container).")
                return
        if response.refusal is not None:
            self.clear()
            self._refuse(502, "Bad answer from the actor", response.refusal)
            return
        self.set_header("Content-Security-Policy", SANDBOX)
        self.finish()

    post = put = delete = patch = head = options = proxy

    # -- websockets -------------------------------------------------------------------------------

    async def open(self, web_id: str, path: str | None = None) -> None:
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in DROPPED_REQUEST_HEADERS}
        request = httpclient.HTTPRequest(self.upstream_url("ws"), headers=headers)
        try:
            self.upstream = await websocket.websocket_connect(request, on_message_callback=self._from_upstream)
        except (OSError, httpclient.HTTPClientError, httputil.HTTPInputError):
            self.close(1011, "the actor's web server does not accept websockets")

    def _from_upstream(self, message) -> None:
        if message is None:
            self.close()
        else:
            with contextlib.suppress(websocket.WebSocketClosedError):
                self.write_message(message, binary=isinstance(message, bytes))

    async def on_message(self, message) -> None:
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            await upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            upstream.close()


class _UpstreamResponse:
    """Copies the actor's status, inert headers and body onto the proxy's response as they arrive.

    The head is checked whole before anything is copied, so a refused one (a redirect out of the
    run's prefix, an impossible status) becomes a readable 502 instead of reaching the browser.
    """

    def __init__(self, handler: RunWebProxyHandler) -> None:
        self.handler = handler
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.refusal: str | None = None
        self.started = False

    def on_header(self, line: str) -> None:
        if self.status is None:  # the start line, as tornado reassembles it: "HTTP/1.1 302 Found"
            self.status = int(line.split(" ", 2)[1])
            return
        if line.strip():
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))
            return
        self._head_done()
        self.status, self.headers = None, []  # a later head (after an interim 1xx) starts afresh

    def _head_done(self) -> None:
        handler = self.handler
        status = self.status or 0
        if not 200 <= status <= 599:
            self.refusal = f"The actor's web server answered with status {status}, which the proxy does not pass on."
            return
        request = handler.request
        here = f"{request.protocol}://{request.host}{request.path}"
        hosts = request_hosts(request)
        seen: set[str] = set()
        for name, value in self.headers:
            lower = name.lower()
            if lower not in PASSED_RESPONSE_HEADERS:
                continue
            if lower == "location" and location_leaves_run(value, here, hosts, handler.run_prefix):
                self.refusal = (f"The actor's web server redirected to {value[:200]}, outside this run's web server "
                                f"({handler.run_prefix}); the proxy does not follow it on Jupyter's origin.")
                return
            # The first one replaces Jupyter's default (Content-Type...); repeats are kept (Vary...).
            (handler.add_header if lower in seen else handler.set_header)(name, value)
            seen.add(lower)
        handler.set_status(status)
        handler.set_header("Content-Security-Policy", SANDBOX)

    def on_chunk(self, chunk: bytes) -> None:
        if self.refusal is not None or self.handler.get_status() in (204, 304):
            return
        self.started = True
        self.handler.write(chunk)
        self.handler.flush()
