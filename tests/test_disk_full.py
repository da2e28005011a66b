"""A full disk (ENOSPC) while writing storages: a clear 507 in Apify's error shape, nothing half-written,
and writes work again once space returns.

The server's data directory is a small tmpfs mounted for the test (the test runs as root); a filler
file takes the free space, so the next write hits a real ENOSPC from the kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from jupyter_actors.platform.storages import DATASETS, KEY_VALUE_STORES

from .conftest import TEST_MEMORY_MB, extension_config, define_actor, wait_until
from .test_api_hostile import assert_error, user_client

TMPFS_MB = 48


@contextlib.contextmanager
def tmpfs(point: Path):
    """A ``TMPFS_MB`` tmpfs mounted at ``point`` for the test, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0755", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "server-data") as point:
        yield point


@pytest.fixture
def jp_server_config(small_disk, base_image):
    return extension_config(small_disk)


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


#: Long lines, so a full disk is hit at once (small appends would fit in the log's last page).
WIDE_TICKER = """
import time
for i in range(1, 61):
    print(f"tick {i} " + "x" * 4000, flush=True)
    time.sleep(0.2)
"""


def ticks(platform, run_id: str) -> list[str]:
    lines = platform.run_log(run_id).decode().splitlines()
    return [line.split(" ", 1)[1].split(" x", 1)[0] for line in lines if " tick " in line]


@pytest.fixture
def platform_on_small_disk(tmp_path, platform_factory):
    with tmpfs(tmp_path / "small-platform") as point:
        platform = platform_factory(data_dir=point, reconcile_interval_secs=0.5)
        yield platform, point
        platform.close()  # before the unmount: it holds its files open


def test_a_full_disk_while_copying_a_run_log_keeps_the_run_and_its_log_whole(platform_on_small_disk, docker_client):
    """ENOSPC appending the run log is the platform's fault, not the run's: the container is not touched, no torn
    line is left, and once space returns the run is adopted again and finishes with every line once."""
    platform, point = platform_on_small_disk
    define_actor(platform, "ticker", WIDE_TICKER)
    run = platform.start_run("ticker", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: len(ticks(platform, run["id"])) >= 3, 60, message="ticking started")
    container_id = platform.get_run(run["id"])["container_id"]
    filler = fill(point, 0)
    try:
        wait_until(lambda: not platform.runs.is_watched(run["id"]), 20, message="the watcher hitting ENOSPC")
        assert docker_client.api.inspect_container(container_id)["State"]["Running"]
        assert platform.get_run(run["id"])["status"] == "RUNNING"
        text = platform.run_log(run["id"]).decode()  # whole lines only: none torn by the failed write
        assert text.endswith("\n") and all(line.endswith("x" * 4000) for line in text.splitlines()), text[-300:]
    finally:
        filler.unlink()
    done = platform.wait_run(run["id"], timeout=90)
    assert done["status"] == "SUCCEEDED", (done, platform.run_log(run["id"]).decode()[-2000:])
    assert done["restart_count"] == 0 and done["container_id"] == container_id
    assert ticks(platform, run["id"]) == [f"tick {i}" for i in range(1, 61)]
