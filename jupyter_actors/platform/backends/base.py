"""The engine interface: what the platform needs from anything that runs containers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True)
class LogLine:
    """One line the container printed, with the engine's timestamp in integer nanoseconds."""

    ts_ns: int
    text: str


class LogStream(Protocol):
    def __iter__(self) -> Iterator[LogLine]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; an existing one with the same name is returned, not duplicated."""

    def start(self, container_id: str) -> None: ...

    def stop(self, container_id: str, grace_secs: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_secs``."""

    def kill(self, container_id: str) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def inspect(self, container_id: str) -> ContainerState | None:
        """None when the container no longer exists."""

    def wait(self, container_id: str) -> None:
        """Block until the container is not running."""

    def logs(self, container_id: str, since_ns: int | None, follow: bool) -> LogStream: ...

    def list(self, labels: dict[str, str]) -> list[ContainerState]: ...

    def disk_usage(self, container_id: str) -> int:
        """Bytes in the container's writable layer."""

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

    def image_exists(self, image: str) -> bool: ...

    def remove_image(self, image: str) -> None: ...

    def push_image(self, image: str, repository: str) -> str:
        """Tag ``image`` as ``repository`` and push it; returns the reference cluster nodes pull."""
