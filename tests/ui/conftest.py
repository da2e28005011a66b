"""A real `jupyter lab` with jupyter-actors installed, and Debian's chromium driven by Playwright.

The lab runs as a subprocess on a free port with its own token, config, data, runtime and actors
data directories, so its runs and settings are its own; teardown stops it and removes the
containers and images of its platform instance. Screenshots and the lab's log go to
``tests/ui/artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ..conftest import cleanup_instance

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps calling home, which this network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Lab's own popups (news, update checks) would cover the panel in screenshots.
DISABLED_LAB_PLUGINS = {"@jupyterlab/apputils-extension:announcements": True}


def ensure_chromium() -> str:
    """Debian's chromium (never a browser download); installed with apt in CI, else the test is skipped."""
    if not os.path.exists(CHROMIUM) and os.environ.get("CI") == "true":
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str  # ends with /
    token: str
    root_dir: Path
    actors_data_dir: Path

    @property
    def api(self) -> str:
        return f"{self.url}actors/api"

    def client(self) -> httpx.Client:
        return httpx.Client(headers={"Authorization": f"token {self.token}"}, timeout=30)


def wait_for_lab(process: subprocess.Popen, url: str, token: str, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            response = httpx.get(f"{url}api/status", headers={"Authorization": f"token {token}"}, timeout=5)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"jupyter lab did not answer in {timeout} s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)


def instance_id(actors_data_dir: Path) -> str | None:
    registry = actors_data_dir / "registry.sqlite"
    if not registry.exists():
        return None
    with sqlite3.connect(registry) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
    return row[0] if row else None


@pytest.fixture(scope="module")
def lab(docker_client, base_image, tmp_path_factory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab")
    dirs = {name: home / name for name in ("config", "data", "runtime", "actors", "notebooks")}
    for path in dirs.values():
        path.mkdir()
    (dirs["config"] / "labconfig").mkdir()
    (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": DISABLED_LAB_PLUGINS}))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    log_path = ARTIFACTS / "jupyter-lab.log"
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTER_ACTORS_DATA_DIR": str(dirs["actors"]),
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={dirs['notebooks']}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ActorsExtension.stop_grace_secs=2",
    ]
    if os.geteuid() == 0:  # CI and these machines run as root
        command.append("--allow-root")
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_lab(process, url, token, log_path)
        yield Lab(url=url, token=token, root_dir=dirs["notebooks"], actors_data_dir=dirs["actors"])
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        instance = instance_id(dirs["actors"])
        if instance:
            cleanup_instance(docker_client, instance)


@asynccontextmanager
async def chromium_page() -> AsyncIterator:
    """A fresh browser page (async Playwright: the tests run on pytest-jupyter's event loop)."""
    from playwright.async_api import async_playwright

    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1440, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(30_000)
            try:
                yield page
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "failure.png"))
                raise
        finally:
            await browser.close()


async def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
