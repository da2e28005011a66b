"""End to end: the Actors panel in a real JupyterLab, runs started from a real notebook, in chromium."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from .conftest import Lab, chromium_page, screenshot

pytestmark = pytest.mark.docker

HELLO = """%%actor ui-hello --memory 1024 --timeout 120 --input '{"rows": 5}'
import asyncio
from apify import Actor

async def main():
    async with Actor:
        data = await Actor.get_input() or {}
        rows = int(data.get("rows", 5))
        for i in range(rows):
            Actor.log.info("hello line %d", i)
            await Actor.push_data({"index": i, "square": i * i, "label": f"row {i}"})
            await asyncio.sleep(1)  # the work: a few seconds, so the run is seen RUNNING
        await Actor.set_value("OUTPUT", {"rows": rows, "done": True})

asyncio.run(main())
"""

SLEEPER = """%%actor ui-sleeper --memory 1024 --timeout 600 --detach
import time
print("sleeping until aborted", flush=True)
time.sleep(600)
"""


def write_notebook(lab: Lab, name: str, cells: list[str]) -> None:
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell{i}", "source": source, "metadata": {}, "outputs": [],
                   "execution_count": None} for i, source in enumerate(cells)],
    }
    with lab.client() as client:
        response = client.put(f"{lab.url}api/contents/{name}", json={"type": "notebook", "content": notebook})
        assert response.status_code in (200, 201), response.text


async def open_panel(page: Page):
    panel = page.locator("#jupyter-actors-runs")
    if not await panel.is_visible():
        await page.locator('.lm-TabBar-tab[data-id="jupyter-actors-runs"]').click()
    await expect(panel).to_be_visible()
    return panel


def run_row(page: Page, actor: str):
    return page.locator("tr.jp-ActorsTable-row", has=page.locator("td.jp-ActorsTable-actor", has_text=actor))


async def menu(page: Page, title: str, label: str, submenu: str | None = None) -> None:
    """Click a menu item by its exact label, as a person would."""
    await page.locator(".lm-MenuBar-itemLabel", has_text=title).click()
    if submenu:
        await page.locator(".lm-Menu-itemLabel").get_by_text(submenu, exact=True).hover()
    await page.locator(".lm-Menu-itemLabel").get_by_text(label, exact=True).click()


async def set_theme(page: Page, theme: str) -> None:
    await menu(page, "Settings", theme, submenu="Theme")
    await expect(page.locator("body")).to_have_attribute("data-jp-theme-name", theme, timeout=30_000)
    await expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=30_000)  # theme loaded


async def test_runs_from_a_notebook_show_live_in_the_panel_and_abort_from_it(lab: Lab):
    async with chromium_page() as page:
        await runs_scenario(lab, page)


async def test_palette_and_launcher_open_the_panel(lab: Lab):
    async with chromium_page() as page:
        await palette_and_launcher_scenario(lab, page)


async def runs_scenario(lab: Lab, page: Page) -> None:
    write_notebook(lab, "actors-ui.ipynb", ["%load_ext jupyter_actors", HELLO, SLEEPER])
    await page.goto(f"{lab.url}lab/tree/actors-ui.ipynb?token={lab.token}")
    await expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
    panel = await open_panel(page)
    await expect(panel.locator(".jp-ActorsPanel-state")).to_have_attribute("data-state", "live")
    await expect(panel.locator(".jp-ActorsPanel-empty")).to_contain_text("No runs yet")

    # Run the notebook: the first %%actor cell builds and runs ui-hello, the second starts ui-sleeper.
    await expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)  # kernel ready
    await menu(page, "Run", "Run All Cells")
    hello = run_row(page, "ui-hello")
    await expect(hello).to_have_attribute("data-status", "RUNNING", timeout=240_000)
    await expect(hello.locator(".jp-ActorsBadge")).to_have_text("RUNNING")
    await expect(hello).to_have_attribute("data-status", "SUCCEEDED", timeout=60_000)
    await expect(hello.locator(".jp-ActorsBadge-ok")).to_have_text("SUCCEEDED")
    await expect(hello.locator("td").nth(4)).to_have_text("1 GB")
    await expect(hello.locator("td").nth(5)).to_have_text("2 min")

    sleeper = run_row(page, "ui-sleeper")
    await expect(sleeper).to_have_attribute("data-status", "RUNNING", timeout=240_000)
    # Newest first.
    await expect(panel.locator("tr.jp-ActorsTable-row").first).to_have_attribute(
        "data-run-id", await sleeper.get_attribute("data-run-id"))
    await screenshot(page, "panel-light-notebook")

    # The detail view of the running sleeper: its log follows live; abort it with confirmation.
    sleeper_id = await sleeper.get_attribute("data-run-id")
    await sleeper.click()
    detail = page.locator(f"#jupyter-actors-run-{sleeper_id}")
    await expect(detail).to_be_visible()
    await expect(detail.locator(".jp-ActorsRun-log")).to_contain_text("sleeping until aborted", timeout=60_000)
    await expect(detail.locator(".jp-ActorsRun-settings")).to_contain_text("10 min")
    await detail.locator(".jp-ActorsRun-abort").click()
    dialog = page.locator(".jp-Dialog")
    await expect(dialog).to_contain_text("Abort the run?")
    await screenshot(page, "abort-dialog-light")
    await dialog.locator("button", has_text="Abort run").click()
    await expect(detail.locator(".jp-ActorsRun-status .jp-ActorsBadge")).to_have_text("ABORTED", timeout=60_000)
    await expect(sleeper).to_have_attribute("data-status", "ABORTED")
    # Resurrect it (confirmed), see it run and log again, and abort it again.
    await detail.locator(".jp-ActorsRun-resurrect").click()
    await expect(dialog).to_contain_text("Resurrect the run?")
    await dialog.locator("button", has_text="Resurrect run").click()
    await expect(sleeper).to_have_attribute("data-status", "RUNNING", timeout=60_000)
    await expect(detail.locator(".jp-ActorsRun-log")).to_contain_text("sleeping until aborted", timeout=60_000)
    await detail.locator(".jp-ActorsRun-abort").click()
    await dialog.locator("button", has_text="Abort run").click()
    await expect(detail.locator(".jp-ActorsRun-status .jp-ActorsBadge")).to_have_text("ABORTED", timeout=60_000)
    await expect(detail.locator(".jp-ActorsRun-output")).to_contain_text("No OUTPUT record.")
    with lab.client() as client:
        assert client.get(f"{lab.api}/v2/actor-runs/{sleeper_id}").json()["data"]["status"] == "ABORTED"

    # The finished hello run: settings, input, whole log, OUTPUT, dataset rows, storage links.
    hello_id = await hello.get_attribute("data-run-id")
    await hello.click()
    detail = page.locator(f"#jupyter-actors-run-{hello_id}")
    await expect(detail).to_be_visible()
    await expect(detail.locator(".jp-ActorsRun-log")).to_contain_text("hello line 4", timeout=30_000)
    await expect(detail.locator(".jp-ActorsRun-input")).to_contain_text('"rows": 5')
    await expect(detail.locator(".jp-ActorsRun-output")).to_contain_text('"done": true')
    await expect(detail.locator("table.jp-ActorsRun-items tbody tr")).to_have_count(5)
    await expect(detail.locator("table.jp-ActorsRun-items thead")).to_contain_text("square")
    full_log = detail.locator(".jp-ActorsRun-links a", has_text="Full log")
    response = await page.request.get(await full_log.get_attribute("href"))  # the browser's own login, no token
    log_text = await response.text()
    assert response.ok and "hello line 0" in log_text and "hello line 4" in log_text
    dataset_link = await detail.locator(".jp-ActorsRun-links a", has_text="Dataset items").get_attribute("href")
    items = await (await page.request.get(dataset_link)).json()
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    await screenshot(page, "detail-light-succeeded")

    # Filters by status and actor.
    await panel.locator(".jp-ActorsPanel-status").select_option("ABORTED")
    await expect(panel.locator("tr.jp-ActorsTable-row")).to_have_count(1)
    await expect(panel.locator("tr.jp-ActorsTable-row")).to_have_attribute("data-run-id", sleeper_id)
    await panel.locator(".jp-ActorsPanel-status").select_option("")
    await panel.locator(".jp-ActorsPanel-actor").select_option("ui-hello")
    await expect(panel.locator("tr.jp-ActorsTable-row")).to_have_count(1)
    await expect(panel.locator("tr.jp-ActorsTable-row")).to_have_attribute("data-run-id", hello_id)
    await panel.locator(".jp-ActorsPanel-actor").select_option("")
    await expect(panel.locator("tr.jp-ActorsTable-row")).to_have_count(2)
    # A wider sidebar shows the runs as a table with headers.
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = await handle.bounding_box()
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 330, box["y"] + box["height"] / 2, steps=5)
    await page.mouse.up()
    await expect(panel.locator(".jp-ActorsTable thead")).to_be_visible()
    await screenshot(page, "panel-light-wide")
        # Every change came through the live stream, never the polling fallback.
    await expect(panel.locator(".jp-ActorsPanel-state")).to_have_attribute("data-state", "live")

    await set_theme(page, "JupyterLab Dark")
    await screenshot(page, "detail-dark-succeeded")
    await page.locator(f'.lm-TabBar-tab[data-id="jupyter-actors-run-{sleeper_id}"]').click()
    await expect(page.locator(f"#jupyter-actors-run-{sleeper_id}")).to_be_visible()
    await screenshot(page, "detail-dark-aborted")
    await set_theme(page, "JupyterLab Light")


async def palette_and_launcher_scenario(lab: Lab, page: Page) -> None:
    # the default layout (a launcher), whatever was open before
    await page.goto(f"{lab.url}lab?reset&token={lab.token}")
    launcher_card = page.locator(".jp-LauncherCard", has_text="Actor runs")
    await expect(launcher_card).to_be_visible(timeout=60_000)
    await launcher_card.click()
    await expect(page.locator("#jupyter-actors-runs")).to_be_visible()
    await page.locator('.lm-TabBar-tab[data-id="jupyter-actors-runs"]').click()  # collapse the sidebar again
    await expect(page.locator("#jupyter-actors-runs")).to_be_hidden()

    await page.keyboard.press("Control+Shift+C")
    await page.locator(".lm-CommandPalette-input").fill("Actor Runs")
    item = page.locator('.lm-CommandPalette-item[data-command="jupyter-actors:open-panel"]')
    await expect(item).to_be_visible()
    await item.click()
    await expect(page.locator("#jupyter-actors-runs")).to_be_visible()
    await set_theme(page, "JupyterLab Dark")
    await screenshot(page, "panel-dark")
    await set_theme(page, "JupyterLab Light")
