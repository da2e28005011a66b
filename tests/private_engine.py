"""A private Docker engine that a test starts, restarts and destroys; never the engine other tests use.

It has its own ``--data-root``, ``--exec-root`` (so its own managed containerd), unix socket,
``--pidfile`` and bridge (a Linux bridge made here, on a free /24 of 172.31.0.0/16: never
``--bridge=none``, which deletes the host's ``docker0``). ``--iptables=false --ip-masq=false`` keep
it out of the main daemon's iptables chains. Paths live under a short directory in /tmp, because a
unix socket path must be shorter than 108 bytes.

No ``--default-address-pool``: dockerd 20.10 (``configureNetworking`` in daemon_unix.go) deletes the
link named ``docker0`` - the MAIN daemon's bridge, whatever ``--bridge`` says - at every start that
finds a stale default network in its store (so at every restart) when address pools are configured
and live-restore is off. User networks get an explicit free subnet instead (``create_network``).
As a guard, every (re)start checks that the host's ``docker0`` survived, restores it if not, and fails.

    engine = PrivateEngine()
    engine.start()
    engine.prepare_for_runs(main_client, "jupyter-actors/python:3.11")   # docker save | load, runs' network
    env["DOCKER_HOST"] = engine.docker_host
    engine.restart()      # SIGTERM dockerd (its containers are stopped), start it again
    engine.cleanup()      # remove everything it made: containers, images, processes, mounts, bridges, files
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import docker

BRIDGE_SPACE = ipaddress.ip_network("172.31.0.0/16")
HOST_BRIDGE = "docker0"  # the main daemon's bridge: must survive everything done here


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    found = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        target = line.split()[0] if line.split() else ""
        if target and target[0].isdigit():
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_network(target, strict=False))
    return found


def free_bridge_subnet() -> ipaddress.IPv4Network:
    used = used_networks()
    candidates = list(BRIDGE_SPACE.subnets(new_prefix=24))[1:-1]
    offset = secrets.randbelow(len(candidates))  # concurrent sessions rarely pick the same one
    for subnet in candidates[offset:] + candidates[:offset]:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free /24 in 172.31.0.0/16 for a private engine's bridge")


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (from /proc/mounts), deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    with open("/proc/mounts") as handle:
        for line in handle:
            point = line.split()[1].replace("\\040", " ")
            if point == str(root) or point.startswith(prefix):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def processes_under(root: Path) -> list[int]:
    """Processes whose command line names a path under ``root``: this engine's dockerd, containerd, shims."""
    marker = str(root).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry))
    return found


def bridge_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def link_snapshot(name: str) -> dict | None:
    """A link's type, MAC, MTU and IPv4 addresses (enough to recreate a bridge), or None if absent."""
    result = _ip("-j", "-d", "addr", "show", "dev", name, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    [link] = json.loads(result.stdout)
    return {"kind": (link.get("linkinfo") or {}).get("info_kind"), "mac": link.get("address"), "mtu": link.get("mtu"),
            "addrs": [(a["local"], a["prefixlen"], a.get("broadcast")) for a in link.get("addr_info", [])
                      if a.get("family") == "inet"]}


def restore_bridge(name: str, snapshot: dict) -> None:
    """Recreate a deleted bridge as it was (the main daemon finds its bridge by name)."""
    _ip("link", "add", "name", name, "type", "bridge")
    _ip("link", "set", "dev", name, "address", snapshot["mac"], "mtu", str(snapshot["mtu"]))
    for local, prefixlen, broadcast in snapshot["addrs"]:
        _ip("addr", "add", f"{local}/{prefixlen}", *(["broadcast", broadcast] if broadcast else []), "dev", name)
    _ip("link", "set", name, "up")


class PrivateEngine:
    """One private ``dockerd``; every resource it makes is under ``root`` or recorded here for cleanup."""

    def __init__(self, root: str | Path | None = None, *, start_timeout: float = 60, stop_timeout: float = 60) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="/tmp/jae-"))
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.socket = self.root / "docker.sock"
        self.pidfile = self.root / "dockerd.pid"
        self.log_path = self.root / "dockerd.log"
        self.config_file = self.root / "daemon.json"
        self.bridge = f"jae{secrets.token_hex(4)}"  # <= 15 chars (IFNAMSIZ)
        self.subnet: ipaddress.IPv4Network | None = None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None
        self.network_bridges: set[str] = set()  # bridges of its user networks (br-<id>), removed at cleanup
        self.timings: dict[str, float] = {}
        self.host_bridge = link_snapshot(HOST_BRIDGE)
        assert len(str(self.socket)) < 100, f"socket path too long for a unix socket: {self.socket}"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> docker.DockerClient:
        if not bridge_exists(self.bridge):
            self._make_bridge()
        self.config_file.write_text("{}")  # not /etc/docker/daemon.json: nothing of the main daemon's
        for path in (self.data_root, self.exec_root):
            path.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process holds it
        try:
            self.process = subprocess.Popen(
                ["dockerd", f"--config-file={self.config_file}", f"--data-root={self.data_root}",
                 f"--exec-root={self.exec_root}", f"--host={self.docker_host}", f"--pidfile={self.pidfile}",
                 f"--bridge={self.bridge}", "--iptables=false", "--ip-masq=false"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")},
            )
        finally:
            log.close()
        try:
            self.client = self._wait_for_ping(self.start_timeout)
        finally:
            self.check_host_bridge()
        self.timings["start_secs"] = time.monotonic() - started
        return self.client

    def check_host_bridge(self) -> None:
        """The main daemon's docker0 must be exactly as it was; if this engine deleted it, put it back and fail."""
        if self.host_bridge is None:
            return
        now = link_snapshot(HOST_BRIDGE)
        if now is None:
            restore_bridge(HOST_BRIDGE, self.host_bridge)
            raise AssertionError(f"the private engine deleted the host's {HOST_BRIDGE} (restored):\n{self.log_tail()}")
        assert now["addrs"] == self.host_bridge["addrs"], (now, self.host_bridge)

    def _make_bridge(self) -> None:
        self.subnet = free_bridge_subnet()
        address = f"{next(self.subnet.hosts())}/{self.subnet.prefixlen}"
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        try:
            _ip("addr", "add", address, "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except subprocess.CalledProcessError:
            _ip("link", "del", self.bridge, check=False)
            raise

    def _wait_for_ping(self, timeout: float) -> docker.DockerClient:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"private dockerd exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.socket.exists():
                client = docker.DockerClient(base_url=self.docker_host, version="auto", timeout=120)
                try:
                    client.ping()
                    return client
                except Exception as exc:  # not answering yet
                    last_error = exc
                    client.close()
            time.sleep(0.1)
        raise AssertionError(f"private dockerd did not answer in {timeout} s ({last_error}):\n{self.log_tail()}")

    def _terminate(self, timeout: float) -> float:
        """SIGTERM dockerd (it stops its containers and its containerd) and wait for it; SIGKILL at the deadline."""
        started = time.monotonic()
        self.remember_network_bridges()
        if self.client is not None:
            self.client.close()
            self.client = None
        process = self.process
        if process is None or process.poll() is not None:
            return 0.0
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise AssertionError(
                f"private dockerd did not exit within {timeout} s of SIGTERM:\n{self.log_tail()}") from None
        return time.monotonic() - started

    def restart(self) -> docker.DockerClient:
        """Stop the engine gracefully (its containers end with 143/137, as in a host shutdown) and start it again."""
        self.timings["stop_secs"] = self._terminate(self.stop_timeout)
        deadline = time.monotonic() + 15  # shims of the stopped containers exit just after dockerd
        while (leftovers := processes_under(self.root)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not leftovers, f"processes of the private engine survived its stop: {leftovers}\n{self.log_tail()}"
        self.start()
        return self.client  # type: ignore[return-value]

    def stop(self) -> None:
        self._terminate(self.stop_timeout)

    # -- images, networks -------------------------------------------------------------------------

    def load_image(self, source: docker.DockerClient, name: str) -> None:
        """``docker save`` on ``source`` piped into ``docker load`` here (streamed, tags kept)."""
        assert self.client is not None
        started = time.monotonic()
        chunks = source.images.get(name).save(named=name)
        self.client.images.load(chunks)
        assert self.client.images.get(name).id == source.images.get(name).id, f"{name} was not loaded"
        self.timings["image_load_secs"] = time.monotonic() - started

    def prepare_for_runs(self, source: docker.DockerClient, base_image: str) -> None:
        """What the platform needs here: its base image (loaded from ``source``) and the runs' network
        (made on a free subnet; the platform reuses it by name, so it never takes a range from the
        address pools the main daemon uses)."""
        from jupyter_actors.platform.core import NETWORK_NAME

        self.load_image(source, base_image)
        self.create_network(NETWORK_NAME, options={"com.docker.network.bridge.enable_icc": "false"},
                            labels={"jupyter-actors": "network"})

    def create_network(self, name: str, **kwargs) -> str:
        """A user network on a free /24 of 172.31.0.0/16 (so it never collides with the main daemon's)."""
        assert self.client is not None
        subnet = free_bridge_subnet()
        gateway = str(next(subnet.hosts()))
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)])
        network = self.client.api.create_network(name, driver="bridge", ipam=ipam, check_duplicate=True, **kwargs)
        self.remember_network_bridges()
        return network["Id"]

    def remember_network_bridges(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            for network in self.client.api.networks():
                if network.get("Driver") == "bridge" and network["Name"] != "bridge":
                    options = network.get("Options") or {}
                    self.network_bridges.add(options.get("com.docker.network.bridge.name")
                                             or f"br-{network['Id'][:12]}")

    # -- diagnostics and cleanup ------------------------------------------------------------------

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no dockerd log)"
        return f"--- private dockerd log ({self.log_path}) ---\n{text[-chars:]}"

    def empty_engine(self) -> dict:
        """Remove every container, user network and image of the engine; returns what is left (should be none)."""
        client = self.client
        assert client is not None
        for container in client.api.containers(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True)
        self.remember_network_bridges()
        for network in client.api.networks():
            if network["Name"] not in ("bridge", "host", "none"):
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_network(network["Id"])
        for image in client.api.images(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_image(image["Id"], force=True)
        return {
            "containers": client.api.containers(all=True),
            "networks": [n["Name"] for n in client.api.networks() if n["Name"] not in ("bridge", "host", "none")],
            "images": client.api.images(all=True),
        }

    def cleanup(self) -> dict:
        """Destroy the engine and everything it made; returns leftovers (all empty when clean)."""
        left: dict = {}
        if self.client is not None and self.process is not None and self.process.poll() is None:
            try:
                left = {key: value for key, value in self.empty_engine().items() if value}
            except Exception as exc:  # a broken engine is still torn down below
                left["engine_error"] = repr(exc)
        try:
            self._terminate(self.stop_timeout)
        except AssertionError as exc:
            left["dockerd_stop"] = str(exc)[:300]
        for pid in processes_under(self.root):  # a containerd or shim that outlived dockerd: ours, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while processes_under(self.root) and time.monotonic() < deadline:
            time.sleep(0.1)
        for point in mounts_under(self.root):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        for bridge in sorted(self.network_bridges | {self.bridge}):
            if bridge_exists(bridge):
                _ip("link", "del", bridge, check=False)
        try:
            self.check_host_bridge()
        except AssertionError as exc:
            left["host_bridge"] = str(exc)[:300]
        log_copy = self.log_tail()
        shutil.rmtree(self.root, ignore_errors=True)
        remaining = {
            "processes": processes_under(self.root),
            "mounts": mounts_under(self.root),
            "bridges": [b for b in sorted(self.network_bridges | {self.bridge}) if bridge_exists(b)],
            "root_exists": self.root.exists(),
        }
        left.update({key: value for key, value in remaining.items() if value})
        if left:
            left["log"] = log_copy
        return left

    def __enter__(self) -> PrivateEngine:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()


def describe(engine: PrivateEngine) -> str:
    return json.dumps({"root": str(engine.root), "bridge": engine.bridge, "subnet": str(engine.subnet),
                       "timings": engine.timings})
