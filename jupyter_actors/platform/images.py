"""The default base image, built fully offline: no container registry is needed, ever.

A Debian root filesystem comes from the machine's own apt mirror (mmdebstrap, else debootstrap), is
imported as an image, and gets a venv with the real apify SDK from wheels downloaded on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from .config import DEFAULT_BASE_IMAGE, DEFAULT_BASE_IMAGE_MAP, DEFAULT_CA_BUNDLE
from .engine_setup import ensure_debootstrap
from .errors import BuildFailed, NotFound

Log = Callable[[str], None]

APIFY_REQUIREMENT = "apify==4.1.0"
ROOTFS_REPOSITORY = "jupyter-actors/debian-rootfs"
ROOTFS_PACKAGES = ["python3", "ca-certificates", "tini"]
DOCKERFILE = Path(__file__).parent / "baseimage" / "Dockerfile"
VENV_STAGE_LABEL = "jupyter-actors.base-stage=venv"
ACTOR_PYTHON_IMAGE = DEFAULT_BASE_IMAGE_MAP["apify/actor-python"]
#: Images built here carry what they were built from (Dockerfile, host CAs, packages): see recipe_of.
RECIPE_LABEL = "jupyter-actors.recipe"
#: debootstrap repeats these per package: log each stage once.
_REPEATED_STAGES = {"Retrieving", "Validating", "Checking", "Found", "Extracting", "Unpacking", "Configuring"}
#: Skipped when picking the mirror: these suites only carry updates on top of the release.
_NON_BASE_SUITE = re.compile(r"-(security|updates|backports|proposed|backports-sloppy)$|/updates$")


# --- apt sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str


def parse_one_line_sources(text: str) -> list[AptSource]:
    """``deb [options] URI SUITE COMPONENTS...`` lines of sources.list; deb-src and comments skipped."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])  # [arch=amd64 signed-by=...]
        parts = line.split()
        if len(parts) >= 2:
            found.append(AptSource(parts[0], parts[1]))
    return found


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Stanzas of a ``*.sources`` file (deb822): each URI x each suite of stanzas of Types ``deb``."""
    found = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:  # continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append(AptSource(uri, suite))
    return found


def pick_base_source(sources: Iterable[AptSource], codename: str | None = None) -> AptSource | None:
    """The release suite's entry: security/updates/backports skipped, the host's codename first."""
    candidates = [
        s for s in sources
        if not _NON_BASE_SUITE.search(s.suite) and "security" not in s.uri and not s.uri.startswith("cdrom:")
    ]
    if codename:
        for source in candidates:
            if source.suite == codename:
                return source
    return candidates[0] if candidates else None


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """All apt sources in apt's own order: sources.list, then sources.list.d/ by file name."""
    found = []
    main = etc_apt / "sources.list"
    if main.is_file():
        found += parse_one_line_sources(main.read_text(errors="replace"))
    parts = etc_apt / "sources.list.d"
    for path in sorted(parts.glob("*")) if parts.is_dir() else []:
        if path.suffix == ".list":
            found += parse_one_line_sources(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            found += parse_deb822_sources(path.read_text(errors="replace"))
    return found


def host_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    try:
        text = os_release.read_text()
    except OSError:
        return None
    match = re.search(r'^VERSION_CODENAME="?([^"\n]+)"?', text, re.MULTILINE)
    return match.group(1) if match else None


def apt_mirror() -> AptSource:
    """The mirror and release suite this machine's apt uses; read at run time, never hard-coded."""
    source = pick_base_source(read_apt_sources(), host_codename())
    if source is None:
        raise BuildFailed(
            "Found no Debian/Ubuntu release entry (Types: deb, not -security/-updates) in /etc/apt/sources.list "
            "or /etc/apt/sources.list.d/; the default base image is built from that mirror."
        )
    return source


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
        existing = _image_id(client, name)
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
        existing = _image_id(client, name)
        started = time.monotonic()
        log(f"Building image {name} offline (no registry is used)")
        guess = DEFAULT_WHEEL_TARGET
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Download the wheels for the usual target while the root filesystem is bootstrapped.
            early = pool.submit(download_wheels, [APIFY_REQUIREMENT], _wheel_cache(work_dir, guess), log, target=guess)
            # Only the default image's rebuild starts from a fresh root filesystem; the others reuse it.
            rootfs = _ensure_rootfs_image(client, work_dir, log, rebuild=rebuild and stage is None)
            target = _probe_target(client, rootfs)
            if target == guess:
                early.result()
        cache = _wheel_cache(work_dir, target)
        if target != guess:
            download_wheels([APIFY_REQUIREMENT], cache, log, target=target)
        image_id = _build_final(client, name, rootfs, target, cache, work_dir, log, stage=stage, ca=ca, recipe=recipe)
        if existing is not None and existing != image_id:
            _remove_quietly(client, existing)
        size = client.images.get(image_id).attrs.get("Size", 0) / 1e6
        log(f"Image {name} ready: {image_id[:19]}, {size:.0f} MB, {time.monotonic() - started:.0f} s")
        return image_id


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


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


def _remove_quietly(client: docker.DockerClient, image: str) -> None:
    with contextlib.suppress(docker.errors.APIError):  # still used by a container or a child image: leave it
        client.images.remove(image)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_rootfs_image(client: docker.DockerClient, work_dir: Path, log: Log, *, rebuild: bool) -> str:
    mirror = apt_mirror()
    tag = f"{ROOTFS_REPOSITORY}:{mirror.suite}"
    existing = _image_id(client, tag)
    if existing is not None and not rebuild:
        log(f"Reusing root filesystem image {tag}")
        return tag
    if os.geteuid() != 0:
        raise BuildFailed(
            "Building the default base image needs root (it bootstraps Debian from the apt mirror). Run "
            "`jupyter-actors setup` as root once, or set base_image to an image you have pulled."
        )
    tool = ensure_debootstrap(log=log)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=work_dir / "tmp") as tmp:
        os.chmod(tmp, 0o755)  # apt's download sandbox user (_apt) must reach mmdebstrap's dir inside
        tarball = Path(tmp) / "rootfs.tar"
        started = time.monotonic()
        log(f"Bootstrapping {mirror.suite} from {mirror.uri} with {Path(tool).name}")
        if Path(tool).name == "mmdebstrap":
            _mmdebstrap(tool, mirror, tarball, Path(tmp), log)
        else:
            _debootstrap(tool, mirror, tarball, Path(tmp), work_dir / "debootstrap-cache", log)
        log(f"Root filesystem ready in {time.monotonic() - started:.0f} s; importing it as {tag}")
        repository, _, suite = tag.rpartition(":")
        result = client.api.import_image_from_file(str(tarball), repository=repository, tag=suite)
        if "error" in str(result).lower():
            raise BuildFailed(f"docker import of the root filesystem failed: {result}")
    if existing is not None and existing != _image_id(client, tag):
        _remove_quietly(client, existing)
    return tag


def _mmdebstrap(tool: str, mirror: AptSource, tarball: Path, tmp: Path, log: Log) -> None:
    cmd = [
        tool, "--mode=root", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
        "--dpkgopt=force-unsafe-io",
        *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("locale", "man", "info")),
    ]
    merged_usr = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    if merged_usr.is_dir():  # merges /usr itself instead of installing usrmerge (and with it perl)
        cmd.append(f"--hook-dir={merged_usr}")
    _run_logged([*cmd, mirror.suite, str(tarball), mirror.uri], log, env={**os.environ, "TMPDIR": str(tmp)})


def _debootstrap(tool: str, mirror: AptSource, tarball: Path, tmp: Path, cache: Path, log: Log) -> None:
    rootfs = tmp / "rootfs"
    cache.mkdir(exist_ok=True)  # the .debs: a rebuild downloads nothing again
    try:
        _run_logged([tool, "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
                     f"--cache-dir={cache}", mirror.suite, str(rootfs), mirror.uri], log)
        for pattern in ("usr/share/locale/*", "usr/share/man/*", "usr/share/info/*",
                        "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
            for path in glob.glob(str(rootfs / pattern)):
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        _run_logged(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], log)
    finally:
        _unmount_under(rootfs)  # a failed debootstrap can leave /proc mounted inside; never rm through it


def _unmount_under(root: Path) -> None:
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _run_logged(cmd: list[str], log: Log, env: dict[str, str] | None = None) -> None:
    """Run ``cmd``; log its stage changes (the word after ``I:``), keep the tail for the error."""
    # debootstrap reports on stdout, mmdebstrap on stderr: read both as one stream.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            errors="replace")
    tail: list[str] = []
    last_stage = None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        match = re.match(r"([IEW]): (\S+)", line)
        if match and not (match.group(2) in _REPEATED_STAGES and match.group(2) == last_stage):
            log(f"  {line}")
            last_stage = match.group(2)
    if proc.wait() != 0:
        raise BuildFailed(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}):\n" + "\n".join(tail))


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
