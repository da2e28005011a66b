"""The global storage quota (storage_quota_mb): a write that would take all storages together past it is
refused whole with 507 storage-quota-exceeded in Apify's error shape, saying how to free space; what was
stored stays readable, deletes keep working, and writes resume once space is freed."""

from __future__ import annotations

import os

import pytest

from jupyter_actors.platform.storages import KEY_VALUE_STORES

from .conftest import extension_config
from .test_api_hostile import assert_error, user_client

QUOTA_MB = 3.0
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data", storage_quota_mb=QUOTA_MB)


def assert_quota_error(response) -> None:
    error = assert_error(response, 507, "storage-quota-exceeded")
    message = error["message"]
    assert f"{QUOTA_MB:g} MB" in message and "nothing of it was stored" in message, message
    assert "delet" in message and "storage_quota_mb" in message, message  # says how to free space


async def test_writes_over_the_storage_quota_get_507_and_freeing_space_lets_them_resume(actors_app, api_url,
                                                                                       api_token):
    user = user_client(api_url, api_token)
    kept = os.urandom(1024 * 1024)
    async with user:
        filler = (await user.post("/key-value-stores?name=filler")).json()["data"]["id"]
        store = (await user.post("/key-value-stores?name=kept")).json()["data"]["id"]
        dataset = (await user.post("/datasets?name=kept-items")).json()["data"]["id"]
        queue = (await user.post("/request-queues?name=kept-queue")).json()["data"]["id"]
        assert (await user.put(f"/key-value-stores/{store}/records/kept", content=kept, headers=OCTETS)).is_success
        assert (await user.post(f"/datasets/{dataset}/items", json=[{"n": 1}])).status_code == 201
        assert (await user.post(f"/request-queues/{queue}/requests", json={"url": "https://example.com/1"})
                ).status_code == 201
        # Fill the quota: a record that would go past it is refused whole.
        big = os.urandom(int(1.5 * 1024 * 1024))
        assert (await user.put(f"/key-value-stores/{filler}/records/a", content=big, headers=OCTETS)).is_success
        assert_quota_error(await user.put(f"/key-value-stores/{filler}/records/b", content=big, headers=OCTETS))
        assert (await user.get(f"/key-value-stores/{filler}/records/b")).status_code == 404
        # Then up to the last few KB, in ever smaller records.
        size, n = 256 * 1024, 0
        while size >= 8 * 1024:
            n += 1
            response = await user.put(f"/key-value-stores/{filler}/records/small-{n}", content=os.urandom(size),
                                      headers=OCTETS)
            if response.status_code == 507:
                size //= 2
            else:
                assert response.is_success, response.text

        # Every kind of write is refused the same way; nothing of it is stored.
        pad = "x" * 1024
        assert_quota_error(await user.post(f"/datasets/{dataset}/items", json=[{"pad": pad}] * 1500))
        requests = [{"url": f"https://example.com/{n}/{pad}"} for n in range(2, 25)]
        assert_quota_error(await user.post(f"/request-queues/{queue}/requests/batch",
                                           json=[{**r, "userData": {"pad": pad * 40}} for r in requests]))
        assert_quota_error(await user.post("/key-value-stores?name=one-more"))
        assert_quota_error(await user.post("/datasets"))

        # What was stored stays intact and readable; opening an existing storage by name still works.
        assert (await user.get(f"/key-value-stores/{store}/records/kept")).content == kept
        assert (await user.get(f"/datasets/{dataset}/items")).json() == [{"n": 1}]
        listed = (await user.get(f"/request-queues/{queue}/requests")).json()["data"]["items"]
        assert [r["url"] for r in listed] == ["https://example.com/1"]
        assert (await user.post("/key-value-stores?name=kept")).status_code == 200
        assert (await user.get("/key-value-stores/one-more")).status_code == 404

        # Deleting works over the quota, and the space it frees takes writes again.
        assert (await user.delete(f"/key-value-stores/{filler}")).status_code == 204
        assert (await user.put(f"/key-value-stores/{store}/records/b", content=big, headers=OCTETS)).is_success
        assert (await user.post(f"/datasets/{dataset}/items", json=[{"n": 2}])).status_code == 201
        assert (await user.post("/key-value-stores?name=one-more")).status_code == 201
        assert (await user.get(f"/key-value-stores/{store}/records/b")).content == big
    storages = actors_app.platform.storages
    assert storages.quota.used_bytes() <= QUOTA_MB * 1024 * 1024
    assert storages.get(KEY_VALUE_STORES, "kept")["id"] == store


WRITER = """
import json, os, urllib.error, urllib.request
base, token = os.environ["APIFY_API_BASE_URL"] + "/v2", os.environ["APIFY_TOKEN"]
store = os.environ["APIFY_DEFAULT_KEY_VALUE_STORE_ID"]
auth = {"Authorization": "Bearer " + token}
size_mb = json.loads(urllib.request.urlopen(urllib.request.Request(f"{base}/key-value-stores/{store}/records/INPUT",
                                                                   headers=auth)).read())["mb"]
request = urllib.request.Request(f"{base}/key-value-stores/{store}/records/big", data=os.urandom(size_mb * 1024 * 1024),
                                 method="PUT", headers={"Authorization": "Bearer " + token,
                                                        "Content-Type": "application/octet-stream"})
try:
    urllib.request.urlopen(request, timeout=60)
    print("stored", flush=True)
except urllib.error.HTTPError as error:
    print("refused", error.code, json.loads(error.read())["error"]["type"], flush=True)
"""


def test_a_run_gets_507_over_the_quota_and_a_start_that_does_not_fit_makes_nothing(platform_factory):
    from jupyter_actors.platform.errors import StorageQuotaExceeded

    from .conftest import TEST_MEMORY_MB, define_actor

    platform = platform_factory(storage_quota_mb=QUOTA_MB)
    define_actor(platform, "writer", WRITER)
    run = platform.wait_run(platform.start_run("writer", memory_mb=TEST_MEMORY_MB, input={"mb": 4})["id"], 120)
    log = platform.run_log(run["id"]).decode()
    assert run["status"] == "SUCCEEDED" and "refused 507 storage-quota-exceeded" in log, log
    assert not platform.storages.record_exists(run["default_key_value_store_id"], "big")

    store = platform.storages.get_or_create(KEY_VALUE_STORES, "filler")[0]["id"]
    platform.storages.set_record(store, "fill", os.urandom(int((QUOTA_MB - 0.3) * 1024 * 1024)))
    before = platform.storages.list_storages(KEY_VALUE_STORES, unnamed=True)["total"]
    with pytest.raises(StorageQuotaExceeded):  # its input and default storages would not fit: none is made
        platform.start_run("writer", memory_mb=TEST_MEMORY_MB, input={"mb": 1, "pad": "x" * 400_000})
    assert platform.storages.list_storages(KEY_VALUE_STORES, unnamed=True)["total"] == before
    assert [r["id"] for r in platform.list_runs()] == [run["id"]]
    platform.storages.delete(KEY_VALUE_STORES, store)
    again = platform.wait_run(platform.start_run("writer", memory_mb=TEST_MEMORY_MB, input={"mb": 1})["id"], 120)
    assert again["status"] == "SUCCEEDED" and "stored" in platform.run_log(again["id"]).decode()
