"""Find a Docker engine, or on a bare Debian/Ubuntu machine as root install and start one.

CI machines start without an engine; a developer laptop usually has one. Anywhere else the error
message says what to install, because the platform cannot run actors without an engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from .errors import EngineUnavailable

DOCKERD_LOG = Path("/var/log/jupyter-actors-dockerd.log")
DOCKERD_START_TIMEOUT_SECS = 60.0
#: Tools that build a Debian root filesystem from an apt mirror, preferred first.
BOOTSTRAP_TOOLS = ("mmdebstrap", "debootstrap")
_LOCAL_SOCKETS = {"unix:///var/run/docker.sock", "unix:///run/docker.sock", "unix://var/run/docker.sock"}

Log = Callable[[str], None]


def ensure_engine(
    docker_base_url: str | None = None, *, install: bool = True, log: Log = print
) -> docker.DockerClient:
    """Return a client of an engine that answers a ping; install/start a local dockerd if allowed."""
    client = _answering_client(docker_base_url)
    if client is not None:
        return client
    target = docker_base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if target not in _LOCAL_SOCKETS:
        # Starting a local daemon cannot help a remote DOCKER_HOST / configured URL.
        raise EngineUnavailable(
            f"No Docker engine answers at {target}. Start it, or unset DOCKER_HOST / docker_base_url to "
            "use a local engine."
        )
    if not install or not _can_use_apt():
        raise EngineUnavailable(_no_engine_message(target))
    if shutil.which("dockerd") is None:
        _apt_install(_missing_packages(), log)
    if not _dockerd_running():
        _start_dockerd(log)
    else:
        log("A dockerd process is running but does not answer yet; waiting for it")
    return _wait_for_engine(docker_base_url, DOCKERD_START_TIMEOUT_SECS)


def ensure_debootstrap(*, log: Log = print) -> str:
    """Path of the tool that bootstraps the base image's Debian root filesystem; installed if missing.

    mmdebstrap is preferred (about twice as fast as debootstrap here and writes a tarball directly);
    debootstrap is used when only it is present.
    """
    for tool in BOOTSTRAP_TOOLS:
        path = shutil.which(tool)
        if path:
            return path
    if not _can_use_apt():
        raise EngineUnavailable(
            "Building the default base image needs `mmdebstrap` (or `debootstrap`) and root: it builds the image "
            "offline from the machine's Debian mirror. Install one (`apt-get install mmdebstrap`) and run as root, "
            "or set the platform's base_image to an image you have pulled (e.g. `docker pull python:3.11-slim`)."
        )
    _apt_install(_missing_packages(), log)
    path = shutil.which(BOOTSTRAP_TOOLS[0])
    if not path:
        raise EngineUnavailable(f"apt-get installed {BOOTSTRAP_TOOLS[0]} but it is not on PATH")
    return path


def _answering_client(base_url: str | None) -> docker.DockerClient | None:
    try:
        client = docker.DockerClient(base_url=base_url, version="auto") if base_url else docker.from_env(version="auto")
        client.ping()
        return client
    except (docker.errors.DockerException, OSError):
        return None


def _no_engine_message(target: str) -> str:
    return (
        f"No Docker engine answers at {target}. Install Docker Engine (https://docs.docker.com/engine/install/; "
        "on Debian/Ubuntu `apt-get install docker.io`) and start it (`systemctl start docker` or `dockerd &`), "
        "or point DOCKER_HOST at a running engine. Running as root on Debian/Ubuntu, the platform installs and "
        "starts one itself."
    )


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    ids = {fields.get("ID", "").strip('"')} | set(fields.get("ID_LIKE", "").strip('"').split())
    return bool(ids & {"debian", "ubuntu"})


def _can_use_apt() -> bool:
    return os.geteuid() == 0 and _is_debian_like() and shutil.which("apt-get") is not None


def _missing_packages() -> list[str]:
    """The engine and the bootstrap tool in one apt call: each apt-get update costs seconds."""
    missing = [] if shutil.which("dockerd") else ["docker.io"]
    if not any(shutil.which(tool) for tool in BOOTSTRAP_TOOLS):
        missing.append(BOOTSTRAP_TOOLS[0])
    return missing


def _apt_install(packages: list[str], log: Log) -> None:
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"Installing {' '.join(packages)} with apt-get")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise EngineUnavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")


def _dockerd_running() -> bool:
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        return Path(f"/proc/{pid}").exists()
    except (OSError, ValueError):
        return False


def _start_dockerd(log: Log) -> None:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not on PATH after installing docker.io")
    log(f"Starting dockerd (log: {DOCKERD_LOG})")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(DOCKERD_LOG, "ab") as out:
        # Own session: the daemon must outlive this process and not get its terminal's signals.
        subprocess.Popen(
            [dockerd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_for_engine(base_url: str | None, timeout: float) -> docker.DockerClient:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while time.monotonic() < deadline:
        client = _answering_client(base_url)
        if client is not None:
            return client
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    tail = ""
    with contextlib.suppress(OSError):
        tail = "\n".join(DOCKERD_LOG.read_text(errors="replace").splitlines()[-15:])
    raise EngineUnavailable(f"dockerd did not answer within {timeout:.0f} s. Last lines of {DOCKERD_LOG}:\n{tail}")
