"""Each run's container web server, proxied at ``<base_url>actors/web/<unguessable id>/``.

The id maps to the run's web address on the server side (the container's bridge address on one
engine; never a host or port from the URL).
Access needs the user's Jupyter auth unless the run was started with a public web server. The
user's cookies and Authorization header never reach the actor, the actor cannot set cookies on
Jupyter's origin, and every proxied response carries ``Content-Security-Policy: sandbox`` without
``allow-same-origin``, so the actor's pages run in an opaque origin and cannot act as the user.
"""

from __future__ import annotations

import html

from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, websocket
from tornado.ioloop import IOLoop

from ..platform.lifecycle import RunStatus

SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
DROPPED_REQUEST_HEADERS = {"cookie", "authorization", "host", "x-xsrftoken", "x-xsrf-token", "origin", "referer",
                           "connection", "upgrade", "keep-alive", "transfer-encoding", "te", "proxy-authorization",
                           "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                           "sec-websocket-protocol", "content-length", "accept-encoding"}
DROPPED_RESPONSE_HEADERS = {"set-cookie", "connection", "keep-alive", "transfer-encoding", "content-length",
                            "content-security-policy", "server", "date", "content-encoding"}


def page(title: str, text: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;margin:2em'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p></body></html>")


class RunWebProxyHandler(websocket.WebSocketHandler, JupyterHandler):
    """HTTP (all methods, streamed) and websockets to the run's container port."""

    async def prepare(self) -> None:  # type: ignore[override]
        await JupyterHandler.prepare(self, _redirect_to_login=False)
        web_id = self.path_args[0]
        platform = self.settings["jupyter_actors_platform"]
        run = platform.run_for_web_id(web_id)
        if run is None:
            self._refuse(404, "Not found", "No actor run has this web server address.")
            return
        if not run["web_public"] and self.current_user is None:
            self._refuse(403, "Forbidden", "Log in to Jupyter to open this run's web server.")
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

    def _refuse(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", SANDBOX)
        self.finish(page(title, text))

    def check_xsrf_cookie(self) -> None:
        return  # the actor's own forms post here; the actor never sees the user's credentials

    def check_origin(self, origin: str | None = None) -> bool:
        return True  # sandboxed pages have an opaque origin; auth is the Jupyter user's, checked in prepare

    def upstream_url(self, path: str | None, scheme: str = "http") -> str:
        query = f"?{self.request.query}" if self.request.query else ""
        host, port = self.address
        return f"{scheme}://{host}:{port}{path or '/'}{query}"

    # -- HTTP -------------------------------------------------------------------------------------

    async def get(self, web_id: str, path: str | None = None) -> None:  # type: ignore[override]
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await websocket.WebSocketHandler.get(self, web_id, path)
            return
        await self.proxy(web_id, path)

    async def proxy(self, web_id: str, path: str | None = None) -> None:
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in DROPPED_REQUEST_HEADERS}
        headers["X-Forwarded-Prefix"] = f"{self.settings['base_url']}actors/web/{self.path_args[0]}"
        body = self.request.body if self.request.method not in ("GET", "HEAD", "OPTIONS") else None
        started = False
        seen: set[str] = set()

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                self.set_status(int(line.split()[1]))
                seen.clear()
                return
            name, _, value = line.partition(":")
            name = name.strip()
            if not value or name.lower() in DROPPED_RESPONSE_HEADERS:
                return
            # The first one replaces Jupyter's default (Content-Type...); repeats are kept (Link, Vary...).
            (self.add_header if name.lower() in seen else self.set_header)(name, value.strip())
            seen.add(name.lower())

        def on_chunk(chunk: bytes) -> None:
            nonlocal started
            started = True
            self.set_header("Content-Security-Policy", SANDBOX)
            self.write(chunk)
            self.flush()

        request = httpclient.HTTPRequest(
            self.upstream_url(path), method=self.request.method, headers=headers, body=body,
            follow_redirects=False, header_callback=on_header, streaming_callback=on_chunk,
            request_timeout=3600, allow_nonstandard_methods=True, decompress_response=False,
        )
        try:
            await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:  # refused, reset, closed: nothing listens yet
            self.log.debug("proxy to run %s failed: %r", self.run_row["id"], exc)
            platform = self.settings["jupyter_actors_platform"]
            await IOLoop.current().run_in_executor(None, platform.forget_web_address, self.run_row["id"])
            if not started:
                self.clear()
                self._refuse(502, "Not up yet", "The actor's web server does not answer yet (nothing listens on "
                                                f"port {self.run_row['container_port']} in the container).")
            return
        self.set_header("Content-Security-Policy", SANDBOX)
        self.finish()

    post = put = delete = patch = head = options = proxy  # type: ignore[assignment]

    # -- websockets -------------------------------------------------------------------------------

    async def open(self, web_id: str, path: str | None = None) -> None:  # type: ignore[override]
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in DROPPED_REQUEST_HEADERS}
        request = httpclient.HTTPRequest(self.upstream_url(path, "ws"), headers=headers)
        try:
            self.upstream = await websocket.websocket_connect(request, on_message_callback=self._from_upstream)
        except (OSError, httpclient.HTTPClientError):
            self.close(1011, "the actor's web server does not accept websockets")

    def _from_upstream(self, message) -> None:
        if message is None:
            self.close()
        else:
            try:
                self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                pass

    async def on_message(self, message) -> None:  # type: ignore[override]
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            await upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        upstream = getattr(self, "upstream", None)
        if upstream is not None:
            upstream.close()
