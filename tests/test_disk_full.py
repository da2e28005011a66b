"""A full disk (ENOSPC) while writing storages: a clear 507 in Apify's error shape, nothing half-written,
and writes work again once space returns.

The server's data directory is a small tmpfs mounted for the test (the test runs as root); a filler
file takes the free space, so the next write hits a real ENOSPC from the kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES

from .test_api_hostile import assert_error, user_client

TMPFS_MB = 48


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "server-data"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0755", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def jp_server_config(small_disk, base_image):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}},
        "ActorsExtension": {"data_dir": str(small_disk), "stop_grace_secs": 2.0},
    }


def fill(point: Path, leave_bytes: int) -> Path:
    """A file that takes all but ``leave_bytes`` of the filesystem's free space."""
    stats = os.statvfs(point)
    free = stats.f_bavail * stats.f_frsize
    filler = point / "filler"
    with open(filler, "wb") as handle:
        handle.truncate(0)
        os.posix_fallocate(handle.fileno(), 0, max(0, free - leave_bytes))
    return filler


async def test_writes_on_a_full_disk_answer_507_and_keep_everything(small_disk, actors_app, api_url, api_token):
    storages = actors_app.platform.storages
    store = storages.get_or_create(KEY_VALUE_STORES, "full-store")[0]["id"]
    dataset = storages.get_or_create(DATASETS, "full-dataset")[0]["id"]
    user = user_client(api_url, api_token)
    async with user:
        assert (await user.put(f"/key-value-stores/{store}/records/kept", json={"kept": True})).status_code < 300
        assert (await user.post(f"/datasets/{dataset}/items", json=[{"n": 1}, {"n": 2}])).status_code == 201
        filler = fill(small_disk, 256 * 1024)
        try:
            big = os.urandom(4 * 2**20)  # more than is left
            response = await user.put(f"/key-value-stores/{store}/records/big", content=big,
                                      headers={"Content-Type": "application/octet-stream"})
            error = assert_error(response, 507)
            assert "disk" in error["message"].lower() and "full" in error["message"].lower(), error
            items = [{"n": i, "pad": "x" * 1000} for i in range(3, 4003)]
            error = assert_error(await user.post(f"/datasets/{dataset}/items", json=items), 507)
            assert "full" in error["message"].lower(), error
            # Nothing half-written: the failed record does not exist, the failed push added no item, and what
            # was stored before reads back whole.
            assert (await user.get(f"/key-value-stores/{store}/records/big")).status_code == 404
            listed = await user.get(f"/datasets/{dataset}/items")
            assert listed.json() == [{"n": 1}, {"n": 2}]
            assert (await user.get(f"/key-value-stores/{store}/records/kept")).json() == {"kept": True}
        finally:
            filler.unlink()
        # Space is back: the same writes succeed.
        response = await user.put(f"/key-value-stores/{store}/records/big", content=big,
                                  headers={"Content-Type": "application/octet-stream"})
        assert response.status_code < 300, response.text
        assert (await user.get(f"/key-value-stores/{store}/records/big")).content == big
        assert (await user.post(f"/datasets/{dataset}/items", json=items)).status_code == 201
        info = (await user.get(f"/datasets/{dataset}")).json()["data"]
        assert info["itemCount"] == 2 + len(items), json.dumps(info)[:500]
