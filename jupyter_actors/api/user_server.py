"""The user-facing API served by a process with no Jupyter server: the CLI hosting the platform itself.

It listens on loopback only, behind a credential made for this process, so the CLI has one way to
the platform (HTTP, the same as to a running server) whoever hosts it. It mounts the bearer-token
handlers of the actor-facing API, whose auth takes this credential as the user.
"""

from __future__ import annotations

import asyncio
import socket

from tornado import httpserver, web
from tornado.netutil import bind_sockets

from ..platform.core import Platform
from .actor_server import api_settings, log_request
from .auth import CLI_CREDENTIAL
from .base import MAX_DRAINED_BODY_BYTES
from .routes import make_handlers
from .run_token_handlers import HANDLERS as TOKEN_HANDLERS


class UserApiServer:
    """Serves ``/v2/...`` on 127.0.0.1 and a free port to callers presenting ``credential``."""

    def __init__(self, platform: Platform, credential: str) -> None:
        self.platform = platform
        self.credential = credential
        self.url = ""
        self._server: httpserver.HTTPServer | None = None
        self._settings: dict = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> str:
        """Bind and serve on ``loop`` (call from it); returns the API's URL (without ``/v2``)."""
        sockets = bind_sockets(0, address="127.0.0.1", family=socket.AF_INET)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self._settings = {**api_settings(self.platform, self.url, loop), CLI_CREDENTIAL: self.credential}
        app = web.Application(make_handlers("", TOKEN_HANDLERS), log_function=log_request,
                              **self._settings)
        self._server = httpserver.HTTPServer(app, max_body_size=MAX_DRAINED_BODY_BYTES, decompress_request=False)
        self._server.add_sockets(sockets)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._settings["jupyter_actors_run_events"].close()
