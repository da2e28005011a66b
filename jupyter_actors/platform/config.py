"""Settings of one platform instance. Plain data: the server extension maps its traitlets onto it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_IMAGE = "jupyter-actors/python:3.11"
BACKENDS = ("docker", "swarm", "kubernetes")


def default_data_dir() -> Path:
    """Under Jupyter's data dir when jupyter_core is around, else ~/.local/share/jupyter."""
    env = os.environ.get("JUPYTER_ACTORS_DATA_DIR")
    if env:
        return Path(env)
    try:
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "actors"
    except ImportError:  # pragma: no cover - jupyter_core is a dependency of jupyter-server
        return Path.home() / ".local" / "share" / "jupyter" / "actors"


def machine_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 * 1024))


#: SQLite's ``synchronous`` settings that keep a WAL database consistent (OFF does not, on power loss).
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


@dataclass
class PlatformConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    #: Image every generated Dockerfile starts FROM. Users with a registry may name any image here.
    base_image: str = DEFAULT_BASE_IMAGE
    #: "quota" = hard CPU quota of memory/4096 cores (Apify's rule); "shares" = proportional weight.
    cpu_mode: str = "quota"
    #: Sum of memory of running runs and builds may not exceed this (MB). Default: machine memory.
    memory_limit_mb: int = field(default_factory=machine_memory_mb)
    #: Memory each build gets; it counts towards ``memory_limit_mb`` while the build runs.
    build_memory_mb: int = 2048
    pids_limit: int = 1024
    #: Containers run as this non-root uid:gid (the base image's ``actor`` user).
    container_user: str = "1000:1000"
    #: Optional start-up boost (0: off): a run gets up to one core for this many seconds after its
    #: container starts, then its share of memory/4096 cores. Python starts in seconds at 128 MB
    #: (1/32 core) otherwise. Only with cpu_mode "quota" and engines that can change a live quota.
    startup_boost_secs: float = 0.0
    #: Seconds between SIGTERM and SIGKILL when a run times out or is aborted gracefully.
    stop_grace_secs: float = 10.0
    default_memory_mb: int = 1024
    default_timeout_secs: int = 3600
    #: Base URL actors use for the API (set when the actor-facing API is being served).
    actor_api_url: str | None = None
    #: Port of the runs' forward proxy (APIFY_PROXY_PORT), beside the actor API (0: the last start's, else free).
    proxy_port: int = 0
    #: An HTTP proxy the runs' proxy sends everything through (``http://user:pass@host:port``, e.g. a
    #: company proxy); None: it connects directly.
    upstream_proxy: str | None = None
    #: Base URL the user reaches the API at; used for public/console URLs in API objects.
    public_api_url: str = "http://127.0.0.1:8888/actors/api"
    #: Port the actor's web server listens on inside the container (an actor's APIFY_CONTAINER_PORT wins).
    container_port: int = 4321
    #: Base URL of the Jupyter server as users reach it; run web servers are proxied under it at
    #: ``actors/web/<unguessable id>/``. None: derived from ``public_api_url``.
    public_base_url: str | None = None
    #: Seconds between disk-usage checks of a running container.
    disk_check_interval_secs: float = 5.0
    docker_base_url: str | None = None
    #: Where runs go: "docker" (this machine's engine), "swarm" (services on an existing swarm, through
    #: a manager at ``docker_base_url``) or "kubernetes" (Jobs in ``kubernetes_namespace``).
    backend: str = "docker"
    #: Registry built images are pushed to (``host:port[/path]``) so cluster nodes can pull them;
    #: None: images stay on the building engine (one machine, or images distributed another way).
    registry: str | None = None
    #: Swarm only: publish run web servers in host mode on the task's node (open on all its interfaces).
    swarm_publish_web_servers: bool = False
    kubernetes_namespace: str = "default"
    kubeconfig: str | None = None
    kubernetes_context: str | None = None
    #: Lost runs (engine or host went down) are restarted at most this many times, then FAILED.
    max_restarts: int = 3
    #: On a planned server stop, actors get this long after ``migrating`` to persist their state.
    migrate_grace_secs: float = 10.0
    #: "migrate": stop runs on server shutdown and restart them at the next start (outage-proof);
    #: "detach": leave them running to be adopted (an outage over ~2 min makes SDK actors exit 91).
    on_shutdown: str = "migrate"
    persist_state_interval_secs: float = 60.0
    system_info_interval_secs: float = 5.0
    #: How often the platform records that it is alive (to tell what happened while it was down).
    heartbeat_secs: float = 5.0
    #: Finished runs are deleted with their default storages and logs after this many days (0: never).
    retention_days: float = 7.0
    #: How often the retention period is applied (also once at start).
    retention_sweep_secs: float = 3600.0
    #: A run log larger than this keeps its tail and says so.
    log_cap_mb: float = 64.0
    #: Labelled containers without a run record are removed after this many seconds.
    orphan_grace_secs: float = 60.0
    #: SQLite ``synchronous`` of the registry (runs, actors, builds) and the storage catalog. "FULL":
    #: a commit is on disk when acknowledged, so it survives a power loss or an OS crash; "NORMAL":
    #: it survives a crash of the server process (kill -9) but the last commits may be lost with power.
    sqlite_synchronous: str = "FULL"
    #: The same for each storage's own file (records, items, requests): "NORMAL" by default, as every
    #: push and record PUT would otherwise wait for a disk flush.
    storage_sqlite_synchronous: str = "NORMAL"

    @property
    def web_base_url(self) -> str:
        base = self.public_base_url or self.public_api_url.rstrip("/").removesuffix("/actors/api")
        return base.rstrip("/") + "/actors/web/"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.on_shutdown not in ("migrate", "detach"):
            raise ValueError(f"on_shutdown must be 'migrate' or 'detach', not {self.on_shutdown!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.upstream_proxy:
            from .proxy import Upstream

            Upstream.parse(self.upstream_proxy)  # a wrong URL fails at start, with what to write
        for name in ("sqlite_synchronous", "storage_sqlite_synchronous"):
            value = getattr(self, name)
            if not isinstance(value, str) or value.upper() not in SYNCHRONOUS_MODES:
                raise ValueError(f"{name} must be one of {', '.join(SYNCHRONOUS_MODES)}, not {value!r}")
            setattr(self, name, value.upper())
        if self.cpu_mode not in ("quota", "shares"):
            raise ValueError(f"cpu_mode must be 'quota' or 'shares', not {self.cpu_mode!r}")
