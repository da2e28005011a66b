"""``ActorsExtension``: creates the platform, mounts the API and serves the actor-facing listener.

The user-facing API lives at ``<base_url>actors/api/v2/...`` behind Jupyter's auth; actors reach a
second listener on the Docker network's gateway with their per-run tokens.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Enum, Float, Int, TraitType, Undefined, Unicode

from ..api.actor_server import ActorApiServer, api_settings
from ..api.auth import CLI_CREDENTIAL
from ..api.routes import make_handlers
from ..platform.config import SERVER, PlatformConfig, Setting, settings
from ..platform.core import Platform
from ..platform.datadir import DataDirLock, ServerInfo, remove_server_info, write_server_info
from .user_handlers import HANDLERS as USER_HANDLERS
from .web_proxy import RunWebProxyHandler
from .runs_stream import stream_handlers

API_PATH = "actors/api"
#: First pause before the engine is tried again when it did not answer at start (it doubles from there).
ENGINE_RETRY_FIRST_SECS = 0.5

_TRAITS: dict[type, type[TraitType[Any, Any]]] = {
    str: Unicode, Path: Unicode, int: Int, float: Float, bool: Bool, dict: Dict,
}


def platform_trait(name: str) -> TraitType[Any, Any]:
    """The configurable traitlet of the platform setting ``name`` (an unset optional setting is "")."""
    item: Setting = next(s for s in settings(SERVER) if s.name == name)
    if item.choices:
        trait: TraitType[Any, Any] = Enum(list(item.choices), item.default, help=item.help)
    else:
        trait = _TRAITS[item.kind](help=item.help)
        if item.factory is None:
            trait.default_value = "" if item.optional and item.default is None else item.default
        else:
            factory = item.factory
            trait.default_value = Undefined  # made when first read: the data dir honours the environment then
            trait.make_dynamic_default = (  # type: ignore[attr-defined]
                (lambda: str(factory())) if item.kind is Path else factory
            )
    return trait.tag(config=True)


class ActorsExtension(ExtensionApp):
    name = "jupyter_actors"
    load_other_extensions = True

    # The platform's settings: type, default and help come from their one declaration (platform/config.py).
    data_dir = platform_trait("data_dir")
    base_image = platform_trait("base_image")
    build_network = platform_trait("build_network")
    ca_bundle = platform_trait("ca_bundle")
    base_image_map = platform_trait("base_image_map")
    cpu_mode = platform_trait("cpu_mode")
    memory_limit_mb = platform_trait("memory_limit_mb")
    startup_boost_secs = platform_trait("startup_boost_secs")
    stop_grace_secs = platform_trait("stop_grace_secs")
    on_shutdown = platform_trait("on_shutdown")
    migrate_grace_secs = platform_trait("migrate_grace_secs")
    reconcile_interval_secs = platform_trait("reconcile_interval_secs")
    persist_state_interval_secs = platform_trait("persist_state_interval_secs")
    usage_sample_secs = platform_trait("usage_sample_secs")
    retention_days = platform_trait("retention_days")
    tombstone_retention_days = platform_trait("tombstone_retention_days")
    storage_max_mb = platform_trait("storage_max_mb")
    storage_quota_mb = platform_trait("storage_quota_mb")
    log_cap_mb = platform_trait("log_cap_mb")
    sqlite_synchronous = platform_trait("sqlite_synchronous")
    storage_sqlite_synchronous = platform_trait("storage_sqlite_synchronous")
    backend = platform_trait("backend")
    docker_base_url = platform_trait("docker_base_url")
    registry = platform_trait("registry")
    swarm_publish_web_servers = platform_trait("swarm_publish_web_servers")
    kubernetes_namespace = platform_trait("kubernetes_namespace")
    kubeconfig = platform_trait("kubeconfig")
    kubernetes_context = platform_trait("kubernetes_context")
    proxy_port = platform_trait("proxy_port")
    upstream_proxy = platform_trait("upstream_proxy")
    request_body_budget_mb = platform_trait("request_body_budget_mb")
    webhook_timeout_secs = platform_trait("webhook_timeout_secs")
    webhook_max_attempts = platform_trait("webhook_max_attempts")
    webhook_retry_base_secs = platform_trait("webhook_retry_base_secs")

    # The server's own settings (the actor-facing listener).
    actor_api_host = Unicode(
        "", help="Address the actor-facing API listens on (default: the runs' network gateway).").tag(config=True)
    actor_api_port = Int(
        0, help="Port of the actor-facing API (0: the last start's port, else a free one).").tag(config=True)
    actor_api_url = Unicode("", help=(
        "URL actors reach the actor-facing API at, when it differs from http://<actor_api_host>:<port> "
        "(a cluster: the address nodes route to this server).")).tag(config=True)

    def public_api_url(self) -> str:
        server = self.serverapp
        assert server is not None, "an extension is initialised by its server"
        return f"http://127.0.0.1:{server.port}{url_path_join(server.base_url, API_PATH)}"

    def initialize_settings(self) -> None:
        config = PlatformConfig(
            **{item.name: item.convert(getattr(self, item.name)) for item in settings(SERVER)},
            public_api_url=self.public_api_url(),
        )
        server = self.serverapp
        assert server is not None, "an extension is initialised by its server"
        # One platform per data directory: refuse to start beside a CLI or another server hosting it.
        self.data_dir_lock = DataDirLock(config.data_dir).acquire(f"a Jupyter server (port {server.port})")
        try:
            self.platform = Platform(config, wait_for_engine=True)
        except BaseException:
            self.data_dir_lock.release()
            raise
        self.settings.update(api_settings(self.platform, config.public_api_url, asyncio.get_event_loop()))
        # A CLI on this data directory finds this server here and runs through it (runs show live in Lab).
        self.server_info = ServerInfo(
            url_path_join(server.connection_url, API_PATH), ServerInfo.new_credential(), os.getpid(),
            server.certfile or True)
        self.settings[CLI_CREDENTIAL] = self.server_info.credential
        write_server_info(config.data_dir, self.server_info)
        self.actor_server: ActorApiServer | None = None
        self._engine_task: asyncio.Task[None] | None = None
        # Kernels this server starts inherit these, so `%load_ext jupyter_actors` finds the API by itself.
        # A server with no token (password only) gives Jupyter's kernels no credential at all, so its kernels
        # get the server's own credential, which opens the actors API only (never kernels or terminals).
        os.environ["JUPYTER_ACTORS_API_URL"] = config.public_api_url
        os.environ["JUPYTER_ACTORS_TOKEN"] = server.identity_provider.token or self.server_info.credential
        if server.certfile:  # an HTTPS server's own certfile verifies it (self-signed or not): see Client
            os.environ.setdefault("JUPYTER_ACTORS_CA_FILE", server.certfile)
        if self.platform.engine_connected:
            self._serve_actors(self.actor_api_host or self.platform.network_gateway())
            self._start_platform()
        else:  # the user API serves what is stored; starts answer 503 until the engine is reached
            self.log.warning("jupyter-actors: the container engine does not answer; serving stored data only, "
                             "and connecting as soon as it answers")
            self._engine_task = asyncio.get_event_loop().create_task(self._wait_for_engine())
        self.log.info("jupyter-actors: data in %s", config.data_dir)

    def _serve_actors(self, host: str) -> None:
        """Serve the actor-facing API (on the server's event loop)."""
        self.actor_server = ActorApiServer(
            self.platform, host, self.actor_api_port, advertise_url=self.actor_api_url or None)
        self.actor_server.start()
        self.log.info("jupyter-actors: actors reach the API at %s", self.actor_server.url)

    def _start_platform(self) -> None:
        """The start-up work on the engine (blocking): background tasks, adopting unfinished runs, schedules."""
        self.platform.start_background()
        try:
            self.platform.reconcile()
        except Exception:  # the housekeeping thread reconciles the runs left unwatched again, periodically
            self.log.exception("jupyter-actors: reconciling unfinished runs failed; retrying in the background")
        self.platform.start_scheduler()
        self.platform.accept_runs()

    async def _wait_for_engine(self) -> None:
        """Retry the engine with a pause that doubles up to ``reconcile_interval_secs``; once it answers, do
        the start-up work that was skipped."""
        pause = ENGINE_RETRY_FIRST_SECS
        while True:
            try:
                await asyncio.to_thread(self.platform.connect_engine)
                host = self.actor_api_host or await asyncio.to_thread(self.platform.network_gateway)
                break
            except Exception as exc:  # EngineUnavailable, or an engine error while it comes up
                self.log.info("jupyter-actors: the engine does not answer yet (%s); trying again in %.1f s",
                              exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, max(ENGINE_RETRY_FIRST_SECS, self.reconcile_interval_secs))
        try:
            self._serve_actors(host)
            await asyncio.to_thread(self._start_platform)
        except Exception:
            self.log.exception("jupyter-actors: serving on the engine failed; starts stay refused")
            return
        self.log.info("jupyter-actors: connected to the container engine; runs can start")

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_handlers(API_PATH, USER_HANDLERS))
        self.handlers.extend(stream_handlers(API_PATH))
        self.handlers.append((r"actors/web/([^/]+)(/.*)?", RunWebProxyHandler))

    async def stop_extension(self) -> None:
        # Actors hear `migrating` over the actor API's sockets, so that API stops last.
        if self._engine_task is not None:
            self._engine_task.cancel()
        await asyncio.to_thread(self.platform.shutdown)
        if self.actor_server is not None:
            self.actor_server.stop()
        self.settings["jupyter_actors_run_events"].close()
        remove_server_info(self.platform.data_dir, self.server_info)
        self.data_dir_lock.release()
