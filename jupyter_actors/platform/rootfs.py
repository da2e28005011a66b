"""The Debian root filesystem every image built here starts from, bootstrapped from the host's own apt
mirror (mmdebstrap, else debootstrap) and imported as an image: no container registry is needed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from .engine_setup import ensure_debootstrap
from .errors import BuildFailed

Log = Callable[[str], None]

ROOTFS_REPOSITORY = "jupyter-actors/debian-rootfs"
ROOTFS_PACKAGES = ["python3", "ca-certificates", "tini"]
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


# --- the root filesystem image ---------------------------------------------------------------------


def ensure_rootfs_image(client: docker.DockerClient, work_dir: Path, log: Log, *, rebuild: bool) -> str:
    mirror = apt_mirror()
    tag = f"{ROOTFS_REPOSITORY}:{mirror.suite}"
    existing = image_id(client, tag)
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
    if existing is not None and existing != image_id(client, tag):
        remove_quietly(client, existing)
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


def image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


def remove_quietly(client: docker.DockerClient, image: str) -> None:
    with contextlib.suppress(docker.errors.APIError):  # still used by a container or a child image: leave it
        client.images.remove(image)
