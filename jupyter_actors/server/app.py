"""``ActorsExtension``: creates the platform, mounts the API and serves the actor-facing listener.

The user-facing API lives at ``<base_url>actors/api/v2/...`` behind Jupyter's auth; actors reach a
second listener on the Docker network's gateway with their per-run tokens.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Enum, Float, Int, Unicode, default

from ..api.actor_server import ActorApiServer, api_settings
from ..api.routes import make_handlers
from ..platform.config import (
    BACKENDS,
    DEFAULT_BASE_IMAGE,
    DEFAULT_BASE_IMAGE_MAP,
    DEFAULT_CA_BUNDLE,
    PlatformConfig,
    machine_memory_mb,
)
from ..platform.core import Platform
from .auth import JupyterAuthBase
from .web_proxy import RunWebProxyHandler
from .runs_stream import stream_handlers

API_PATH = "actors/api"


class ActorsExtension(ExtensionApp):
    name = "jupyter_actors"
    load_other_extensions = True

    data_dir = Unicode(help="Where runs, builds, storages and logs live (default: <jupyter data dir>/actors).").tag(config=True)
    base_image = Unicode(DEFAULT_BASE_IMAGE, help="Image generated Dockerfiles start FROM.").tag(config=True)
    build_network = Bool(True, help=(
        "Builds reach the network, as `docker build` does (Dockerfiles can pip/npm install); off for air-gapped "
        "hosts.")).tag(config=True)
    ca_bundle = Unicode(DEFAULT_CA_BUNDLE, help=(
        "Host CA bundle copied into the images the platform builds (TLS through an intercepting proxy); "
        "empty: none.")).tag(config=True)
    base_image_map = Dict(dict(DEFAULT_BASE_IMAGE_MAP), help=(
        "FROM repository (any tag) -> local image used when the engine neither has nor can pull it.")).tag(config=True)
    cpu_mode = Enum(["quota", "shares"], "quota", help="Hard CPU quota of memory/4096 cores, or a proportional weight.").tag(config=True)
    memory_limit_mb = Int(help="Total memory of running runs and builds (MB); default: the machine's memory.").tag(config=True)
    startup_boost_secs = Float(0.0, help=(
        "Start-up CPU boost (0: off): runs get up to one core for this many seconds, then their share of "
        "memory/4096 cores.")).tag(config=True)
    stop_grace_secs = Float(10.0, help="Seconds between SIGTERM and SIGKILL on timeout or graceful abort.").tag(config=True)
    actor_api_host = Unicode("", help="Address the actor-facing API listens on (default: the runs' network gateway).").tag(config=True)
    actor_api_port = Int(0, help="Port of the actor-facing API (0: the last start's port, else a free one).").tag(config=True)
    proxy_port = Int(0, help="Port of the runs' forward proxy (APIFY_PROXY_PORT) on actor_api_host (0: the last "
                               "start's port, else a free one).").tag(config=True)
    upstream_proxy = Unicode("", help=(
        "HTTP proxy the runs' proxy sends all traffic through, e.g. a company proxy "
        "(http://user:password@host:port); empty: it connects directly.")).tag(config=True)
    on_shutdown = Enum(["migrate", "detach"], "migrate", help=(
        "On server stop: 'migrate' tells actors, waits migrate_grace_secs, stops them and restarts them at the "
        "next start; 'detach' leaves them running to be adopted.")).tag(config=True)
    migrate_grace_secs = Float(10.0, help="Seconds actors get to persist state after `migrating`.").tag(config=True)
    persist_state_interval_secs = Float(60.0, help="Period of the persistState event.").tag(config=True)
    retention_days = Float(7.0, help="Finished runs are deleted with their default storages after this many "
                                     "days; 0 keeps them forever. Named storages are kept.").tag(config=True)
    log_cap_mb = Float(64.0, help="A run log over this size keeps its tail and says so.").tag(config=True)
    backend = Enum(list(BACKENDS), "docker", help=(
        "Where runs go: 'docker' (this machine's engine), 'swarm' (job services on an existing swarm, through "
        "the manager at docker_base_url) or 'kubernetes' (Jobs in kubernetes_namespace).")).tag(config=True)
    docker_base_url = Unicode("", help="Docker engine (or swarm manager) URL; default: DOCKER_HOST or the local socket.").tag(config=True)
    registry = Unicode("", help="Registry (host:port[/path]) built images are pushed to, for cluster nodes to pull.").tag(config=True)
    actor_api_url = Unicode("", help=(
        "URL actors reach the actor-facing API at, when it differs from http://<actor_api_host>:<port> "
        "(a cluster: the address nodes route to this server).")).tag(config=True)
    swarm_publish_web_servers = Bool(False, help=(
        "Swarm: publish run web servers in host mode on the task's node (open on all of its interfaces); "
        "off: the proxy explains that they are not reachable.")).tag(config=True)
    kubernetes_namespace = Unicode("default", help="Namespace runs are created in.").tag(config=True)
    kubeconfig = Unicode("", help="kubeconfig file (default: in-cluster config, then ~/.kube/config).").tag(config=True)
    kubernetes_context = Unicode("", help="kubeconfig context (default: the current one).").tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.environ.get("JUPYTER_ACTORS_DATA_DIR") or str(Path(self.data_dir_default()))

    @staticmethod
    def data_dir_default() -> str:
        from jupyter_core.paths import jupyter_data_dir

        return os.path.join(jupyter_data_dir(), "actors")

    @default("memory_limit_mb")
    def _default_memory_limit(self) -> int:
        return machine_memory_mb()

    def public_api_url(self) -> str:
        server = self.serverapp
        return f"http://127.0.0.1:{server.port}{url_path_join(server.base_url, API_PATH)}"

    def initialize_settings(self) -> None:
        config = PlatformConfig(
            data_dir=Path(self.data_dir), base_image=self.base_image, cpu_mode=self.cpu_mode,
            build_network=self.build_network, ca_bundle=self.ca_bundle or None,
            base_image_map=dict(self.base_image_map),
            memory_limit_mb=self.memory_limit_mb, stop_grace_secs=self.stop_grace_secs,
            startup_boost_secs=self.startup_boost_secs,
            on_shutdown=self.on_shutdown, migrate_grace_secs=self.migrate_grace_secs,
            persist_state_interval_secs=self.persist_state_interval_secs,
            retention_days=self.retention_days, log_cap_mb=self.log_cap_mb,
            public_api_url=self.public_api_url(), backend=self.backend,
            docker_base_url=self.docker_base_url or None, registry=self.registry or None,
            swarm_publish_web_servers=self.swarm_publish_web_servers,
            kubernetes_namespace=self.kubernetes_namespace, kubeconfig=self.kubeconfig or None,
            kubernetes_context=self.kubernetes_context or None,
            proxy_port=self.proxy_port, upstream_proxy=self.upstream_proxy or None,
        )
        self.platform = Platform(config)
        self.settings.update(api_settings(self.platform, config.public_api_url, asyncio.get_event_loop()))
        self.actor_server = ActorApiServer(
            self.platform, self.actor_api_host or self.platform.network_gateway(), self.actor_api_port,
            advertise_url=self.actor_api_url or None,
        )
        self.actor_server.start()
        self.platform.start_background()
        self.platform.reconcile()
        # Kernels this server starts inherit these, so `%load_ext jupyter_actors` finds the API by itself.
        os.environ["JUPYTER_ACTORS_API_URL"] = config.public_api_url
        os.environ["JUPYTER_ACTORS_TOKEN"] = self.serverapp.identity_provider.token
        self.log.info("jupyter-actors: data in %s; actors reach the API at %s", config.data_dir, self.actor_server.url)

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_handlers(API_PATH, JupyterAuthBase, "User"))
        self.handlers.extend(stream_handlers(API_PATH))
        self.handlers.append((r"actors/web/([^/]+)(/.*)?", RunWebProxyHandler))

    async def stop_extension(self) -> None:
        # Actors hear `migrating` over the actor API's sockets, so that API stops last.
        await asyncio.to_thread(self.platform.shutdown)
        self.actor_server.stop()
        self.settings["jupyter_actors_run_events"].close()
