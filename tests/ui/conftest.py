"""A real `jupyter lab` with jupyter-actors installed, and Debian's chromium driven by Playwright.

The lab runs as a subprocess on a free port with its own token, config, data, runtime and actors
data directories, so its runs and settings are its own; teardown stops it and removes the
containers and images of its platform instance. Screenshots and the lab's log go to
``tests/ui/artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jupyter_actors.server.process import ServerProcess

from ..conftest import cleanup_instance

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps calling home, which this network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Lab's own popups (news, update checks) would cover the panel in screenshots.
DISABLED_LAB_PLUGINS = {"@jupyterlab/apputils-extension:announcements": True}
LABEXTENSION = Path(__file__).parents[2] / "labextension"
LABEXTENSION_NAME = "jupyter-actors-labextension"


def ensure_chromium() -> str:
    """Debian's chromium (never a browser download); installed with apt in CI, else the test is skipped."""
    if not os.path.exists(CHROMIUM) and os.environ.get("CI") == "true":
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    return CHROMIUM


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


@pytest.fixture(scope="module")
def lab(docker_client, base_image, tmp_path_factory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    server = ServerProcess(home, notebook_dir=notebooks, data_dir=home / "actors", app="jupyterlab",
                           config={"LabApp": {"check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                                              "extra_labextensions_path": checkout_labextension(home)}})
    (server.config_dir / "labconfig").mkdir(parents=True)
    # exposeAppInBrowser: window.jupyterapp, so a test can run a command no menu offers.
    (server.config_dir / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": DISABLED_LAB_PLUGINS, "exposeAppInBrowser": True}))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    try:
        server.start(timeout=90)
        yield Lab(url=server.url, token=server.token, root_dir=notebooks, actors_data_dir=server.data_dir)
    finally:
        server.stop(timeout=30)
        (ARTIFACTS / "jupyter-lab.log").write_text(server.log_text())
        instance = server.instance_id()
        if instance:
            cleanup_instance(docker_client, instance)


def checkout_labextension(home: Path) -> list[str]:
    """This checkout's build (labextension/build.sh) ahead of the installed copy, so a worktree's tests see its
    own extension (Lab takes the first extension of a name along its paths); none when it was never built."""
    build = LABEXTENSION / "prebuilt"
    if not (build / "package.json").exists():
        return []
    target = home / "labextensions" / LABEXTENSION_NAME
    shutil.copytree(build, target)  # a copy: a rebuild during the tests does not change what the page loads
    shutil.copy(LABEXTENSION / "install.json", target / "install.json")
    return [str(target.parent)]


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
