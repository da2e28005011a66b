"""The per-storage size limit (storage_max_mb): a write that would take a storage over it is refused whole
with 403 storage-limit-exceeded in Apify's error shape; what was stored stays, and space freed in the
storage can be used again."""

from __future__ import annotations

import os

import pytest

from jupyter_actors.platform.errors import StorageLimitExceeded
from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES, REQUEST_QUEUES, Storages

from .conftest import extension_config
from .test_api_hostile import assert_error, user_client


@pytest.fixture
def jp_server_config(tmp_path, base_image):
    return extension_config(tmp_path / "server-data", storage_max_mb=1.0)


async def test_writes_over_the_storage_limit_are_refused_whole(actors_app, api_url, api_token):
    storages = actors_app.platform.storages
    store = storages.get_or_create(KEY_VALUE_STORES, "capped-store")[0]["id"]
    dataset = storages.get_or_create(DATASETS, "capped-dataset")[0]["id"]
    first, second = os.urandom(600 * 1024), os.urandom(600 * 1024)
    headers = {"Content-Type": "application/octet-stream"}
    user = user_client(api_url, api_token)
    async with user:
        assert (await user.put(f"/key-value-stores/{store}/records/first", content=first, headers=headers)).is_success
        error = assert_error(await user.put(f"/key-value-stores/{store}/records/second", content=second,
                                            headers=headers), 403, "storage-limit-exceeded")
        assert "1 MB" in error["message"] and "nothing of it was stored" in error["message"], error
        assert (await user.get(f"/key-value-stores/{store}/records/second")).status_code == 404
        assert (await user.get(f"/key-value-stores/{store}/records/first")).content == first
        # Freed space in the storage is used again.
        assert (await user.delete(f"/key-value-stores/{store}/records/first")).is_success
        assert (await user.put(f"/key-value-stores/{store}/records/second", content=second, headers=headers)).is_success

        assert (await user.post(f"/datasets/{dataset}/items", json=[{"n": 0}])).status_code == 201
        items = [{"n": i, "pad": os.urandom(500).hex()} for i in range(1, 2001)]  # ~2 MB in one push
        assert_error(await user.post(f"/datasets/{dataset}/items", json=items), 403, "storage-limit-exceeded")
        assert (await user.get(f"/datasets/{dataset}/items")).json() == [{"n": 0}]


def test_the_limit_applies_to_every_kind_and_to_no_storage_without_it(tmp_path):
    capped = Storages(tmp_path / "capped", max_storage_bytes=256 * 1024)
    free = Storages(tmp_path / "free")
    try:
        for storages, refused in ((capped, True), (free, False)):
            queue = storages.create(REQUEST_QUEUES)["id"]
            requests = [{"url": f"https://example.com/{i}/{'x' * 400}"} for i in range(1000)]
            if refused:
                with pytest.raises(StorageLimitExceeded):
                    storages.add_requests(queue, requests)
                assert storages.get(REQUEST_QUEUES, queue)["totalRequestCount"] == 0
            else:
                storages.add_requests(queue, requests)
    finally:
        capped.close()
        free.close()
