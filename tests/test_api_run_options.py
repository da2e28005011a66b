"""Apify's run options that change what a run does: ``maxItems`` and ``restartOnError``, through the real
apify-client and SDK actors in containers."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
from apify_client import ApifyClientAsync

from jupyter_actors.platform.storages import PushResult, Storages

from .conftest import TEST_MEMORY_MB
from .test_api_sdk import create_and_build, status

#: Pushes 3 items, then 4 (crossing maxItems=5), then 1 more; records what it saw in OUTPUT.
CAPPED = """
import asyncio, os
from apify import Actor

async def main():
    async with Actor:
        await Actor.push_data([{"i": i} for i in range(3)])
        await Actor.push_data([{"i": i} for i in range(3, 7)])
        await Actor.push_data({"i": 7})
        await Actor.set_value("OUTPUT", {"actor": os.environ.get("ACTOR_MAX_PAID_DATASET_ITEMS"),
                                         "apify": os.environ.get("APIFY_MAX_PAID_DATASET_ITEMS")})

asyncio.run(main())
"""


def test_capped_dataset_cuts_pushes_and_tells_its_run(tmp_path: Path) -> None:
    storages = Storages(tmp_path / "storages")
    told: list[tuple[str, PushResult]] = []
    storages.on_items_dropped = lambda run_id, push: told.append((run_id, push))
    try:
        capped = storages.create_dataset(run_id="run1", max_items=3)["id"]
        assert storages.push_items(capped, [{"i": 0}, {}]) == 2
        assert not told
        assert storages.push_items(capped, [{"#hidden": 1}, {"i": 3}, {"i": 4}]) == 3  # cut after one item
        assert storages.push_items(capped, {"i": 5}) == 3
        assert told == [("run1", PushResult(3, 2, 3)), ("run1", PushResult(3, 1, 3))]
        meta = storages.get("datasets", capped)
        assert meta["itemCount"] == 3 and meta["cleanItemCount"] == 1  # {} and the hidden-only item are not clean
        assert storages.list_items(capped).items() == [{"i": 0}, {}, {"#hidden": 1}]
        free = storages.create_dataset()["id"]
        assert storages.push_items(free, [{"i": i} for i in range(5)]) == 5
    finally:
        storages.close()


async def test_max_items_caps_the_run_dataset(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "capped", CAPPED)
    run = await client.actor("local/capped").call(max_items=5, memory_mbytes=TEST_MEMORY_MB,
                                                  run_timeout=timedelta(seconds=120), logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    assert run.options.max_items == 5
    items = (await client.dataset(run.default_dataset_id).list_items()).items
    assert [item["i"] for item in items] == [0, 1, 2, 3, 4]  # the crossing push was cut at the limit
    output = await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT")
    assert output["value"] == {"actor": "5", "apify": "5"}
    assert "maxItems (5 items)" in (run.status_message or "")

    # Without maxItems nothing is capped and the variables are absent.
    free = await client.actor("local/capped").call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert len((await client.dataset(free.default_dataset_id).list_items()).items) == 8
    output = await client.key_value_store(free.default_key_value_store_id).get_record("OUTPUT")
    assert output["value"] == {"actor": None, "apify": None}
    assert free.options.max_items is None

    # A push to the full dataset answers 201 and stores nothing; a bad maxItems is refused before a start.
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        pushed = await http.post(f"/datasets/{run.default_dataset_id}/items", json=[{"i": 99}])
        assert pushed.status_code == 201
        refused = await http.post("/acts/local~capped/runs?maxItems=0")
        assert refused.status_code == 400 and "maxItems" in refused.json()["error"]["message"]
    assert (await client.dataset(run.default_dataset_id).get()).item_count == 5


#: Fails at its first attempt and succeeds at the second; counts attempts in its default key-value store.
FAILS_ONCE = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        attempts = (await Actor.get_value("ATTEMPTS") or 0) + 1
        await Actor.set_value("ATTEMPTS", attempts)
        print(f"attempt {attempts}", flush=True)
        if attempts == 1:
            raise RuntimeError("the first attempt fails")
        await Actor.push_data({"attempt": attempts})

asyncio.run(main())
"""


async def test_restart_on_error_restarts_a_failed_run(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "fails-once", FAILS_ONCE)
    await create_and_build(client, "always-fails", "import sys\nprint('failing', flush=True)\nsys.exit(3)\n")

    # Through a task whose options say restartOnError: the same run, storages and log, second attempt wins.
    task = await client.tasks().create(actor_id="local~fails-once", name="fails-once-task", restart_on_error=True,
                                       memory_mbytes=TEST_MEMORY_MB)
    assert task.options.restart_on_error is True
    run = await client.task(task.id).call(wait_duration=timedelta(seconds=180))
    log = await client.run(run.id).log().get()
    assert status(run) == "SUCCEEDED", log
    assert run.stats.restart_count == 1
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        assert (await http.get(f"/actor-runs/{run.id}")).json()["data"]["options"]["restartOnError"] is True
    assert "attempt 1" in log and "attempt 2" in log
    store = client.key_value_store(run.default_key_value_store_id)
    assert (await store.get_record("ATTEMPTS"))["value"] == 2
    assert (await client.dataset(run.default_dataset_id).list_items()).items == [{"attempt": 2}]

    # Without it a failed run stays failed.
    plain = await client.actor("local/always-fails").call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert status(plain) == "FAILED" and plain.stats.restart_count == 0

    # With it, a run that always fails is restarted max_restarts (3) times, then fails for good.
    bounded = await client.actor("local/always-fails").call(memory_mbytes=TEST_MEMORY_MB, restart_on_error=True,
                                                           logger=None, wait_duration=timedelta(seconds=180))
    assert status(bounded) == "FAILED", await client.run(bounded.id).log().get()
    assert bounded.stats.restart_count == 3 and bounded.exit_code == 3
    assert (await client.run(bounded.id).log().get()).count("failing") == 4

    # An aborted run is not a failure: it is not restarted.
    await create_and_build(client, "sleeps", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    sleeping = await client.actor("local/sleeps").start(memory_mbytes=TEST_MEMORY_MB, restart_on_error=True)
    deadline = time.monotonic() + 60
    while status(await client.run(sleeping.id).get()) != "RUNNING":
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.1)
    await client.run(sleeping.id).abort()
    aborted = await client.run(sleeping.id).wait_for_finish(wait_duration=timedelta(seconds=60))
    assert status(aborted) == "ABORTED" and aborted.stats.restart_count == 0


#: Makes the three kinds of public URL with the SDK and its client, as an actor shares its results.
PUBLISHER = """
import asyncio
from datetime import timedelta
from apify import Actor
from apify_client import ApifyClientAsync

async def main():
    async with Actor:
        store = await Actor.open_key_value_store()
        await store.set_value("page", "<script>alert(1)</script>hello", content_type="text/html")
        await Actor.push_data([{"i": 1}, {"i": 2}])
        # The client's public URLs default to api.apify.com: point them where the platform says (as on Apify).
        config = Actor.configuration
        client = ApifyClientAsync(token=config.token, api_url=config.api_base_url,
                                  api_public_url=config.api_public_base_url)
        dataset_id = Actor.configuration.default_dataset_id
        store_id = Actor.configuration.default_key_value_store_id
        await Actor.set_value("OUTPUT", {
            "record": await store.get_public_url("page"),
            "items": await client.dataset(dataset_id).create_items_public_url(),
            "expiring": await client.dataset(dataset_id).create_items_public_url(expires_in=timedelta(seconds=600)),
            "keys": await client.key_value_store(store_id).create_keys_public_url(),
        })

asyncio.run(main())
"""


async def test_public_urls_work_without_a_token(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "publisher", PUBLISHER)
    run = await client.actor("local/publisher").call(memory_mbytes=TEST_MEMORY_MB, logger=None)
    assert status(run) == "SUCCEEDED", await client.run(run.id).log().get()
    urls = (await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT"))["value"]
    assert all(url.startswith(f"{api_url}/v2/") and "signature=" in url for url in urls.values()), urls

    async with httpx.AsyncClient(timeout=60) as anonymous:  # what a browser sends: no token, no cookie
        record = await anonymous.get(urls["record"])
        assert record.status_code == 200 and b"hello" in record.content
        assert record.headers["Content-Security-Policy"].startswith("sandbox")  # sandboxed as every API answer
        assert record.headers["Content-Disposition"].startswith("attachment")  # HTML is a download
        for name in ("items", "expiring"):
            items = await anonymous.get(urls[name])
            assert items.status_code == 200 and items.json() == [{"i": 1}, {"i": 2}], items.text
            assert items.headers["Content-Security-Policy"].startswith("sandbox")
        keys = await anonymous.get(urls["keys"])
        assert keys.status_code == 200 and {k["key"] for k in keys.json()["data"]["items"]} >= {"page", "OUTPUT"}
        listed = {k["key"]: k["recordPublicUrl"] for k in keys.json()["data"]["items"]}
        output = await anonymous.get(listed["OUTPUT"])  # the listing's links are signed too
        assert output.status_code == 200 and output.json() == urls

        # A signature of another storage, a tampered one, a write, or another route: refused.
        other = (await client.key_value_store(run.default_key_value_store_id).get()).id
        signature = urls["items"].split("signature=")[1]
        refused = [
            await anonymous.get(f"{api_url}/v2/key-value-stores/{other}/keys?signature={signature}"),
            await anonymous.get(urls["record"].replace("/page?", "/OUTPUT?")),
            await anonymous.get(urls["items"][:-3] + "AAA"),
            await anonymous.post(urls["items"].split("?")[0] + f"?signature={signature}", json={"i": 3}),
            await anonymous.get(f"{api_url}/v2/datasets/{run.default_dataset_id}?signature={signature}"),
            await anonymous.get(urls["items"].split("?")[0]),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 401, 401, 401], [r.text for r in refused]
        assert refused[0].json()["error"]["type"] == "invalid-signature"
    assert len((await client.dataset(run.default_dataset_id).list_items()).items) == 2

    # A real browser that never logged in to Jupyter opens them.
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await (await browser.new_context()).new_page()
            for name, expected in (("items", '"i":2'), ("keys", '"key":"page"')):
                response = await page.goto(urls[name])
                assert response is not None and response.status == 200, name
                assert expected in (await page.inner_text("body")).replace(" ", ""), name
        finally:
            await browser.close()


def test_signatures_match_the_clients_and_expire() -> None:
    from apify_client._utils.crypto import create_hmac_signature, create_storage_content_signature

    from jupyter_actors.platform.storages import signing

    secret = signing.new_signing_key()
    assert signing.record_signature(secret, "a/b ü") == create_hmac_signature(secret, "a/b ü")
    assert signing.record_signature_valid(secret, "key", create_hmac_signature(secret, "key"))
    assert not signing.record_signature_valid(secret, "other", create_hmac_signature(secret, "key"))
    made = create_storage_content_signature("store1", secret)
    assert signing.content_signature_valid(secret, "store1", made)
    assert not signing.content_signature_valid(secret, "store2", made)
    assert not signing.content_signature_valid("another secret", "store1", made)
    expiring = create_storage_content_signature("store1", secret, expires_in=timedelta(seconds=60))
    assert signing.content_signature_valid(secret, "store1", expiring)
    assert not signing.content_signature_valid(secret, "store1", expiring, now_ms=2**62)  # expired
    assert not signing.content_signature_valid(secret, "store1", "not base64 at all!")
