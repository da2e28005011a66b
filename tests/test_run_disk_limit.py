"""A run's disk limit (2 x memory) counts every storage the run writes to, not only its defaults: a run
that fills a named store, or a store it created itself, past its limit is stopped and ends FAILED
saying why. The storages are measured by the platform whatever the engine caps itself."""

from __future__ import annotations

import pytest

from jupyter_actors.platform.storages import KEY_VALUE_STORES

from .conftest import define_actor

MB = 1024 * 1024
#: Writes 16 MB records into the store the input names (or a new unnamed one), up to 400 MB, then
#: idles: only the platform's disk check ends it before its timeout.
FILLER = """
import json, os, time, urllib.request
base, token = os.environ["APIFY_API_BASE_URL"] + "/v2", os.environ["APIFY_TOKEN"]
def call(method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(base + path, data=body, method=method,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": content_type})
    return json.loads(urllib.request.urlopen(request, timeout=120).read() or b"null")
run_input = call("GET", f"/key-value-stores/{os.environ['APIFY_DEFAULT_KEY_VALUE_STORE_ID']}/records/INPUT")
if run_input.get("store"):
    store = call("POST", f"/key-value-stores?name={run_input['store']}")["data"]["id"]
else:
    store = call("POST", "/key-value-stores")["data"]["id"]
print("writing to", store, flush=True)
chunk = os.urandom(16 * 1024 * 1024)
for n in range(25):
    call("PUT", f"/key-value-stores/{store}/records/part-{n}", chunk, "application/octet-stream")
print("written", flush=True)
time.sleep(300)
"""


@pytest.fixture
def disk_platform(platform_factory):
    platform = platform_factory(disk_check_interval_secs=0.5, cpu_mode="shares")
    define_actor(platform, "filler", FILLER)
    return platform


@pytest.mark.parametrize("target", ["named", "created"])
def test_a_run_filling_a_store_that_is_not_its_default_is_stopped_at_its_disk_limit(disk_platform, target):
    platform = disk_platform
    run_input = {}
    if target == "named":
        # A named store that already holds 40 MB: only what the run adds to it counts (its limit is 256 MB).
        platform.storages.get_or_create(KEY_VALUE_STORES, "shared-store")
        platform.storages.set_record("shared-store", "before", b"x" * 40 * MB, "application/octet-stream")
        run_input = {"store": "shared-store"}
    started = platform.start_run("filler", input=run_input, memory_mb=128, timeout_secs=600)  # disk limit: 256 MB
    run = platform.wait_run(started["id"], timeout=240)
    log = platform.run_log(run["id"]).decode()
    assert run["status"] == "FAILED", (run, log)
    assert "written" not in log, log  # stopped while it wrote, not after
    message = run["status_message"]
    assert "disk limit of 256 MB" in message and "every storage it wrote to" in message, message
    stores = [s for s in platform.storages.run_storages(run["id"]) if s.id != run["default_key_value_store_id"]
              and s.kind == KEY_VALUE_STORES]
    used = platform.storages.run_bytes(run["id"])
    assert used > 256 * MB, used
    if target == "named":
        (store,) = stores
        assert store.name == "shared-store" and not store.created_by_run and store.base_bytes >= 40 * MB
        # The 40 MB it held before the run are not the run's.
        assert used < platform.storages.size_bytes([store.id]) + platform.storages.size_bytes(
            [run["default_key_value_store_id"], run["default_dataset_id"], run["default_request_queue_id"]])
    else:
        (store,) = [s for s in stores if s.name is None]
        assert store.created_by_run
    # Counted by the platform whether or not the engine measures the container itself.
    measured, platform.runs.disk_measured = platform.runs.disk_measured, False
    try:
        assert platform.housekeeping.disk_usage(run) >= used
    finally:
        platform.runs.disk_measured = measured
