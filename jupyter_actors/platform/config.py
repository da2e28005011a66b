"""Settings of one platform instance, each declared once: type, default and help.

The server extension's traitlets and the CLI's global options are made from these declarations
(``settings(SERVER)``, ``settings(CLI)``), so a setting is never copied by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .proxy import Upstream

DEFAULT_BASE_IMAGE = "jupyter-actors/python:3.11"
#: Where Debian/Ubuntu keep the CAs the host trusts; images built here trust the same ones.
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: Local equivalents of Apify's base images (any tag), used when the engine cannot pull the real one.
DEFAULT_BASE_IMAGE_MAP = {
    "apify/actor-python": "jupyter-actors/actor-python:3.11",
    "apify/actor-node": "jupyter-actors/actor-node:24",
}
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


# Where a setting can be given besides code: as an ``ActorsExtension`` traitlet of the server
# (``--ActorsExtension.<name>=...`` or jupyter_server_config), and as a global option of the CLI.
SERVER = "server"
CLI = "cli"


def setting(default: Any = MISSING, *, help: str, factory: Callable[[], Any] | None = None,
            choices: tuple[str, ...] | None = None, exposed: tuple[str, ...] = ()) -> Any:
    """A field of ``PlatformConfig``: its type is the annotation, and ``help`` is shown by the server's
    ``--help-all`` and the CLI's ``--help``; ``exposed`` says where else it can be set."""
    metadata = {"help": help, "choices": choices, "exposed": exposed}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


#: SQLite's ``synchronous`` settings that keep a WAL database consistent (OFF does not, on power loss).
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


@dataclass
class PlatformConfig:
    data_dir: Path = setting(
        factory=default_data_dir, exposed=(SERVER, CLI),
        help="Where runs, builds, storages and logs live (default: <jupyter data dir>/actors).")
    base_image: str = setting(
        DEFAULT_BASE_IMAGE, exposed=(SERVER,),
        help="Image every generated Dockerfile starts FROM. Users with a registry may name any image here.")
    build_network: bool = setting(
        True, exposed=(SERVER, CLI),
        help="Builds reach the network, as `docker build` does (Dockerfiles can pip/npm install); off for "
             "air-gapped hosts, where builds that need nothing from outside still work.")
    ca_bundle: str | None = setting(
        DEFAULT_CA_BUNDLE, exposed=(SERVER, CLI),
        help="Host CA bundle copied into the images the platform builds, so TLS through an intercepting proxy "
             "verifies; empty: images trust Debian's CAs only.")
    base_image_map: dict[str, str] = setting(
        factory=lambda: dict(DEFAULT_BASE_IMAGE_MAP), exposed=(SERVER, CLI),
        help="FROM repository (any tag) -> local image used when the engine neither has nor can pull it "
             "(CLI: REPOSITORY=IMAGE, repeatable; defaults map apify/actor-python and apify/actor-node).")
    cpu_mode: str = setting(
        "quota", choices=("quota", "shares"), exposed=(SERVER, CLI),
        help="'quota': a hard CPU quota of memory/4096 cores (Apify's rule); 'shares': a proportional weight.")
    memory_limit_mb: int = setting(
        factory=machine_memory_mb, exposed=(SERVER,),
        help="Total memory of running runs and builds (MB); default: the machine's memory.")
    build_memory_mb: int = setting(
        2048, help="Memory each build gets; it counts towards memory_limit_mb while the build runs.")
    pids_limit: int = setting(1024, help="Processes a run's container may have.")
    container_user: str = setting("1000:1000", help="Containers run as this non-root uid:gid (the base image's "
                                                     "``actor`` user).")
    startup_boost_secs: float = setting(
        0.0, exposed=(SERVER,),
        help="Start-up CPU boost (0: off): runs get up to one core for this many seconds, then their share of "
             "memory/4096 cores (Python starts in seconds at 128 MB, 1/32 core, otherwise). Only with cpu_mode "
             "'quota' and engines that can change a live quota.")
    stop_grace_secs: float = setting(
        10.0, exposed=(SERVER,), help="Seconds between SIGTERM and SIGKILL on timeout or graceful abort.")
    default_memory_mb: int = setting(1024, help="Memory of a new actor's runs unless the run says otherwise.")
    default_timeout_secs: int = setting(3600, help="Timeout of a new actor's runs unless the run says otherwise.")
    actor_api_url: str | None = setting(
        None, help="Base URL actors use for the API (set when the actor-facing API is being served).")
    proxy_port: int = setting(
        0, exposed=(SERVER,),
        help="Port of the runs' forward proxy (APIFY_PROXY_PORT) on actor_api_host (0: the last start's port, "
             "else a free one).")
    upstream_proxy: str | None = setting(
        None, exposed=(SERVER,),
        help="HTTP proxy the runs' proxy sends all traffic through, e.g. a company proxy "
             "(http://user:password@host:port); unset: it connects directly.")
    public_api_url: str = setting(
        "http://127.0.0.1:8888/actors/api",
        help="Base URL the user reaches the API at; used for public/console URLs in API objects.")
    container_port: int = setting(
        4321, help="Port the actor's web server listens on inside the container (an actor's "
                   "APIFY_CONTAINER_PORT wins).")
    public_base_url: str | None = setting(
        None, help="Base URL of the Jupyter server as users reach it; run web servers are proxied under it at "
                   "``actors/web/<unguessable id>/``. None: derived from public_api_url.")
    usage_sample_secs: float = setting(
        3.0, exposed=(SERVER,),
        help="Seconds between samples of running runs' memory and CPU (run stats and the stats-samples series; "
             "0: off).")
    disk_check_interval_secs: float = setting(
        5.0, help="Seconds between disk-usage checks of a running run (its container's files and its storages).")
    docker_base_url: str | None = setting(
        None, exposed=(SERVER,),
        help="Docker engine (or swarm manager) URL; default: DOCKER_HOST or the local socket.")
    backend: str = setting(
        "docker", choices=BACKENDS, exposed=(SERVER, CLI),
        help="Where runs go: 'docker' (this machine's engine), 'swarm' (job services on an existing swarm, "
             "through the manager at docker_base_url) or 'kubernetes' (Jobs in kubernetes_namespace).")
    registry: str | None = setting(
        None, exposed=(SERVER, CLI),
        help="Registry (host:port[/path]) built images are pushed to, for cluster nodes to pull; unset: images "
             "stay on the building engine.")
    swarm_publish_web_servers: bool = setting(
        False, exposed=(SERVER,),
        help="Swarm: publish run web servers in host mode on the task's node (open on all of its interfaces); "
             "off: the proxy explains that they are not reachable.")
    kubernetes_namespace: str = setting("default", exposed=(SERVER,), help="Namespace runs are created in.")
    kubeconfig: str | None = setting(
        None, exposed=(SERVER,), help="kubeconfig file (default: in-cluster config, then ~/.kube/config).")
    kubernetes_context: str | None = setting(
        None, exposed=(SERVER,), help="kubeconfig context (default: the current one).")
    max_restarts: int = setting(
        3, help="Lost runs (engine or host went down) are restarted at most this many times, then FAILED.")
    migrate_grace_secs: float = setting(
        10.0, exposed=(SERVER,), help="Seconds actors get to persist state after `migrating`.")
    on_shutdown: str = setting(
        "migrate", choices=("migrate", "detach"), exposed=(SERVER,),
        help="On server stop: 'migrate' tells actors, waits migrate_grace_secs, stops them and restarts them at "
             "the next start (outage-proof); 'detach' leaves them running to be adopted (an outage over ~2 min "
             "makes SDK actors exit 91).")
    reconcile_interval_secs: float = setting(
        10.0, exposed=(SERVER,),
        help="While the server runs, how often live runs that no watcher follows (the engine restarted or was "
             "unreachable) are adopted again or restarted as lost; an unreachable engine is retried with a pause "
             "that doubles up to 60 s.")
    status_message_rate: float = setting(
        5.0, help="A run's status message is stored (and sent to live streams) at most this many times a "
                  "second; messages set faster are coalesced, the last one wins (0: no limit).")
    persist_state_interval_secs: float = setting(60.0, exposed=(SERVER,), help="Period of the persistState event.")
    system_info_interval_secs: float = setting(5.0, help="Period of the systemInfo event.")
    heartbeat_secs: float = setting(
        5.0, help="How often the platform records that it is alive (to tell what happened while it was down).")
    retention_days: float = setting(
        7.0, exposed=(SERVER,),
        help="Finished runs are deleted with their default storages after this many days; 0 keeps them "
             "forever. Named storages are kept.")
    tombstone_retention_days: float = setting(
        90.0, exposed=(SERVER,),
        help="Deleted and expired runs, builds, actors and storages answer 404 saying why for this many days; "
             "then the record of their deletion is dropped (0 keeps it forever).")
    retention_sweep_secs: float = setting(3600.0, help="How often the retention period is applied (also at start).")
    storage_max_mb: float = setting(
        0.0, exposed=(SERVER, CLI),
        help="Largest size of one storage (key-value store, dataset or request queue) in MB; a write that would "
             "go over it is refused whole with 403 storage-limit-exceeded (0: no limit).")
    storage_quota_mb: float = setting(
        0.0, exposed=(SERVER, CLI),
        help="Most disk space all storages together may take, in MB; a write (record, items, requests, a new "
             "storage) that would go over it is refused whole with 507 storage-quota-exceeded, while reads and "
             "deletes keep working (0: no quota, the disk is the limit).")
    log_cap_mb: float = setting(64.0, exposed=(SERVER,), help="A run log over this size keeps its tail and says so.")
    orphan_grace_secs: float = setting(
        60.0, help="Labelled containers without a run record are removed after this many seconds.")
    request_body_budget_mb: int = setting(
        160, exposed=(SERVER,),
        help="MB of request bodies (as sent, plus their decoded size when compressed) the server holds at once; "
             "a larger upload waits until earlier ones are done, so many large uploads at once cannot exhaust "
             "the server's memory. A body larger than this is taken alone.")
    webhook_timeout_secs: float = setting(
        30.0, exposed=(SERVER,), help="Seconds a webhook's receiver has to answer one call (Apify's 30 s).")
    webhook_max_attempts: int = setting(
        12, exposed=(SERVER,),
        help="Calls a webhook dispatch gets before it is FAILED: the first and its retries (Apify: 1 + 11).")
    webhook_retry_base_secs: float = setting(
        60.0, exposed=(SERVER,),
        help="Wait before a webhook's first retry; each next retry waits twice as long (Apify: about 1 minute, "
             "so the 11th retry comes some 32 hours later).")
    sqlite_synchronous: str = setting(
        "FULL", choices=SYNCHRONOUS_MODES, exposed=(SERVER,),
        help="SQLite `synchronous` of the registry (runs, actors, builds) and the storage catalog. 'FULL': a commit "
             "is on disk when acknowledged, so it survives a power loss or an OS crash; 'NORMAL': it survives a "
             "crash of the server process (kill -9), but the last commits may be lost with power.")
    storage_sqlite_synchronous: str = setting(
        "NORMAL", choices=SYNCHRONOUS_MODES, exposed=(SERVER,),
        help="The same for each storage's own file (records, items, requests): 'NORMAL' by default, as every push "
             "and record PUT would otherwise wait for a disk flush.")

    @property
    def web_base_url(self) -> str:
        base = self.public_base_url or self.public_api_url.rstrip("/").removesuffix("/actors/api")
        return base.rstrip("/") + "/actors/web/"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        for name in ("sqlite_synchronous", "storage_sqlite_synchronous"):  # SQLite takes any case; so do we
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, value.upper())
        for item in fields(self):
            choices = item.metadata["choices"]
            value = getattr(self, item.name)
            if choices and value not in choices:
                raise ValueError(f"{item.name} must be one of {', '.join(choices)}, not {value!r}")
        if self.upstream_proxy:
            Upstream.parse(self.upstream_proxy)  # a wrong URL fails at start, with what to write


@dataclass(frozen=True)
class Setting:
    """One ``PlatformConfig`` field as the server and CLI see it."""

    name: str
    kind: type  # str, int, float, bool, Path or dict (of str to str)
    optional: bool  # None is a value (unset)
    default: Any  # MISSING when ``factory`` makes it
    factory: Callable[[], Any] | None
    help: str
    choices: tuple[str, ...] | None

    def convert(self, value: Any) -> Any:
        """A traitlet's or option's value as the config takes it ("" is unset for optional settings)."""
        if self.optional and value in ("", None):
            return None
        if self.kind is dict:
            return dict(value)
        return Path(value) if self.kind is Path else value


_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path, "dict[str, str]": dict}


def settings(exposed: str) -> list[Setting]:
    """The settings that can be given ``exposed`` (SERVER or CLI), in declaration order."""
    found = []
    for item in fields(PlatformConfig):
        if exposed not in item.metadata["exposed"]:
            continue
        annotation = str(item.type)
        optional = annotation.endswith(" | None")
        found.append(Setting(
            name=item.name, kind=_KINDS[annotation.removesuffix(" | None")], optional=optional,
            default=item.default, factory=None if item.default_factory is MISSING else item.default_factory,
            help=item.metadata["help"], choices=item.metadata["choices"],
        ))
    return found
