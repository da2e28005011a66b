"""Acceptance: the real apify SDK inside containers and the real apify-client from the notebook side."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from apify_client import ApifyClientAsync

CHILD = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input()
        await Actor.set_value("OUTPUT", {"double": actor_input["x"] * 2})

asyncio.run(main())
"""

PARENT = """
import asyncio
from datetime import timedelta
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input() or {}
        await Actor.set_value("greeting", {"hello": actor_input.get("name")})
        got = await Actor.get_value("greeting")
        await Actor.push_data([{"i": i, "square": i * i} for i in range(5)])
        store = await Actor.open_key_value_store(name="sdk-named-store")
        visits = (await store.get_value("visits") or 0) + 1
        await store.set_value("visits", visits)
        dataset = await Actor.open_dataset(name="sdk-named-dataset")
        await dataset.push_data({"from": "parent"})
        state = await Actor.use_state(default_value={"count": 0})
        state["count"] += 1
        await Actor.set_status_message("Almost done")
        child = await Actor.call("child", run_input={"x": 21}, memory_mbytes=1024,
                                 timeout=timedelta(seconds=120), logger=None)
        record = await Actor.apify_client.key_value_store(child.default_key_value_store_id).get_record("OUTPUT")
        await Actor.set_value("OUTPUT", {"got": got, "child": record["value"], "childStatus": str(child.status),
                                         "visits": visits})
        if actor_input.get("fail"):
            await Actor.fail(status_message="failing on purpose")
        Actor.log.info("parent done")

asyncio.run(main())
"""

COUNTER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        store = await Actor.open_key_value_store(name="example-counter")
        counter = int(await store.get_value("counter") or 0) + 1
        print(f"Counter: {counter}")
        await Actor.set_value("OUTPUT", counter)
        await store.set_value("counter", str(counter))

asyncio.run(main())
"""

SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


def source_version(main_py: str) -> dict:
    return {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest",
            "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": main_py}]}


async def create_and_build(client: ApifyClientAsync, name: str, main_py: str) -> None:
    await client.actors().create(name=name, versions=[source_version(main_py)])
    build = await client.actor(f"local/{name}").build(version_number="0.0", wait_for_finish=60)
    assert build.status.value == "SUCCEEDED" if hasattr(build.status, "value") else build.status == "SUCCEEDED"


def status(run) -> str:
    return run.status.value if hasattr(run.status, "value") else str(run.status)


async def test_sdk_actor_and_client_end_to_end(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "child", CHILD)
    await create_and_build(client, "sdk-all", PARENT)

    run = await client.actor("local/sdk-all").call(
        run_input={"name": "Ada"}, memory_mbytes=1024, run_timeout=timedelta(seconds=300), logger=None,
    )
    log = await client.run(run.id).log().get()
    assert status(run) == "SUCCEEDED", log
    assert run.options.memory_mbytes == 1024 and run.options.timeout_secs == 300
    output = await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT")
    assert output["value"] == {"got": {"hello": "Ada"}, "child": {"double": 42}, "childStatus": "SUCCEEDED",
                               "visits": 1}
    assert output["content_type"].startswith("application/json")
    state = await client.key_value_store(run.default_key_value_store_id).get_record("APIFY_GLOBAL_STATE")
    assert state["value"] == {"count": 1}
    items = await client.dataset(run.default_dataset_id).list_items()
    assert [item["square"] for item in items.items] == [0, 1, 4, 9, 16] and items.total == 5
    assert run.status_message in ("Almost done", "The run finished successfully")
    assert "parent done" in log and all(line[:4].isdigit() for line in log.splitlines() if line)

    named = await client.key_value_stores().get_or_create(name="sdk-named-store")
    assert (await client.key_value_store(named.id).get_record("visits"))["value"] == 1
    named_dataset = await client.datasets().get_or_create(name="sdk-named-dataset")
    assert (await client.dataset(named_dataset.id).list_items()).items == [{"from": "parent"}]

    failed = await client.actor("local/sdk-all").call(run_input={"name": "Bo", "fail": True},
                                                      memory_mbytes=1024, logger=None)
    assert status(failed) == "FAILED" and failed.exit_code == 1
    assert failed.status_message == "failing on purpose"
    output = await client.key_value_store(failed.default_key_value_store_id).get_record("OUTPUT")
    assert output["value"]["visits"] == 2  # the named store is shared between runs


async def test_counter_example_three_runs_print_one_two_three(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "example-counter", COUNTER)
    seen = []
    for _ in range(3):
        run = await client.actor("local/example-counter").call(memory_mbytes=1024, logger=None)
        assert status(run) == "SUCCEEDED"
        log = await client.run(run.id).log().get()
        seen.append([line.split(" ", 1)[1] for line in log.splitlines() if "Counter:" in line])
        output = await client.key_value_store(run.default_key_value_store_id).get_record("OUTPUT")
        assert output["value"] == len(seen)
    assert seen == [["Counter: 1"], ["Counter: 2"], ["Counter: 3"]]


async def test_client_streams_log_aborts_and_resurrects(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "sleeper", SLEEPER)
    run = await client.actor("local/sleeper").start(memory_mbytes=1024, run_timeout=timedelta(seconds=0))

    async def first_streamed_line() -> bytes:
        async with client.run(run.id).log().stream(raw=True) as response:
            async for chunk in response.aiter_bytes():
                if b"sleeping" in chunk:
                    return chunk
        return b""

    assert b"sleeping" in await asyncio.wait_for(first_streamed_line(), 60)
    aborted = await client.run(run.id).abort()
    assert status(aborted) in ("ABORTING", "ABORTED")
    finished = await client.run(run.id).wait_for_finish(wait_duration=timedelta(seconds=30))
    assert status(finished) == "ABORTED"
    resurrected = await client.run(run.id).resurrect(memory_mbytes=1024)
    assert status(resurrected) == "RUNNING"
    again = await client.run(run.id).get()
    assert again.stats.resurrect_count == 1
    await client.run(run.id).abort()
    assert status(await client.run(run.id).wait_for_finish(wait_duration=timedelta(seconds=30))) == "ABORTED"
