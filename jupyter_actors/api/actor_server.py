"""The actor-facing API: a listener on the Docker network's gateway, authenticated by per-run tokens.

Containers reach it at ``APIFY_API_BASE_URL``; it is never the user's Jupyter port and never sees
the user's token.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from urllib.parse import urlsplit

from tornado import httpserver, web
from tornado.log import access_log

from ..platform.core import Platform
from ..platform.proxy import Credentials, ProxyServer, Upstream
from .calls import ActorCalls
from .base import MAX_DRAINED_BODY_BYTES
from .body_budget import body_budget
from .events import ActorEvents, EventsSocketHandler
from .routes import make_handlers
from .run_changes import RunChanges
from .run_token_handlers import HANDLERS as TOKEN_HANDLERS
from .views import Views


def api_settings(platform: Platform, public_api_url: str, loop: asyncio.AbstractEventLoop) -> dict:
    """The application settings every API handler reads its collaborators from."""
    views = Views(platform, public_api_url)
    # A webhook's payload shows the run or build as this API does.
    platform.webhooks.resource_view = lambda kind, row: views.run(row) if kind == "run" else views.build(row)
    return {
        "jupyter_actors_platform": platform,
        "jupyter_actors_views": views,
        "jupyter_actors_run_events": RunChanges(platform, loop),
        "jupyter_actors_body_budget": body_budget(platform),
    }


class ActorApiServer:
    """Serves ``/v2/...`` to containers on ``host`` (the bridge gateway) and a free port."""

    def __init__(self, platform: Platform, host: str, port: int = 0, *, advertise_url: str | None = None) -> None:
        self.platform = platform
        self.host = host
        self.port = port
        #: The address containers use, when it is not where we listen (a cluster's route to this server).
        self.advertise_url = advertise_url.rstrip("/") if advertise_url else None
        self._server: httpserver.HTTPServer | None = None
        self.proxy: ProxyServer | None = None

    @property
    def url(self) -> str:
        return self.advertise_url or f"http://{self.host}:{self.port}"

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> str:
        """Bind and serve on the current (or given) event loop; sets the platform's actor API URL."""
        loop = loop or asyncio.get_event_loop()
        settings = api_settings(self.platform, self.platform.config.public_api_url, loop)
        self.events = ActorEvents(self.platform, loop)
        settings["jupyter_actors_events"] = self.events
        self.calls = ActorCalls()
        settings["jupyter_actors_actor_calls"] = self.calls
        handlers = [(r"/v2/actor-runs/([^/]+)/events", EventsSocketHandler, {}),
                    *make_handlers("", TOKEN_HANDLERS)]
        app = web.Application(handlers, log_function=log_request, **settings)
        sockets = self._bind_stable_port()
        self.port = sockets[0].getsockname()[1]
        self.platform.stores.set_meta("actor_api_port", str(self.port))
        # Handlers stream bodies and set their own size limit per request (base.MAX_DRAINED_BODY_BYTES).
        self._server = httpserver.HTTPServer(app, max_body_size=MAX_DRAINED_BODY_BYTES, decompress_request=False)
        self._server.add_sockets(sockets)
        self.platform.actor_api_url = self.url
        ws_base = "ws" + self.url.removeprefix("http")  # http -> ws, https -> wss
        self.platform.events_url_template = f"{ws_base}/v2/actor-runs/{{run_id}}/events?token={{token}}"
        self._start_proxy(loop)
        return self.url

    def _start_proxy(self, loop: asyncio.AbstractEventLoop) -> None:
        """The runs' forward proxy (APIFY_PROXY_*): beside this API, on the same address, its own port
        (the last start's when free, as adopted containers know only that one)."""
        config = self.platform.config
        upstream = Upstream.parse(config.upstream_proxy) if config.upstream_proxy else None
        self.proxy = ProxyServer(Credentials(self.platform), upstream=upstream)
        previous = self.platform.stores.get_meta("proxy_port")
        port = config.proxy_port or (int(previous) if previous else 0)
        endpoint = self.proxy.start(self.host, port, advertise_host=urlsplit(self.url).hostname, loop=loop)
        self.platform.stores.set_meta("proxy_port", str(endpoint.port))
        self.platform.proxy_endpoint = endpoint

    def _bind_stable_port(self) -> list[socket.socket]:
        """Reuse the port of the last start: adopted containers know the API only by that address."""
        previous = self.platform.stores.get_meta("actor_api_port")
        if not self.port and previous:
            try:
                return _bind(self.host, int(previous))
            except OSError:
                pass  # taken: runs adopted from before will not reach the API (they restart as lost)
        return _bind(self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.events.close()
            self.calls.close()
        if self.proxy is not None:
            self.platform.proxy_endpoint = None
            self.proxy.close()
            self.proxy = None


def log_request(handler: web.RequestHandler) -> None:
    """Tornado's access log without the query string (the events socket's URL carries the run's token),
    and successes at debug: the SDK calls this API many times a second."""
    status = handler.get_status()
    log = access_log.debug if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    log("%d %s %s (%s) %.2fms", status, request.method, request.path, request.remote_ip,
        1000.0 * request.request_time())


def _bind(host: str, port: int) -> list[socket.socket]:
    from tornado.netutil import bind_sockets

    return bind_sockets(port, address=host, family=socket.AF_INET)


class LoopThread:
    """An asyncio loop in a daemon thread, for serving the actor API from a plain Python process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jupyter-actors-api", daemon=True)
        self._thread.start()

    def call(self, function, *args):
        async def run():
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
