"""Where the CLI's platform is: the running server that holds the data directory, else this process.

Either way the commands get a ``Client`` of the user API: a server's (so runs show live in Lab and
the server watches them), or one this process serves on loopback around a platform it hosts while
holding the data directory's lock (see ``platform/datadir.py``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ..notebook.client import Client
from ..notebook.errors import ActorsError
from ..platform.datadir import DataDirBusy, DataDirLock, ServerInfo, read_server_info, remove_server_info
from ..platform.errors import PlatformError
from .options import _config, given_settings, option_name


@contextmanager
def local_platform(args: argparse.Namespace, *, serve_api: bool = True) -> Iterator:
    """A Platform in this process, with the actor-facing API served from a background loop."""
    from ..api.actor_server import ActorApiServer, LoopThread
    from ..platform.core import Platform

    platform = Platform(_config(args))
    loop = server = None
    try:
        if serve_api:
            loop = LoopThread()
            server = ActorApiServer(platform, platform.network_gateway())
            loop.call(server.start, loop.loop)
            platform.start_background()
        yield platform
    finally:
        if server is not None and loop is not None:
            loop.call(server.stop)
        if loop is not None:
            loop.stop()
        platform.close()


@contextmanager
def platform_client(args: argparse.Namespace, *, runs: bool = False) -> Iterator[Client]:
    """A client of the platform on ``--data-dir``; ``runs``: this command starts runs (when hosted here,
    the actor-facing API and the run watchers are started too)."""
    config = _config(args)
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire(f"the jupyter-actors CLI ({args.command})")
    except DataDirBusy as busy:
        info = read_server_info(config.data_dir)
        if info is None or busy.holder.get("pid") not in (None, info.pid):
            raise
        with server_client(args, info, busy) as client:
            yield client
        return
    try:
        remove_server_info(config.data_dir)  # a killed server's leftover: it holds no lock any more
        with local_platform(args, serve_api=runs) as platform, hosted_client(platform) as client:
            yield client
    finally:
        lock.release()


@contextmanager
def server_client(args: argparse.Namespace, info: ServerInfo, busy: DataDirBusy) -> Iterator[Client]:
    """The holding server's API, once it answers; platform settings are the server's, so giving one is refused."""
    ignored = [option_name(name) for name in given_settings(args) if name != "data_dir"]
    if ignored:
        raise PlatformError(f"A Jupyter server (pid {info.pid}) hosts {busy.data_dir} with its own settings, "
                            f"so {', '.join(ignored)} would have no effect: drop them, or configure the server.")
    probe = Client(info.url, info.credential, verify=info.verify, retry_attempts=1)
    try:
        probe.get("/users/me")
    except ActorsError as exc:
        raise PlatformError(f"{busy.message} Its server at {info.url} does not answer: {exc}") from None
    finally:
        probe.close()
    client = Client(info.url, info.credential, verify=info.verify)
    try:
        yield client
    finally:
        client.close()


class HostedClient(Client):
    """The user API of a platform this process hosts: what it runs cannot outlive the command."""


@contextmanager
def hosted_client(platform) -> Iterator[Client]:
    """The user API served from this process on loopback, behind a credential made for it."""
    from ..api.actor_server import LoopThread
    from ..api.user_server import UserApiServer

    # The API's 4xx answers reach the user as the CLI's own error message; the access log would repeat them.
    logging.getLogger("tornado.access").setLevel(logging.ERROR)
    loop = LoopThread()
    server = UserApiServer(platform, ServerInfo.new_credential())
    client = None
    try:
        client = HostedClient(loop.call(server.start, loop.loop), server.credential)
        yield client
    finally:
        if client is not None:
            client.close()
        loop.call(server.stop)
        loop.stop()
