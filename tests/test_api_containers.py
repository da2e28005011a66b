"""The actor-facing API under the real SDK in real containers: several runs pushing to one named
dataset at once lose nothing, and a request queue works through the SDK's own calls."""

from __future__ import annotations

import json
from collections import Counter

from jupyter_actors.platform.storages import (
    DATASETS,
    REQUEST_QUEUES,
    unique_key_to_request_id,
)

from .conftest import TEST_MEMORY_MB, define_actor

PUSHER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input()
        tag, n = actor_input["tag"], actor_input["n"]
        dataset = await Actor.open_dataset(name="shared-pushes")
        for i in range(n):  # one request per item: many small concurrent appends
            await dataset.push_data({"run": tag, "i": i})
        # One large batch too: over 1 KiB, so the SDK sends it brotli-compressed.
        await dataset.push_data([{"run": tag, "batch": j, "pad": "x" * 40} for j in range(n)])

asyncio.run(main())
"""

QUEUE_USER = """
import asyncio
from apify import Actor
from crawlee import Request

async def main():
    async with Actor:
        queue = await Actor.open_request_queue()
        for i in range(3):
            await queue.add_request(f"https://example.com/page/{i}")
        await queue.add_requests([f"https://example.com/page/{i}" for i in range(2, 6)])  # 2 already there
        await queue.add_request(Request.from_url("https://example.com/post", method="POST",
                                                 unique_key="post-1", label="FORM"))
        handled = []
        while not await queue.is_finished():
            request = await queue.fetch_next_request()
            if request is None:
                await asyncio.sleep(0.2)
                continue
            handled.append({"url": request.url, "uniqueKey": request.unique_key,
                            "label": request.label})
            await queue.mark_request_as_handled(request)
        # A queue filled by someone else: nothing is cached, so the SDK reads each request from the server.
        seeded = await Actor.open_request_queue(name="seeded")
        request = await seeded.fetch_next_request()
        await seeded.mark_request_as_handled(request)
        await Actor.set_value("OUTPUT", {"handled": handled, "total": await queue.get_total_count(),
                                         "seeded": {"url": request.url, "label": request.label,
                                                    "userData": request.user_data.model_dump(),
                                                    "finished": await seeded.is_finished()}})

asyncio.run(main())
"""


def test_concurrent_pushes_from_three_runs_lose_nothing(platform):
    define_actor(platform, "pusher", PUSHER)
    n = 60
    runs = [platform.start_run("pusher", memory_mb=TEST_MEMORY_MB, input={"tag": tag, "n": n})
            for tag in ("a", "b", "c")]
    finished = [platform.wait_run(run["id"], timeout=300) for run in runs]
    for run in finished:
        assert run["status"] == "SUCCEEDED", platform.run_log(run["id"]).decode()[-3000:]

    dataset = platform.storages.get(DATASETS, "shared-pushes")
    assert dataset["itemCount"] == 3 * 2 * n
    items = json.loads(platform.storages.list_items(dataset["id"]).json_array())
    singles = Counter((item["run"], item["i"]) for item in items if "i" in item)
    batched = Counter((item["run"], item["batch"]) for item in items if "batch" in item)
    expected = {(tag, i) for tag in "abc" for i in range(n)}
    assert set(singles) == expected and set(singles.values()) == {1}
    assert set(batched) == expected and set(batched.values()) == {1}
    # Each run's own pushes stayed in order, whatever the interleaving with the others.
    for tag in "abc":
        assert [item["i"] for item in items if item["run"] == tag and "i" in item] == list(range(n))


def test_request_queue_through_the_real_sdk(platform):
    define_actor(platform, "queue-user", QUEUE_USER)
    seeded = platform.storages.get_or_create(REQUEST_QUEUES, "seeded")[0]["id"]
    platform.storages.add_requests(seeded, [{"url": "https://example.com/seed", "userData": {"label": "SEEDED",
                                                                                              "depth": 2}}])
    run = platform.start_run("queue-user", memory_mb=TEST_MEMORY_MB)
    run = platform.wait_run(run["id"], timeout=300)
    log = platform.run_log(run["id"]).decode()
    assert run["status"] == "SUCCEEDED", log[-3000:]

    output = json.loads(platform.storages.get_record(run["default_key_value_store_id"], "OUTPUT")[0])
    urls = [f"https://example.com/page/{i}" for i in range(6)]
    assert [entry["url"] for entry in output["handled"]] == [*urls, "https://example.com/post"]
    assert output["total"] == 7
    assert [entry["uniqueKey"] for entry in output["handled"]] == [*urls, "post-1"]
    # The SDK addressed each request (PUT .../requests/{id} to mark it handled) by the id it computes
    # from the unique key; the server refuses an id that does not match, so all 7 handled means they agree.
    assert output["handled"][-1]["label"] == "FORM"

    assert output["seeded"]["url"] == "https://example.com/seed" and output["seeded"]["label"] == "SEEDED"
    assert output["seeded"]["userData"]["depth"] == 2 and output["seeded"]["finished"] is True
    assert platform.storages.get(REQUEST_QUEUES, seeded)["handledRequestCount"] == 1
    queue = platform.storages.get(REQUEST_QUEUES, run["default_request_queue_id"])
    assert (queue["totalRequestCount"], queue["handledRequestCount"], queue["pendingRequestCount"]) == (7, 7, 0)
    for unique_key in [*urls, "post-1"]:
        assert platform.storages.get_request(queue["id"], unique_key_to_request_id(unique_key))["handledAt"]
    stored = platform.storages.get_request(queue["id"], unique_key_to_request_id("post-1"))
    assert stored["method"] == "POST" and stored["handledAt"] and stored["userData"]["label"] == "FORM"
    assert platform.storages.list_head(queue["id"])["items"] == []
