"""The local Docker engine through docker-py's low-level API (one HTTP call per operation).

Over 400 lines on purpose: the whole ``Backend`` interface for one engine, plus its log-stream framing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterator

import docker
import requests
from docker.errors import APIError, NotFound
from docker.types import CancellableStream

from ..errors import BuildFailed, EngineUnavailable
from .base import Backend, ContainerSpec, ContainerState, LogLine, LogStream, parse_timestamp_ns

def format_since(ts_ns: int) -> str:
    """The exact ``sec.nanos`` form of the Engine API: docker-py's float can round past a line."""
    return f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}"


def _parse_engine_time(text: str | None) -> dt.datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    return dt.datetime.fromtimestamp(parse_timestamp_ns(text) / 1e9, tz=dt.timezone.utc)


def body_blocks(response: requests.Response) -> Iterator[bytes]:
    """A streamed response's body in blocks of whatever the socket has, with HTTP chunking undone.

    dockerd sends every log line as its own HTTP chunk; urllib3 hands them on one by one (about
    55 k lines/s through docker-py). Reading what is buffered (``read1``) gives whole batches.
    """
    fp = response.raw._fp.fp  # http.client's buffered reader over the socket
    if not response.raw.chunked:
        yield from iter(lambda: fp.read1(1 << 16), b"")
        return
    buffer, pos, need, crlf = b"", 0, None, False
    while data := fp.read1(1 << 16):
        buffer, pos = buffer[pos:] + data, 0
        out: list[bytes] = []
        while True:
            if crlf:  # the CRLF after a chunk's data
                if len(buffer) - pos < 2:
                    break
                pos, crlf = pos + 2, False
            if need is None:  # a chunk-size line
                end = buffer.find(b"\r\n", pos)
                if end < 0:
                    break
                need, pos = int(buffer[pos:end].split(b";", 1)[0], 16), end + 2
                if need == 0:  # the last chunk
                    if out:
                        yield b"".join(out)
                    return
            take = min(need, len(buffer) - pos)
            out.append(buffer[pos:pos + take])
            pos, need = pos + take, need - take
            if need:
                break
            need, crlf = None, True
        if out:
            yield b"".join(out)


def demultiplexed(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The payload of a multiplexed (non-TTY) log stream: 8-byte frame headers removed, per block."""
    pending = b""
    for block in blocks:
        pending = pending + block if pending else block
        payload, offset, size = [], 0, len(pending)
        while size - offset >= 8:
            length = int.from_bytes(pending[offset + 4:offset + 8], "big")
            if size - offset - 8 < length:
                break
            payload.append(pending[offset + 8:offset + 8 + length])
            offset += 8 + length
        pending = pending[offset:]
        if payload:
            yield b"".join(payload)


class DockerLogStream(LogStream):
    """Iterates LogLine objects (``batches()``: lists of them as they arrive); ``close()`` from another
    thread unblocks the reader."""

    def __init__(self, blocks: CancellableStream | Iterator[bytes]) -> None:
        self._blocks = blocks
        self.closed = False

    def batches(self) -> Iterator[list[LogLine]]:
        pending = b""
        parse = self._parse
        try:
            for block in self._blocks:
                pending += block
                *lines, pending = pending.split(b"\n")
                if lines:
                    yield [parse(raw) for raw in lines]
        except (OSError, ValueError, AttributeError):
            # Closing the response from another thread surfaces as one of these; the caller decides.
            return
        except Exception:  # urllib3's ProtocolError when closed mid-chunk from another thread
            if not self.closed:
                raise
            return
        if pending:
            yield [parse(pending)]

    def __iter__(self) -> Iterator[LogLine]:
        for batch in self.batches():
            yield from batch

    @staticmethod
    def _parse(raw: bytes) -> LogLine:
        stamp, _, text = raw.partition(b" ")
        return LogLine(parse_timestamp_ns(stamp.decode()), text.decode("utf-8", errors="replace").rstrip("\r"))

    def close(self) -> None:
        self.closed = True
        close = getattr(self._blocks, "close", None)  # CancellableStream shuts the socket down: unblocks a read
        if close:
            with contextlib.suppress(Exception):  # closing a dead socket must not raise
                close()


class DockerBackend(Backend):
    """Implements ``Backend`` on a Docker engine; all calls are blocking (run them off the event loop)."""

    can_set_cpu = True
    stopped_state_is_final = True  # State.Running, ExitCode and OOMKilled change together in dockerd
    has_network = True

    def __init__(self, client: docker.DockerClient | None = None, base_url: str | None = None, *,
                 connect: bool = True) -> None:
        """``connect=False``: an engine that does not answer now is reached later by ``connect`` (a server
        that starts while dockerd is down); until then every engine call raises ``EngineUnavailable``."""
        self.base_url = base_url
        self._client = client
        self._connected = False
        self._storage_opt_supported: bool | None = None
        self._probe_lock = threading.Lock()
        try:
            self.connect()
        except EngineUnavailable:
            if connect:
                raise
            self.accepting = False

    def connect(self) -> None:
        """Reach the engine (a no-op once reached); raises ``EngineUnavailable`` while it does not answer."""
        if self._connected:
            return
        try:
            client = self._client or (docker.DockerClient(base_url=self.base_url, version="auto") if self.base_url
                                      else docker.from_env(version="auto"))
            client.ping()
        except Exception as exc:  # any failure here means "no engine"
            raise EngineUnavailable(
                f"No Docker engine answers ({exc}). Run `jupyter-actors setup` (it installs and starts one "
                "on Debian as root), or start Docker and point DOCKER_HOST at it."
            ) from None
        self._client, self._connected = client, True

    @property
    def client(self) -> docker.DockerClient:
        if not self._connected or self._client is None:
            raise EngineUnavailable(
                "The Docker engine has not answered since the server started: no run or build can start until "
                "it does (the server connects by itself as soon as it answers).")
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # -- containers -------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        limits = spec.limits
        nano_cpus = spec.startup_nano_cpus or limits.nano_cpus
        cpu = {"nano_cpus": nano_cpus} if limits.cpu_mode == "quota" else {"cpu_shares": limits.cpu_shares}
        host_config = self.api.create_host_config(
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,  # no swap beyond the memory limit
            pids_limit=limits.pids,
            init=True,
            security_opt=["no-new-privileges:true"],
            cap_drop=["ALL"],
            network_mode=spec.network,
            storage_opt={"size": f"{limits.disk_mb}M"} if self.disk_quota_supported(spec.image) else None,
            **cpu,
        )
        try:
            created = self.api.create_container(
                image=spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.env,
                labels=spec.labels,
                user=spec.user,
                host_config=host_config,
                ports=[spec.publish_port] if spec.publish_port else None,
            )
        except APIError as exc:
            if exc.status_code == 409:  # created before a crash: adopt it rather than duplicate it
                return str(self.api.inspect_container(spec.name)["Id"])
            raise
        return str(created["Id"])

    def start(self, container_id: str) -> None:
        self.api.start(container_id)

    def set_cpu(self, container_id: str, nano_cpus: int) -> None:
        """Change a running container's CPU quota (the end of a start-up boost); gone is fine."""
        response = self.api._post_json(self.api._url("/containers/{0}/update", container_id),
                                       data={"NanoCpus": nano_cpus})
        if response.status_code != 404:
            self.api._raise_for_status(response)

    def stop(self, container_id: str, grace_secs: float) -> None:
        with contextlib.suppress(NotFound):
            self.api.stop(container_id, timeout=max(0, int(round(grace_secs))))

    def kill(self, container_id: str) -> None:
        try:
            self.api.kill(container_id)
        except APIError as exc:  # already stopped or gone
            if exc.status_code not in (404, 409):
                raise

    def remove(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise

    def inspect(self, container_id: str) -> ContainerState | None:
        try:
            info = self.api.inspect_container(container_id)
        except NotFound:
            return None
        state = info["State"]
        # The web server is reached on the container's own address on the runs' bridge: the host is
        # on that bridge, so no port is published (publishing costs a docker-proxy per run: ~0.1 s).
        exposed = info["Config"].get("ExposedPorts") or {}
        networks = (info.get("NetworkSettings", {}).get("Networks") or {}).values()
        web_host = (next((n["IPAddress"] for n in networks if n.get("IPAddress")), None)
                    if state.get("Running") else None)
        web_port = int(next(iter(exposed)).split("/")[0]) if exposed and web_host else None
        return ContainerState(
            id=info["Id"],
            name=info["Name"].lstrip("/"),
            running=bool(state.get("Running")),
            exit_code=None if state.get("Running") else state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            started_at=_parse_engine_time(state.get("StartedAt")),
            finished_at=_parse_engine_time(state.get("FinishedAt")),
            labels=info["Config"].get("Labels") or {},
            status=state.get("Status", ""),
            host_port=web_port,
            web_host=web_host,
            created_at=_parse_engine_time(info.get("Created")),
        )

    def wait(self, container_id: str) -> None:
        with contextlib.suppress(NotFound):
            self.api.wait(container_id, timeout=None)

    def logs(self, container_id: str, since_ns: int | None, follow: bool) -> DockerLogStream:
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": int(follow), "tail": "all"}
        if since_ns:
            params["since"] = format_since(since_ns)
        # docker-py's logs() only takes a float `since`; call the same endpoint with the exact string.
        response = self.api._get(self.api._url("/containers/{0}/logs", container_id), params=params, stream=True)
        return DockerLogStream(CancellableStream(demultiplexed(body_blocks(self._stream_response(response))), response))

    def _stream_response(self, response: requests.Response) -> requests.Response:
        """Check the status and lift the client's read timeout: a followed log may be quiet for hours."""
        self.api._raise_for_status(response)
        self.api._disable_socket_timeout(self.api._get_raw_response_socket(response))
        return response

    def require_engine(self) -> None:
        if not self.accepting:
            raise EngineUnavailable(
                "The Docker engine has not answered since the server started: no run or build can start until it "
                "does. The server connects by itself as soon as it answers; start dockerd (or check DOCKER_HOST / "
                "docker_base_url) and try again.")
        try:
            self.api.ping()
        except Exception as exc:  # restarting, stopped, or its socket gone
            raise EngineUnavailable(
                f"The Docker engine does not answer ({type(exc).__name__}): no run can start until it is back. "
                "Runs already started are adopted again, or restarted, once it answers."
            ) from None

    def stopped_by_engine(self, container_id: str, since: dt.datetime | None) -> bool:
        """The engine's ``kill`` events of the container (its stop at a daemon shutdown sends them too; an
        actor that signals itself does not). The engine keeps its last 256 events in memory only."""
        start = (since or dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).timestamp() - 1
        events = self.api.events(since=start, until=time.time() + 0.2, filters={"container": container_id,
                                                                            "event": "kill"}, decode=True)
        try:
            return any(True for _ in events)
        finally:
            events.close()

    def list(self, labels: dict[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        summaries = self.api.containers(all=True, filters=filters)
        states = []
        for summary in summaries:
            state = self.inspect(summary["Id"])
            if state is not None:
                states.append(state)
        return states

    def disk_quota_supported(self, image: str) -> bool:
        """Probe once whether the storage driver enforces ``storage_opt size`` (not overlay2 on ext4)."""
        with self._probe_lock:
            if self._storage_opt_supported is None:
                host_config = self.api.create_host_config(storage_opt={"size": "256M"})
                try:
                    probe = self.api.create_container(image=image, command=["true"], host_config=host_config)
                    self.api.remove_container(probe["Id"], force=True)
                    self._storage_opt_supported = True
                except APIError:
                    self._storage_opt_supported = False
            return self._storage_opt_supported

    def disk_usage(self, container_id: str) -> int:
        found = self.api.containers(all=True, size=True, filters={"id": container_id})
        return int(found[0].get("SizeRw") or 0) if found else 0

    def memory_usage(self, container_id: str) -> int | None:
        """Bytes of memory in use, read from the container's cgroup (0.1 ms; stats() costs ~1 s)."""
        for path in (
            f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes",  # v1, cgroupfs
            f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/memory.usage_in_bytes",
            f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.current",  # v2, systemd
            f"/sys/fs/cgroup/docker/{container_id}/memory.current",
        ):
            try:
                with open(path) as handle:
                    return int(handle.read().strip())
            except (OSError, ValueError):
                continue
        return None

    def memory_peak(self, container_id: str) -> int | None:
        """The container's peak memory, from its cgroup (v1 max_usage_in_bytes, v2 memory.peak)."""
        for path in (
            f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes",
            f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/memory.max_usage_in_bytes",
            f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak",
            f"/sys/fs/cgroup/docker/{container_id}/memory.peak",
        ):
            value = _read_int(path)
            if value is not None:
                return value
        return None

    def network_bytes(self, container_id: str) -> tuple[int, int] | None:
        """Received and sent bytes of the container's network namespace (its first process's
        /proc/<pid>/net/dev, loopback left out); found through the cgroup, no engine call."""
        for path in (f"/sys/fs/cgroup/pids/docker/{container_id}/cgroup.procs",
                     f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.procs",
                     f"/sys/fs/cgroup/docker/{container_id}/cgroup.procs"):
            try:
                with open(path) as handle:
                    pid = handle.readline().strip()
                with open(f"/proc/{pid}/net/dev") as handle:
                    lines = handle.readlines()[2:]
            except (OSError, ValueError):
                continue
            rx = tx = 0
            for line in lines:
                name, _, counters = line.partition(":")
                fields = counters.split()
                if name.strip() != "lo" and len(fields) >= 9:
                    rx, tx = rx + int(fields[0]), tx + int(fields[8])
            return rx, tx
        return None

    def cpu_usage_ns(self, container_id: str) -> int | None:
        """CPU time the container has used so far, in ns, from its cgroup."""
        for path in (
            f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage",  # v1, cgroupfs
            f"/sys/fs/cgroup/cpu,cpuacct/docker/{container_id}/cpuacct.usage",
            f"/sys/fs/cgroup/cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage",
        ):
            try:
                with open(path) as handle:
                    return int(handle.read().strip())
            except (OSError, ValueError):
                continue
        for path in (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat",  # v2
                     f"/sys/fs/cgroup/docker/{container_id}/cpu.stat"):
            try:
                with open(path) as handle:
                    for line in handle:
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) * 1000
            except (OSError, ValueError):
                continue
        return None

    def ensure_network(self, name: str) -> str:
        """A bridge with inter-container traffic disabled, so runs cannot reach each other."""
        existing = self.api.networks(names=[name])
        for network in existing:
            if network["Name"] == name:
                return str(network["Id"])
        try:
            return str(self.api.create_network(
                name,
                driver="bridge",
                options={"com.docker.network.bridge.enable_icc": "false"},
                labels={"jupyter-actors": "network"},
            )["Id"])
        except APIError as exc:
            if exc.status_code == 409:
                return str(self.api.inspect_network(name)["Id"])
            raise

    def network_gateway(self, name: str) -> str:
        config = self.api.inspect_network(name)["IPAM"]["Config"]
        return str(config[0]["Gateway"])

    # -- images -----------------------------------------------------------------------------------

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
        memory = memory_mb * 1024 * 1024
        image_id: str | None = None
        error = None
        last_layer = None
        stage_results: list[str] = []  # what earlier stages of a multi-stage build left (untagged images)
        try:
            for event in self.api.build(
                path=context_dir,
                tag=tag,
                dockerfile=dockerfile,
                rm=True,
                forcerm=True,
                decode=True,
                buildargs=buildargs,
                labels=labels,
                container_limits={"memory": memory, "memswap": memory},
                # The engine's default network, as `docker build`; "none" on air-gapped hosts (build_network off).
                network_mode=None if network else "none",
            ):
                if "stream" in event:
                    for line in event["stream"].splitlines():
                        if line.strip():
                            on_log(line)
                        layer = re.match(r"\s*---> ([0-9a-f]{12,})\s*$", line)
                        if layer:
                            last_layer = layer.group(1)
                        elif re.match(r"Step \d+/\d+ : FROM ", line, re.IGNORECASE) and last_layer:
                            stage_results.append(last_layer)
                if "error" in event:
                    error = event["error"].strip()
                    on_log(error)
                if "aux" in event and "ID" in event["aux"]:
                    image_id = event["aux"]["ID"]
        except APIError as exc:
            error = str(exc.explanation or exc)
            on_log(error)
        for stage_image in stage_results:  # no dangling images left behind (the final image's parents stay)
            try:
                if not self.api.inspect_image(stage_image).get("RepoTags"):  # never a tagged (base) image
                    self.api.remove_image(stage_image)
            except APIError:
                pass
        if error or not image_id:
            raise BuildFailed(f"The Docker build failed: {error or 'no image was produced'}")
        return image_id

    def image_exists(self, image: str) -> bool:
        try:
            self.api.inspect_image(image)
            return True
        except NotFound:
            return False

    def image_id(self, image: str) -> str:
        return str(self.api.inspect_image(image)["Id"])

    def image_labels(self, image: str) -> dict[str, str]:
        return (self.api.inspect_image(image).get("Config") or {}).get("Labels") or {}

    def pull_image(self, image: str) -> str | None:
        """Try to pull ``image``; None with the engine's reason when it cannot (no registry reachable)."""
        name, _, tag = image.rpartition(":")
        if "/" in tag or not name:
            name, tag = image, "latest"
        try:
            for event in self.api.pull(name, tag=tag, stream=True, decode=True):
                if "error" in event:
                    return str(event["error"]).strip()
        except APIError as exc:
            return str(exc.explanation or exc)
        return None

    def push_image(self, image: str, repository: str) -> str:
        """Tag ``image`` as ``repository`` (``registry/name:tag``) and push it; returns that reference."""
        name, _, tag = repository.rpartition(":")
        if "/" in tag or not name:  # a port, not a tag: ``host:5000/name``
            name, tag = repository, "latest"
        self.api.tag(image, name, tag)
        for event in self.api.push(name, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise BuildFailed(event["error"].strip())
        return f"{name}:{tag}"

    def remove_image(self, image: str) -> None:
        try:
            self.api.remove_image(image, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:
                raise


def _read_int(path: str) -> int | None:
    """An integer cgroup file; None when it is missing or not a number."""
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None
