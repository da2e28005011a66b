"""The engine interface: what the platform needs from anything that runs containers.

``Backend`` is a base class, not a protocol: it declares every capability an engine may have, with
a default for the optional ones, so the platform calls them and never probes with ``hasattr``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..limits import ContainerLimits


@dataclass
class ContainerSpec:
    name: str
    image: str
    env: dict[str, str]
    labels: dict[str, str]
    limits: ContainerLimits
    user: str | None = None
    network: str | None = None
    #: Container port the run's web server listens on (reached by the server, never published on the
    #: host by the local engine), if any.
    publish_port: int | None = None
    command: list[str] | None = None
    #: CPU (in 1e-9 cores) for the first seconds of a run, before ``Backend.set_cpu`` lowers it to the
    #: run's share (the optional start-up boost); None: the run's share from the start.
    startup_nano_cpus: int | None = None
    #: When the run must be over (its timeout); engines that can enforce a deadline themselves use it
    #: as a backstop while the server is away. None: no timeout.
    timeout_at: dt.datetime | None = None


@dataclass
class ContainerState:
    id: str
    name: str
    running: bool
    exit_code: int | None
    oom_killed: bool
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    labels: dict[str, str] = field(default_factory=dict)
    status: str = ""  # the engine's own word: created, running, exited, ...
    host_port: int | None = None
    created_at: dt.datetime | None = None
    #: Host the run's web server is reached at from the server (with ``host_port``, the port there):
    #: the container's bridge address on one engine, the node on swarm, the pod IP on Kubernetes.
    web_host: str | None = None
    #: The engine itself ended the run at its deadline (a backstop while the server was away).
    deadline_exceeded: bool = False
    #: Why the engine (not the actor) ended the run: a node went away, the task was shut down.
    #: Such runs are restarted like runs lost in an outage.
    lost: str | None = None
    #: The engine's own explanation of a failure to run (image not found on a node, ...).
    error: str | None = None
    #: Times the engine replaced the run's container after a node disruption (the log continues).
    disruptions: int = 0


_SECONDS_CACHE: dict[str, int] = {}


def parse_timestamp_ns(text: str) -> int:
    """RFC3339Nano (``2024-01-02T03:04:05.123456789Z``) to integer nanoseconds; never compare strings."""
    base, _, rest = text.partition(".")
    if not rest:  # no fraction
        base, rest = text.rstrip("Z"), "Z"
    seconds = _SECONDS_CACHE.get(base)
    if seconds is None:
        seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        if len(_SECONDS_CACHE) > 4096:
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[base] = seconds
    fraction = rest.rstrip("Z")
    if "+" in fraction or "-" in fraction:  # a zone offset instead of Z (not produced by dockerd)
        raise ValueError(f"unexpected timestamp {text!r}")
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


@dataclass(frozen=True)
class LogLine:
    """One line the container printed, with the engine's timestamp in integer nanoseconds."""

    ts_ns: int
    text: str


class LogStream:
    """A container's log as lines; ``close()`` from another thread unblocks a reader."""

    def __iter__(self) -> Iterator[LogLine]:
        raise NotImplementedError

    def batches(self) -> Iterator[list[LogLine]]:
        """Lines in the groups they arrived in (one write per group); by default one line each."""
        for line in self:
            yield [line]

    def close(self) -> None:
        raise NotImplementedError


class Backend:
    """What runs containers. Required methods raise NotImplementedError; optional capabilities have a
    default that says "not available" and that callers handle."""

    #: False when containers run on other machines (the host's boot time says nothing about them, and
    #: a run's web address may move).
    runs_on_this_host: bool = True
    #: Whether ``set_cpu`` can change a live container's CPU (needed for the start-up boost).
    can_set_cpu: bool = False
    #: False while starts are refused although the engine may answer: a server that started without it is
    #: still connecting (network, reconciliation); ``require_engine`` says so.
    accepting: bool = True
    #: Whether runs get a network of their own on this machine (``ensure_network``/``network_gateway``).
    has_network: bool = False
    #: Whether an inspect that finds a container stopped already has its final state (exit code, OOM
    #: kill): then the watcher neither waits nor inspects again. False where the engine's state lags (a
    #: swarm task, a Kubernetes Job).
    stopped_state_is_final: bool = False

    @property
    def web_unavailable_reason(self) -> str | None:
        """Why no run's web server can be reached on this engine at all (None: they can)."""
        return None

    # -- containers (required) ---------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; an existing one with the same name is returned, not duplicated."""
        raise NotImplementedError

    def start(self, container_id: str) -> None:
        raise NotImplementedError

    def stop(self, container_id: str, grace_secs: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_secs``."""
        raise NotImplementedError

    def kill(self, container_id: str) -> None:
        raise NotImplementedError

    def remove(self, container_id: str) -> None:
        raise NotImplementedError

    def inspect(self, container_id: str) -> ContainerState | None:
        """None when the container no longer exists."""
        raise NotImplementedError

    def wait(self, container_id: str) -> None:
        """Block until the container is not running."""
        raise NotImplementedError

    def logs(self, container_id: str, since_ns: int | None, follow: bool) -> LogStream:
        raise NotImplementedError

    def list(self, labels: dict[str, str]) -> list[ContainerState]:
        raise NotImplementedError

    def require_engine(self) -> None:
        """Raise ``EngineUnavailable`` when the engine does not answer now (checked before a run is recorded)."""

    def connect(self) -> None:
        """Reach an engine that did not answer when the backend was made; ``EngineUnavailable`` while it still
        does not. Starts stay refused until ``accepting`` is set (the server's start-up work is done)."""

    def stopped_by_engine(self, container_id: str, since: dt.datetime | None) -> bool:
        """Whether the engine (its own stop at an engine restart, or ``docker stop``) signalled the container
        since ``since``: an exit 137/143 that is then not the actor's own. False when the engine cannot tell."""
        return False

    def disk_usage(self, container_id: str) -> int:
        """Bytes in the container's writable layer."""
        raise NotImplementedError

    # -- images (required) -------------------------------------------------------------------------

    def build_image(
        self,
        context_dir: str,
        tag: str,
        dockerfile: str,
        memory_mb: int,
        buildargs: dict[str, str],
        labels: dict[str, str],
        on_log: Callable[[str], None],
        network: bool = True,
    ) -> str:
        """Build an image and return its id; raise BuildFailed with the engine's message.

        ``network``: the build's RUN steps reach the network (False: none, for air-gapped hosts)."""
        raise NotImplementedError

    def image_exists(self, image: str) -> bool:
        raise NotImplementedError

    def image_id(self, image: str) -> str:
        raise NotImplementedError

    def remove_image(self, image: str) -> None:
        raise NotImplementedError

    def push_image(self, image: str, repository: str) -> str:
        """Tag ``image`` as ``repository`` and push it; returns the reference cluster nodes pull."""
        raise NotImplementedError

    # -- optional capabilities, with their defaults ------------------------------------------------

    def pull_image(self, image: str) -> str | None:
        """Pull ``image``; None when it arrived, else why not (a FROM then falls back to a local image)."""
        return f"{type(self).__name__} cannot pull images"

    def image_labels(self, image: str) -> dict[str, str]:
        """The labels of a local image ({} when unknown): they say what a local equivalent really has."""
        return {}

    def set_cpu(self, container_id: str, nano_cpus: int) -> None:
        """Change a running container's CPU (only called when ``can_set_cpu``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot change a running container's CPU")

    def disk_quota_supported(self, image: str) -> bool:
        """Whether the engine enforces a run's disk limit itself (else the platform measures it)."""
        return True

    def memory_usage(self, container_id: str) -> int | None:
        """Bytes of memory the container uses now; None when the engine cannot tell."""
        return None

    def cpu_usage_ns(self, container_id: str) -> int | None:
        """CPU time the container used so far, in ns; None when the engine cannot tell."""
        return None

    def memory_peak(self, container_id: str) -> int | None:
        """The most memory the container has used at once, in bytes; None when the engine cannot tell."""
        return None

    def network_bytes(self, container_id: str) -> tuple[int, int] | None:
        """Bytes the container received and sent (rx, tx) so far; None when the engine cannot tell."""
        return None

    def ensure_network(self, name: str) -> str | None:
        """Create the runs' network if needed (only when ``has_network``); returns its id."""
        return None

    def network_gateway(self, name: str) -> str | None:
        """The host's address on the runs' network; None when runs have no network on this machine."""
        return None
