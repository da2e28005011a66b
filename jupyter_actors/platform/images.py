"""The default base image, built fully offline: no container registry is needed, ever.

The Debian root filesystem (``rootfs.py``, from the machine's own apt mirror) gets a venv with the real
apify SDK from wheels downloaded on the host; what every image built here shares is at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from .config import DEFAULT_BASE_IMAGE, DEFAULT_BASE_IMAGE_MAP, DEFAULT_CA_BUNDLE
from .errors import BuildFailed, NotFound
from .rootfs import Log, ensure_rootfs_image, image_id, remove_quietly


APIFY_REQUIREMENT = "apify==4.1.0"
DOCKERFILE = Path(__file__).parent / "baseimage" / "Dockerfile"
VENV_STAGE_LABEL = "jupyter-actors.base-stage=venv"
ACTOR_PYTHON_IMAGE = DEFAULT_BASE_IMAGE_MAP["apify/actor-python"]
#: Images built here carry what they were built from (Dockerfile, host CAs, packages): see recipe_of.
RECIPE_LABEL = "jupyter-actors.recipe"


# --- wheels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelTarget:
    """The interpreter wheels are downloaded for: it is the image's, not necessarily the host's."""

    python: str = "3.11"  # MAJOR.MINOR
    glibc: str = "2.36"  # Debian bookworm
    arch: str = platform.machine()

    def pip_args(self) -> list[str]:
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        platforms = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 16, -1)]
        if self.arch in ("x86_64", "i686"):
            platforms += [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}", f"manylinux1_{self.arch}"]
        elif (major, minor) >= (2, 17):
            platforms.append(f"manylinux2014_{self.arch}")
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp"]
        for tag in platforms:
            args += ["--platform", tag]
        return args

    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-glibc{self.glibc}-{self.arch}"


DEFAULT_WHEEL_TARGET = WheelTarget()


def image_wheel_target(client: docker.DockerClient, image: str) -> WheelTarget | None:
    """The wheel target recorded in labels of an image built here; None for other images."""
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    python, glibc, arch = (labels.get(f"jupyter-actors.wheel-{k}") for k in ("python", "glibc", "arch"))
    return WheelTarget(python, glibc, arch) if python and glibc and arch else None


def download_wheels(
    requirements: list[str] | Path,
    dest: Path,
    log: Log = print,
    *,
    target: WheelTarget = DEFAULT_WHEEL_TARGET,
) -> list[Path]:
    """Download wheels (and pip's own) into ``dest`` with the host's pip, for an offline install.

    Tries ``dest`` alone first, so a warm cache needs no network. Note: pip evaluates environment
    markers with the host interpreter even with ``--python-version``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    reqs = ["-r", str(requirements)] if isinstance(requirements, Path) else list(requirements)
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest),
            *target.pip_args(), "pip", *reqs]
    offline_args = [*base, "--no-index", "--find-links", str(dest)]
    offline = subprocess.run(offline_args, check=False, capture_output=True, text=True)
    if offline.returncode != 0:
        log(f"Downloading Python packages for {target.key()} into {dest}")
        started = time.monotonic()
        online = subprocess.run(base, check=False, capture_output=True, text=True)
        if online.returncode != 0:
            tail = "\n".join((online.stdout + online.stderr).strip().splitlines()[-12:])
            raise BuildFailed(
                f"pip could not download wheels for {target.key()} (only binary wheels can be installed offline "
                f"in the image):\n{tail}"
            )
        log(f"Downloaded Python packages in {time.monotonic() - started:.1f} s")
    return sorted(dest.glob("*.whl"))


# --- the base image -------------------------------------------------------------------------------


def ensure_base_image(
    client: docker.DockerClient,
    name: str = DEFAULT_BASE_IMAGE,
    *,
    work_dir: Path,
    log: Log = print,
    rebuild: bool = False,
    ca_bundle: str | None = DEFAULT_CA_BUNDLE,
) -> str:
    """Return the id of image ``name``; build it offline if it is the default one and missing or outdated."""
    if name != DEFAULT_BASE_IMAGE:
        existing = image_id(client, name)
        if existing is None:
            raise NotFound(
                f"Base image {name} is not on the Docker engine and this platform never pulls images. "
                f"Run `docker pull {name}` (or `docker load` it), or use the default base image {DEFAULT_BASE_IMAGE}."
            )
        return existing
    return _ensure_python_image(client, name, None, work_dir=Path(work_dir), log=log, rebuild=rebuild,
                                ca_bundle=ca_bundle)


def ensure_actor_python_image(
    client: docker.DockerClient,
    name: str = ACTOR_PYTHON_IMAGE,
    *,
    work_dir: Path,
    log: Log = print,
    rebuild: bool = False,
    ca_bundle: str | None = DEFAULT_CA_BUNDLE,
) -> str:
    """The local equivalent of apify/actor-python (Apify's conventions, pip from the index), built offline."""
    return _ensure_python_image(client, name, "actor-python", work_dir=Path(work_dir), log=log, rebuild=rebuild,
                                ca_bundle=ca_bundle)


def _ensure_python_image(client: docker.DockerClient, name: str, stage: str | None, *, work_dir: Path, log: Log,
                         rebuild: bool, ca_bundle: str | None) -> str:
    ca = host_ca_bytes(ca_bundle)
    recipe = recipe_of(DOCKERFILE.read_bytes(), ca, APIFY_REQUIREMENT, stage or "default")
    current = current_image(client, name, recipe)
    if current is not None and not rebuild:
        return current
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    with _lock(work_dir / "base-image.lock"):
        current = current_image(client, name, recipe)  # another process may have built it while we waited
        if current is not None and not rebuild:
            return current
        existing = image_id(client, name)
        started = time.monotonic()
        log(f"Building image {name} offline (no registry is used)")
        guess = DEFAULT_WHEEL_TARGET
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Download the wheels for the usual target while the root filesystem is bootstrapped.
            early = pool.submit(download_wheels, [APIFY_REQUIREMENT], _wheel_cache(work_dir, guess), log, target=guess)
            # Only the default image's rebuild starts from a fresh root filesystem; the others reuse it.
            rootfs = ensure_rootfs_image(client, work_dir, log, rebuild=rebuild and stage is None)
            target = _probe_target(client, rootfs)
            if target == guess:
                early.result()
        cache = _wheel_cache(work_dir, target)
        if target != guess:
            download_wheels([APIFY_REQUIREMENT], cache, log, target=target)
        built = _build_final(client, name, rootfs, target, cache, work_dir, log, stage=stage, ca=ca, recipe=recipe)
        if existing is not None and existing != built:
            remove_quietly(client, existing)
        size = client.images.get(built).attrs.get("Size", 0) / 1e6
        log(f"Image {name} ready: {built[:19]}, {size:.0f} MB, {time.monotonic() - started:.0f} s")
        return built


# --- what every image built here shares: the host's CAs, a recipe label, the build loop ---------------


def host_ca_bytes(ca_bundle: str | None) -> bytes:
    """The host's CA bundle (PEM), or nothing when there is none: the image then trusts Debian's CAs."""
    if not ca_bundle:
        return b""
    try:
        return Path(ca_bundle).read_bytes()
    except OSError:
        return b""


def recipe_of(*parts: bytes | str) -> str:
    """What an image is built from; an image whose label differs is outdated and is built again."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def current_image(client: docker.DockerClient, name: str, recipe: str) -> str | None:
    """The id of ``name`` if it exists and was built from ``recipe``."""
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    return image.id if (image.labels or {}).get(RECIPE_LABEL) == recipe else None


def build_image_from_context(client: docker.DockerClient, context: Path, name: str, log: Log, *,
                             buildargs: dict[str, str], recipe: str, dockerfile: str = "Dockerfile",
                             stage: str | None = None) -> str:
    """``docker build`` of one of the platform's own images; logs its steps, raises BuildFailed with the tail."""
    lines: list[str] = []
    for chunk in client.api.build(path=str(context), tag=name, rm=True, forcerm=True, pull=False,
                                  dockerfile=dockerfile, target=stage, buildargs=buildargs,
                                  labels={RECIPE_LABEL: recipe}, decode=True):
        if "error" in chunk:
            detail = "\n".join(lines[-15:])
            raise BuildFailed(f"Building {name} failed: {chunk['error'].strip()}\n{detail}")
        text = chunk.get("stream", "").rstrip()
        if text:
            lines.append(text)
            if text.startswith("Step "):
                log(f"  {text}")
    return str(client.images.get(name).id)


def _wheel_cache(work_dir: Path, target: WheelTarget) -> Path:
    return work_dir / "wheels-cache" / target.key()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_PROBE = "import platform, sys; print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1], platform.machine())"


def _probe_target(client: docker.DockerClient, image: str) -> WheelTarget:
    """Ask the image's own python which wheels fit it (python version, glibc, arch)."""
    out = client.containers.run(image, ["python3", "-c", _PROBE], remove=True, network_disabled=True)
    python, glibc, arch = out.decode().split()
    return WheelTarget(python, glibc, arch)


def _build_final(client: docker.DockerClient, name: str, rootfs: str, target: WheelTarget, cache: Path,
                 work_dir: Path, log: Log, *, stage: str | None, ca: bytes, recipe: str) -> str:
    pip_wheels = sorted(cache.glob("pip-*.whl"), key=lambda p: _version_key(p.name))
    if not pip_wheels:
        raise BuildFailed(f"No pip wheel in {cache} after downloading")
    with tempfile.TemporaryDirectory(prefix="base-context-", dir=work_dir / "tmp") as tmp:
        context = Path(tmp)
        shutil.copy(DOCKERFILE, context / "Dockerfile")
        (context / "host-ca.crt").write_bytes(ca)
        (context / "wheels").mkdir()
        for wheel in cache.glob("*.whl"):
            _link_or_copy(wheel, context / "wheels" / wheel.name)
        buildargs = {
            "ROOTFS": rootfs, "PIP_WHEEL": pip_wheels[-1].name, "REQUIREMENTS": APIFY_REQUIREMENT,
            "WHEEL_PYTHON": target.python, "WHEEL_GLIBC": target.glibc, "WHEEL_ARCH": target.arch,
            "PROVIDES": f"Python {target.python}, {APIFY_REQUIREMENT}",
        }
        log(f"Building {name} on {rootfs} ({APIFY_REQUIREMENT}, offline)")
        image_id = build_image_from_context(client, context, name, log, buildargs=buildargs, recipe=recipe,
                                            stage=stage)
    if stage is None:
        # The venv stage's images hold the wheels and are no cache worth keeping: drop them (by label).
        # (Build the other targets first: they share that stage's cache.)
        client.images.prune(filters={"dangling": True, "label": VENV_STAGE_LABEL})
    return image_id


def _version_key(filename: str) -> tuple[int, ...]:
    version = filename.split("-")[1]
    return tuple(int(x) if x.isdigit() else 0 for x in version.split("."))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
