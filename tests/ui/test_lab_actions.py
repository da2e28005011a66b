"""End to end in a real JupyterLab and chromium: starting runs from the schema form, rerun, delete, sort,
the paged dataset table, the key-value store browser and the builds with their logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from .conftest import Lab, chromium_page, screenshot
from .test_lab_panel import open_panel, set_theme

pytestmark = pytest.mark.docker

DOCS = Path(__file__).parents[2] / "docs" / "screenshots"
SCHEMA = {
    "title": "UI form", "type": "object", "schemaVersion": 1,
    "properties": {
        "greeting": {"title": "Greeting", "type": "string", "editor": "textfield", "pattern": "^[A-Za-z ]+$",
                     "description": "Letters and spaces: written into every item"},
        "rows": {"title": "Rows", "type": "integer", "minimum": 1, "maximum": 50, "default": 3,
                 "description": "How many dataset items to push"},
    },
    "required": ["greeting"],
}
MAIN = """import asyncio
from apify import Actor

async def main():
    async with Actor:
        data = await Actor.get_input() or {}
        for i in range(data["rows"]):
            await Actor.push_data({"index": i, "text": f"{data['greeting']} {i}"})
        await Actor.set_value("OUTPUT", {"greeting": data["greeting"], "rows": data["rows"]})
        await Actor.set_value("REPORT", "<h1>hi</h1><script>alert(1)</script>", content_type="text/html")

asyncio.run(main())
"""

# A sandboxed frame without allow-same-origin has an opaque origin: Lab's page cannot reach its document.
FRAME_IS_OPAQUE = "f => { try { return f.contentDocument === null } catch (e) { return true } }"


@pytest.fixture(scope="module")
def actor(lab: Lab) -> dict:
    """The actor `ui-form` with an input schema, built (through the API: the UI tests start from here)."""
    version = {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest", "inputSchema": SCHEMA,
               "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": MAIN}]}
    with lab.client() as client:
        created = client.post(f"{lab.api}/v2/acts", json={"name": "ui-form", "versions": [version]})
        assert created.status_code == 201, created.text
        act = created.json()["data"]
        build = client.post(f"{lab.api}/v2/acts/{act['id']}/builds?waitForFinish=240", timeout=300).json()["data"]
        assert build["status"] == "SUCCEEDED", build
    return act


async def open_lab(lab: Lab, page: Page) -> None:
    await page.goto(f"{lab.url}lab?reset&token={lab.token}")
    await expect(page.locator(".jp-LauncherCard").first).to_be_visible(timeout=60_000)


async def open_form(page: Page):
    panel = await open_panel(page)
    await panel.locator(".jp-ActorsPanel-start").click()
    form = page.locator(".jp-ActorsForm").last
    await expect(form).to_be_visible()
    await form.locator(".jp-ActorsForm-actorSelect").select_option(label="ui-form")
    await expect(form.locator("#root_greeting")).to_be_visible(timeout=30_000)
    return form


def run_view(page: Page):
    return page.locator(".jp-ActorsRun:not(.jp-ActorsBuilds):visible")


async def shot(page: Page, locator, name: str) -> None:
    """A screenshot of one widget for the docs (small), and the whole page for the artifacts."""
    await screenshot(page, name)
    DOCS.mkdir(parents=True, exist_ok=True)
    await locator.screenshot(path=str(DOCS / f"{name}.png"))


async def test_the_form_starts_a_run_and_shows_the_servers_refusal(lab: Lab, actor: dict):
    async with chromium_page() as page:
        await open_lab(lab, page)
        form = await open_form(page)
        # The form is made from the schema: titles, descriptions, the default.
        await expect(form).to_contain_text("Letters and spaces")
        await expect(form.locator("#root_rows")).to_have_value("3")
        await form.locator("#root_greeting").fill("Hello there")
        await form.locator("#root_rows").fill("25")
        await form.locator(".jp-ActorsForm-memory").fill("1024")
        await form.locator(".jp-ActorsForm-timeout").fill("120")
        await shot(page, form, "panel-form-light")
        await set_theme(page, "JupyterLab Dark")
        await shot(page, form, "panel-form-dark")
        await set_theme(page, "JupyterLab Light")
        await form.locator(".jp-ActorsForm-start").click()
        detail = run_view(page)
        await expect(detail.locator(".jp-ActorsRun-status .jp-ActorsBadge")).to_have_text("SUCCEEDED", timeout=120_000)
        run_id = (await detail.locator(".jp-ActorsRun-id").text_content()).strip()
        with lab.client() as client:
            run = client.get(f"{lab.api}/v2/actor-runs/{run_id}").json()["data"]
            assert run["options"]["memoryMbytes"] == 1024 and run["options"]["timeoutSecs"] == 120
            stored = client.get(f"{lab.api}/v2/key-value-stores/{run['defaultKeyValueStoreId']}/records/INPUT")
            assert stored.json() == {"greeting": "Hello there", "rows": 25}

        # The browser checks the schema too: a bad greeting never leaves the form.
        await page.locator(".lm-TabBar-tab", has_text="Start an actor run").click()
        await form.locator("#root_greeting").fill("Hello 42")
        await form.locator(".jp-ActorsForm-start").click()
        await expect(form.locator(".error-detail, .jp-errorIndicator, .has-error").first).to_be_attached()
        # Input edited as JSON goes to the server unchecked: its 400 message shows in the form.
        await form.locator(".jp-ActorsForm-mode input").check()
        await form.locator(".jp-ActorsForm-jsonInput").fill(json.dumps({"rows": 0}))
        await form.locator(".jp-ActorsForm-start").click()
        error = form.locator(".jp-ActorsForm-error")
        await expect(error).to_contain_text("input.greeting")
        await expect(error).to_contain_text("input.rows")
        await shot(page, form, "panel-form-error-light")
        with lab.client() as client:
            assert client.get(f"{lab.api}/v2/actor-runs").json()["data"]["total"] == 1  # nothing started


async def finished_run(lab: Lab) -> dict:
    with lab.client() as client:
        runs = client.get(f"{lab.api}/v2/acts/ui-form/runs?desc=true").json()["data"]["items"]
    assert runs and runs[0]["status"] == "SUCCEEDED", "needs the run the form test started"
    return runs[0]


async def open_run(page: Page, run_id: str):
    panel = await open_panel(page)
    await panel.locator(f'tr[data-run-id="{run_id}"]').click()
    detail = page.locator(f"#jupyter-actors-run-{run_id}")
    await expect(detail).to_be_visible()
    return panel, detail


async def test_dataset_pages_exports_and_key_value_store_previews(lab: Lab, actor: dict):
    run = await finished_run(lab)
    async with chromium_page() as page:
        await open_lab(lab, page)
        _, detail = await open_run(page, run["id"])
        table = detail.locator(".jp-ActorsDataset")
        await expect(table.locator("tbody tr")).to_have_count(20)
        await expect(table.locator(".jp-ActorsDataset-page")).to_have_text("1–20 of 25")
        await expect(table.locator(".jp-ActorsDataset-previous")).to_be_disabled()
        await table.locator(".jp-ActorsDataset-next").click()
        await expect(table.locator(".jp-ActorsDataset-page")).to_have_text("21–25 of 25")
        await expect(table.locator("tbody tr")).to_have_count(5)
        await expect(table.locator("tbody tr").first).to_contain_text("Hello there 20")
        await expect(table.locator(".jp-ActorsDataset-next")).to_be_disabled()
        # Export links download all items, in the browser's own session.
        csv = await page.request.get(await table.locator("a", has_text="CSV").get_attribute("href"))
        assert csv.ok
        text = await csv.text()
        assert text.splitlines()[0].strip().lstrip("\ufeff") == "index,text" and len(text.strip().splitlines()) == 26
        jsonl = await page.request.get(await table.locator("a", has_text="JSONL").get_attribute("href"))
        assert len((await jsonl.text()).strip().splitlines()) == 25
        xlsx = await page.request.get(await table.locator("a", has_text="xlsx").get_attribute("href"))
        assert xlsx.ok and (await xlsx.body())[:2] == b"PK"  # a zip, as xlsx files are

        # The key-value store: keys with sizes; OUTPUT previewed as JSON; HTML never rendered.
        store = detail.locator(".jp-ActorsKvs")
        for key in ("INPUT", "OUTPUT", "REPORT"):
            await expect(store.locator(f'tr[data-key="{key}"]')).to_be_visible()
        await store.locator('tr[data-key="OUTPUT"]').click()
        preview = store.locator(".jp-ActorsKvs-preview")
        await expect(preview).to_contain_text('"greeting": "Hello there"')
        await detail.locator(".jp-ActorsDataset").scroll_into_view_if_needed()
        await shot(page, detail, "panel-dataset-light")
        # HTML only in an iframe with an empty sandbox: shown, its script never runs, never on Lab's origin.
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await store.locator('tr[data-key="REPORT"]').click()
        frame = preview.locator("iframe.jp-ActorsKvs-html")
        await expect(frame).to_have_attribute("sandbox", "")
        await expect(page.frame_locator("iframe.jp-ActorsKvs-html").locator("h1")).to_have_text("hi")
        assert await detail.locator("h1", has_text="hi").count() == 0  # not in Lab's document
        opaque = await (await frame.element_handle()).evaluate(FRAME_IS_OPAQUE)
        assert opaque, "the frame's document must not be reachable from Lab's origin"
        assert dialogs == []
        await store.locator('tr[data-key="OUTPUT"]').click()
        await set_theme(page, "JupyterLab Dark")
        await expect(preview).to_contain_text('"greeting": "Hello there"')
        await detail.locator(".jp-ActorsDataset").scroll_into_view_if_needed()
        await shot(page, detail, "panel-dataset-dark")
        await set_theme(page, "JupyterLab Light")


async def test_rerun_delete_and_sorting(lab: Lab, actor: dict):
    first = await finished_run(lab)
    async with chromium_page() as page:
        await open_lab(lab, page)
        panel, detail = await open_run(page, first["id"])
        await detail.locator(".jp-ActorsRun-rerun").click()
        rerun = page.locator(".jp-ActorsRun:visible")
        await expect(rerun.locator(".jp-ActorsRun-id")).not_to_have_text(first["id"])
        await expect(rerun.locator(".jp-ActorsRun-status .jp-ActorsBadge")).to_have_text("SUCCEEDED", timeout=120_000)
        rerun_id = (await rerun.locator(".jp-ActorsRun-id").text_content()).strip()
        with lab.client() as client:
            again = client.get(f"{lab.api}/v2/actor-runs/{rerun_id}").json()["data"]
            assert again["actId"] == first["actId"]
            assert again["options"]["memoryMbytes"] == first["options"]["memoryMbytes"] == 1024
            assert again["options"]["timeoutSecs"] == first["options"]["timeoutSecs"] == 120
            records = [client.get(f"{lab.api}/v2/key-value-stores/{run['defaultKeyValueStoreId']}/records/INPUT").json()
                       for run in (first, again)]
            assert records[0] == records[1] == {"greeting": "Hello there", "rows": 25}

        # Sorting: newest first by default; a click on Started puts the oldest first, another click back.
        rows = panel.locator("tr.jp-ActorsTable-row")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-run-id", rerun_id)
        started = panel.locator('th[data-column="started"]')
        await started.click()
        await expect(started).to_have_attribute("aria-sort", "ascending")
        await expect(rows.first).to_have_attribute("data-run-id", first["id"])
        await started.click()
        await expect(rows.first).to_have_attribute("data-run-id", rerun_id)
        await expect(started).to_have_attribute("aria-sort", "descending")
        await shot(page, page.locator("#jp-main-content-panel"), "panel-runs-light")
        await set_theme(page, "JupyterLab Dark")
        await shot(page, page.locator("#jp-main-content-panel"), "panel-runs-dark")
        await set_theme(page, "JupyterLab Light")

        # Delete the rerun, confirmed: its row and tab go, the API no longer has it.
        await rerun.locator(".jp-ActorsRun-delete").click()
        dialog = page.locator(".jp-Dialog")
        await expect(dialog).to_contain_text("Delete the run?")
        await dialog.locator("button", has_text="Delete run").click()
        await expect(panel.locator(f'tr[data-run-id="{rerun_id}"]')).to_have_count(0)
        await expect(page.locator(f"#jupyter-actors-run-{rerun_id}")).to_have_count(0)
        await expect(rows).to_have_count(1)
        with lab.client() as client:
            assert client.get(f"{lab.api}/v2/actor-runs/{rerun_id}").status_code == 404
            assert client.get(f"{lab.api}/v2/actor-runs/{first['id']}").status_code == 200


async def test_builds_and_their_logs(lab: Lab, actor: dict):
    async with chromium_page() as page:
        await open_lab(lab, page)
        form = await open_form(page)
        await form.locator(".jp-ActorsForm-builds").click()
        builds = page.locator(".jp-ActorsBuilds:visible")
        row = builds.locator("tr.jp-ActorsBuilds-row").first
        await expect(row).to_have_attribute("data-status", "SUCCEEDED")
        log = builds.locator(".jp-ActorsBuilds-log")
        await expect(log).not_to_be_empty()
        # A new build (changed sources, so not reused): its log follows live until it ends.
        with lab.client() as client:
            response = client.put(f"{lab.api}/v2/acts/{actor['id']}/versions/0.0",
                                  json={"sourceFiles": [{"name": "main.py", "format": "TEXT",
                                                         "content": MAIN + "# changed\n"}]})
            assert response.status_code == 200, response.text
        await builds.locator(".jp-ActorsBuilds-build").click()
        await expect(builds.locator("tr.jp-ActorsBuilds-row")).to_have_count(2, timeout=30_000)
        newest = builds.locator("tr.jp-ActorsBuilds-row").first
        await expect(newest).to_have_class("jp-ActorsTable-row jp-ActorsBuilds-row jp-mod-selected")
        await expect(newest).to_have_attribute("data-status", "SUCCEEDED", timeout=240_000)
        await expect(log).not_to_be_empty()
        build_id = await newest.get_attribute("data-build-id")
        with lab.client() as client:
            whole = client.get(f"{lab.api}/v2/actor-builds/{build_id}/log").text
        last_line = whole.strip().splitlines()[-1]
        await expect(log).to_contain_text(last_line, timeout=30_000)
        await shot(page, builds, "panel-builds-light")
        await set_theme(page, "JupyterLab Dark")
        await shot(page, builds, "panel-builds-dark")
        await set_theme(page, "JupyterLab Light")

