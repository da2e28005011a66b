"""End to end in a real JupyterLab and chromium: a saved notebook's run output shown live again by the
labextension's renderer, the memory/CPU plot of the detail view, and the notification when a watched run ends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import expect

from jupyter_actors.notebook import Client, Run, build, define, start
from jupyter_actors.notebook.live import MIME_TYPE, LiveView

from .conftest import ARTIFACTS, LABEXTENSION, LABEXTENSION_NAME, Lab, chromium_page
from .test_lab_panel import set_theme

pytestmark = pytest.mark.docker

ACTOR = "ui-renderer"
# Runs until its STOP record is set, so a test decides when it ends; its memory grows to ~64 MB first, so
# the plot has a shape.
MAIN = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        held, tick = [], 0
        while not await Actor.get_value("STOP"):
            if tick < 8:
                held.append(bytearray(b"x") * (8 * 2**20))
            if tick < 3:
                await Actor.push_data({"tick": tick, "square": tick * tick})
            Actor.log.info("tick %d", tick)
            tick += 1
            await asyncio.sleep(0.5)
        await Actor.set_value("OUTPUT", {"ticks": tick})

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def actors(lab: Lab) -> Iterator[Client]:
    client = Client(lab.api, lab.token)
    define(ACTOR, MAIN, client=client)
    build(ACTOR, client=client)
    try:
        yield client
    finally:
        client.close()


def start_running(client: Client) -> Run:
    run = start(ACTOR, memory=1024, timeout=300, client=client)
    while run.refresh(wait=5)["status"] == "READY":  # long-polls: returns when the status changes
        pass
    assert run.status == "RUNNING", run.data
    return run


def stop(client: Client, run: Run) -> None:
    client.request("PUT", f"/key-value-stores/{run.data['defaultKeyValueStoreId']}/records/STOP",
                   json=True)


def saved_bundle(run: Run) -> dict:
    """What the notebook's live view saves in the output for this run, now."""
    bundles: list[dict] = []
    LiveView(run, sink=bundles.append).render()
    return bundles[-1]


def write_notebook(lab: Lab, name: str, bundles: list[dict]) -> None:
    """A notebook whose cells' saved outputs are live-view bundles, as a kernel left them."""
    cells = [{"cell_type": "code", "id": f"cell{i}", "source": f"jupyter_actors.run({b[MIME_TYPE]['id']!r}).show()",
              "metadata": {}, "execution_count": i + 1,
              "outputs": [{"output_type": "display_data", "data": b, "metadata": {}}]}
             for i, b in enumerate(bundles)]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with lab.client() as client:
        response = client.put(f"{lab.url}api/contents/{name}", json={"type": "notebook", "content": notebook})
        assert response.status_code in (200, 201), response.text


async def shot(locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_the_lab_serves_this_checkouts_build(lab: Lab):
    """The renderer tests below test this checkout's extension, not an older installed copy."""
    page = httpx.get(f"{lab.url}lab?token={lab.token}", timeout=30).text
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    ours = [ext for ext in config["federated_extensions"] if ext["name"] == LABEXTENSION_NAME]
    built = json.loads((LABEXTENSION / "prebuilt" / "package.json").read_text())
    assert ours and ours[0]["load"] == built["jupyterlab"]["_build"]["load"]


async def test_a_saved_run_output_follows_the_run_live(lab: Lab, actors: Client):
    run = start_running(actors)
    missing = saved_bundle(run)
    missing[MIME_TYPE] = {**missing[MIME_TYPE], "id": "NoSuchRun0123456"}
    write_notebook(lab, "renderer.ipynb", [saved_bundle(run), missing])
    async with chromium_page() as page:
        await page.goto(f"{lab.url}lab/tree/renderer.ipynb?token={lab.token}")
        view = page.locator(f'.jp-ActorsRenderer[data-run-id="{run.id}"]')
        await expect(view).to_be_visible(timeout=60_000)
        # Live from the server: running, its log following, and the memory/CPU sparkline once sampled.
        await expect(view).to_have_attribute("data-source", "live")
        await expect(view).to_have_attribute("data-status", "RUNNING")
        await expect(view.locator(".jp-ActorsBadge")).to_have_text("RUNNING")
        await expect(view.locator(".jp-ActorsRenderer-log")).to_contain_text("tick 3", timeout=60_000)
        spark = view.locator("svg.jp-ActorsPlot-spark polyline.jp-ActorsPlot-memory")
        await expect(spark).to_have_count(1, timeout=60_000)
        await shot(view, "renderer-light-running")
        # The run that this server does not know keeps its saved state, and says so.
        unknown = page.locator('.jp-ActorsRenderer[data-run-id="NoSuchRun0123456"]')
        await expect(unknown).to_have_attribute("data-source", "missing")
        await expect(unknown).to_contain_text("this server does not know the run")
        await expect(unknown.locator(".jp-ActorsBadge")).to_have_text("RUNNING")

        stop(actors, run)
        await expect(view).to_have_attribute("data-status", "SUCCEEDED", timeout=60_000)
        await expect(view.locator(".jp-ActorsBadge-ok")).to_have_text("SUCCEEDED")
        await expect(view.locator(".jp-ActorsRenderer-peak")).to_contain_text(
            re.compile(r"^peak \d+ MB of 1024 MB"), timeout=30_000)
        peak_mb = round(run.refresh()["stats"]["memMaxBytes"] / 2**20)
        await expect(view.locator(".jp-ActorsRenderer-peak")).to_contain_text(f"peak {peak_mb} MB")
        await expect(view.locator(".jp-ActorsRenderer-log")).to_contain_text("tick 8")
        # At the end, as the notebook's live view: OUTPUT and the dataset's first rows.
        await expect(view.locator(".jp-ActorsRenderer-output")).to_contain_text('"ticks":')
        await expect(view.locator(".jp-ActorsRenderer-dataset tbody tr")).to_have_count(3)
        await expect(view.locator(".jp-ActorsRenderer-dataset thead")).to_contain_text("square")
        await shot(view, "renderer-light")

        # Reopened later, the saved bundle (it says RUNNING) shows the run as it ended.
        await page.reload()
        view = page.locator(f'.jp-ActorsRenderer[data-run-id="{run.id}"]')
        await expect(view).to_have_attribute("data-status", "SUCCEEDED", timeout=60_000)
        await expect(view.locator(".jp-ActorsRenderer-peak")).to_contain_text("MB of 1024 MB")
        await expect(view.locator("svg.jp-ActorsPlot-spark")).to_have_count(1, timeout=30_000)
        await expect(view.locator(".jp-ActorsRenderer-log")).to_contain_text("Exiting Actor")
        log = await view.locator(".jp-ActorsRenderer-log").element_handle()  # shows its end
        await page.wait_for_function("el => el.scrollHeight - el.scrollTop - el.clientHeight < 20", arg=log)
        await set_theme(page, "JupyterLab Dark")
        await page.wait_for_function("el => el.scrollHeight - el.scrollTop - el.clientHeight < 20", arg=log)
        await shot(view, "renderer-dark")

        # Its detail view (the renderer's Details button) plots memory against the limit and CPU.
        await view.locator(".jp-ActorsRenderer-open").click()
        detail = page.locator(f"#jupyter-actors-run-{run.id}")
        await expect(detail).to_be_visible()
        plot = detail.locator(".jp-ActorsRun-usage")
        await expect(plot.locator("svg.jp-ActorsPlot-full polyline.jp-ActorsPlot-memory")).to_have_count(1)
        await expect(plot.locator("svg.jp-ActorsPlot-full polyline.jp-ActorsPlot-cpu")).to_have_count(1)
        await expect(plot.locator(".jp-ActorsPlot-limitLabel")).to_have_text("limit 1024 MB")
        await expect(plot.locator(".jp-ActorsPlot-legend")).to_contain_text(f"memory: peak {peak_mb} MB of 1024 MB")
        await plot.scroll_into_view_if_needed()
        await shot(plot, "plot-dark")
        await set_theme(page, "JupyterLab Light")
        await shot(plot, "plot-light")


async def test_a_watched_run_notifies_when_it_ends(lab: Lab, actors: Client):
    run = start_running(actors)
    async with chromium_page() as page:
        await page.goto(f"{lab.url}lab?token={lab.token}")
        await expect(page.locator("#jupyter-actors-runs")).to_be_attached(timeout=60_000)
        await page.wait_for_function(
            "window.jupyterapp && window.jupyterapp.commands.hasCommand('jupyter-actors:watch-run')")
        # What the panel's start and rerun buttons do after starting a run (notify.ts: watchStartedRun).
        await page.evaluate("runId => window.jupyterapp.commands.execute('jupyter-actors:watch-run', {runId})", run.id)
        toast = page.locator(".Toastify__toast", has_text=f"Run {run.id} of {ACTOR} SUCCEEDED")
        stop(actors, run)
        await expect(toast).to_be_visible(timeout=60_000)
        await expect(toast.get_by_role("button", name="Show run")).to_be_visible()
        await shot(toast, "notification-light")
        await toast.get_by_role("button", name="Show run").click()
        await expect(page.locator(f"#jupyter-actors-run-{run.id}")).to_be_visible()
        # A run nobody watches ends without a notification.
        other = start_running(actors)
        stop(actors, other)
        row = page.locator(f'tr.jp-ActorsTable-row[data-run-id="{other.id}"]')  # the page has seen it end
        await expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=60_000)
        await expect(page.locator(".Toastify__toast", has_text=other.id)).to_have_count(0)
