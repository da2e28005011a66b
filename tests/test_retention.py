"""Data retention and explicit deletion: runs go with their default storages, the unnamed storages they
created and their logs; named ones stay."""

from __future__ import annotations

import json

import pytest

from jupyter_actors.platform.clock import now_iso
from jupyter_actors.platform.errors import Conflict, NotFound

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

WRITER = """
import json, os, urllib.request
base, token = os.environ["APIFY_API_BASE_URL"] + "/v2", os.environ["APIFY_TOKEN"]
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
def call(method, path, body=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers=headers)
    return json.loads(urllib.request.urlopen(request).read() or b"null")
named = call("POST", "/key-value-stores?name=kept-store")["data"]["id"]
call("PUT", f"/key-value-stores/{named}/records/note", {"kept": True})
scratch = call("POST", "/key-value-stores")["data"]["id"]  # unnamed: it goes with the run
call("PUT", f"/key-value-stores/{scratch}/records/note", {"scratch": True})
call("PUT", f"/key-value-stores/{os.environ['APIFY_DEFAULT_KEY_VALUE_STORE_ID']}/records/OUTPUT", {"scratch": scratch})
call("POST", f"/datasets/{os.environ['APIFY_DEFAULT_DATASET_ID']}/items", [{"a": 1}])
print("wrote")
"""


def finished_run(platform):
    define_actor(platform, "writer", WRITER)
    run = platform.wait_run(platform.start_run("writer", memory_mb=TEST_MEMORY_MB)["id"], 120)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"])
    output, _ = platform.storages.get_record(run["default_key_value_store_id"], "OUTPUT")
    scratch = json.loads(output)["scratch"]
    assert platform.storages.get_record(scratch, "note")[0] == b'{"scratch": true}'
    return {**run, "scratch": scratch}


def assert_gone(platform, run, word):
    with pytest.raises(NotFound) as info:
        platform.get_run(run["id"])
    assert word in info.value.message
    for kind, column in (("key_value_stores", "default_key_value_store_id"), ("datasets", "default_dataset_id"),
                         ("request_queues", "default_request_queue_id")):
        with pytest.raises(NotFound):
            platform.storages.get(kind, run[column])
    with pytest.raises(NotFound):  # the unnamed store the run created went with it, and says so
        platform.storages.get("key_value_stores", run["scratch"])
    assert word in (platform.tombstone_message(run["scratch"], "Key-value store") or "")
    assert [s.name for s in platform.storages.run_storages(run["id"])] == ["kept-store"]  # named: it stays
    assert not platform.log_path(run["id"]).exists()
    assert run["id"] not in {r["id"] for r in platform.list_runs()}
    value, _ = platform.storages.get_record("kept-store", "note")  # named storages stay
    assert value == b'{"kept": true}'


def test_runs_expire_with_their_default_storages_and_named_ones_stay(platform_factory, tmp_path):
    data_dir = tmp_path / "retained"
    first = platform_factory(data_dir=data_dir, retention_days=0)
    run = finished_run(first)
    sleeper = first.start_run("writer", memory_mb=TEST_MEMORY_MB)  # finishes too, but later
    first.wait_run(sleeper["id"], 120)
    first.close()
    # A server starting with a 1-second retention period sweeps at start, in the background.
    second = platform_factory(data_dir=data_dir, retention_days=1 / 86400, retention_sweep_secs=0.2,
                              heartbeat_secs=0.2)
    wait_until(lambda: not second.list_runs(), 30, message="runs expired")
    assert_gone(second, run, "expired")


def test_retention_never_touches_an_unfinished_run(platform_factory):
    platform = platform_factory(retention_days=1 / 86400)
    define_actor(platform, "sleeper", "import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    run = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: b"up" in platform.run_log(run["id"]), 60, message="running")
    assert platform.expire_runs() == []
    assert platform.get_run(run["id"])["status"] == "RUNNING"
    with pytest.raises(Conflict):
        platform.delete_run(run["id"])
    platform.abort_run(run["id"])
    platform.wait_run(run["id"], 60)


def test_explicit_deletion_of_runs_builds_and_actors(platform, docker_client):
    run = finished_run(platform)
    platform.delete_run(run["id"])
    assert_gone(platform, run, "deleted")

    build = platform.list_builds("writer")[0]
    assert docker_client.api.images(name=build["image"])
    platform.delete_build(build["id"])
    assert not docker_client.api.images(name=build["image"])  # no build refers to the image any more
    with pytest.raises(NotFound):
        platform.start_run("writer")

    define_actor(platform, "writer", WRITER + "\n# changed\n")
    image = platform.list_builds("writer")[-1]["image"]
    again = platform.wait_run(platform.start_run("writer", memory_mb=TEST_MEMORY_MB)["id"], 120)
    platform.delete_actor("writer")
    with pytest.raises(NotFound) as info:
        platform.get_run(again["id"])
    assert "deleted" in info.value.message
    assert not docker_client.api.images(name=image)


async def test_deleted_runs_and_their_storages_answer_404_saying_why(api_url, api_token, actors_app):
    import asyncio

    import httpx

    platform = actors_app.platform
    run = await asyncio.to_thread(finished_run, platform)  # the server's loop must keep serving the actor
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers=headers, timeout=30) as client:
        assert (await client.delete(f"/actor-runs/{run['id']}")).status_code == 204
        gone = await client.get(f"/actor-runs/{run['id']}")
        assert gone.status_code == 404 and "was deleted" in gone.json()["error"]["message"]
        store = await client.get(f"/key-value-stores/{run['default_key_value_store_id']}/records/OUTPUT")
        assert store.status_code == 404 and "was deleted" in store.json()["error"]["message"]
        listed = (await client.get("/actor-runs")).json()["data"]["items"]
        assert run["id"] not in {item["id"] for item in listed}
        kept = await client.get("/key-value-stores/kept-store/records/note")
        assert kept.status_code == 200


def test_tombstones_are_forgotten_after_their_retention(platform_factory):
    """The tombstones table must not grow forever: deletions older than tombstone_retention_days are dropped
    at the retention sweep; younger ones still answer 404 saying why."""
    platform = platform_factory(serve_api=False, tombstone_retention_days=30)
    with platform.stores.registry.transaction() as db:
        db.executemany("INSERT INTO tombstones VALUES (?, 'run', 'expired', ?)",
                       [(f"old{i}", "2020-01-01T00:00:00.000Z") for i in range(1000)])
        db.execute("INSERT INTO tombstones VALUES ('young', 'run', 'deleted', ?)", (now_iso(),))
    platform.expire_runs()
    assert platform.stores.registry.query_one("SELECT COUNT(*) AS n FROM tombstones")["n"] == 1
    assert platform.tombstone_message("old1", "Run") is None
    assert "was deleted on" in platform.tombstone_message("young", "Run")
    with pytest.raises(NotFound, match="was deleted on"):
        platform.get_run("young")


def test_tombstones_are_kept_forever_with_zero(platform_factory):
    platform = platform_factory(serve_api=False, tombstone_retention_days=0)
    with platform.stores.registry.transaction() as db:
        db.execute("INSERT INTO tombstones VALUES ('old', 'run', 'expired', '2020-01-01T00:00:00.000Z')")
    platform.expire_runs()
    assert "expired" in platform.tombstone_message("old", "Run")


def test_the_storage_managers_deleted_set_is_bounded(tmp_path):
    from jupyter_actors.platform.storages import DATASETS, Storages

    storages = Storages(tmp_path / "storages")
    try:
        storages.MAX_REMEMBERED_DELETIONS = 5
        ids = [storages.create(DATASETS)["id"] for _ in range(8)]
        for storage_id in ids:
            storages.delete(DATASETS, storage_id)
        assert len(storages._deleted) == 5
        for storage_id in ids:  # forgotten or not, a deleted storage stays deleted
            with pytest.raises(NotFound):
                storages.list_items(storage_id)
    finally:
        storages.close()
