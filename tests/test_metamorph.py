"""Metamorph and reboot through the real SDK and apify-client: the same run goes on in a new container."""

from __future__ import annotations

from datetime import timedelta

import httpx
from apify_client import ApifyClientAsync

from .test_api_sdk import create_and_build, status

# Stores something, then metamorphs into "metamorph-target" with a new input; it never gets past the call.
MORPHER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input() or {}
        await Actor.set_value("BEFORE", {"written by": "morpher"})
        print("metamorphing", flush=True)
        await Actor.metamorph("metamorph-target", {"greeting": f"hello {actor_input['name']}"})
        print("still the morpher", flush=True)

asyncio.run(main())
"""

# Reads its input (wherever APIFY_INPUT_KEY points) and what the morpher stored, and writes OUTPUT.
TARGET = """
import asyncio
import os
from apify import Actor

async def main():
    async with Actor:
        await Actor.set_value("OUTPUT", {
            "input": await Actor.get_input(), "inputKey": os.environ["APIFY_INPUT_KEY"],
            "actorInputKey": os.environ["ACTOR_INPUT_KEY"], "actorId": os.environ["APIFY_ACTOR_ID"],
            "runId": os.environ["APIFY_ACTOR_RUN_ID"], "before": await Actor.get_value("BEFORE"),
        })
        print("target done", flush=True)

asyncio.run(main())
"""


async def test_sdk_metamorph_continues_the_run_as_the_target_actor(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "metamorph-target", TARGET)
    await create_and_build(client, "morpher", MORPHER)
    morpher = await client.actor("local/morpher").get()
    target = await client.actor("local/metamorph-target").get()

    run = await client.actor("local/morpher").call(run_input={"name": "Ada"}, memory_mbytes=1024,
                                                   run_timeout=timedelta(seconds=300), logger=None)
    log = await client.run(run.id).log().get()
    assert status(run) == "SUCCEEDED", log
    # One run, one log: the morpher's lines, then the target's; the morpher never went on after the call.
    assert log.index("metamorphing") < log.index("target done") and "still the morpher" not in log
    store = client.run(run.id).key_value_store()
    output = (await store.get_record("OUTPUT"))["value"]
    assert output == {"input": {"greeting": "hello Ada"}, "inputKey": "INPUT-METAMORPH-1",
                      "actorInputKey": "INPUT-METAMORPH-1", "actorId": target.id, "runId": run.id,
                      "before": {"written by": "morpher"}}
    assert (await store.get_record("INPUT"))["value"] == {"name": "Ada"}  # the first input is kept
    assert (await store.get_record("INPUT-METAMORPH-1"))["value"] == {"greeting": "hello Ada"}
    # The run stays the morpher's (actId), counts the metamorph and names the actor it became.
    assert run.act_id == morpher.id and run.stats.metamorph == 1
    assert [(m.actor_id, m.input_key) for m in run.metamorphs] == [(target.id, "INPUT-METAMORPH-1")]
    assert run.metamorphs[0].build_id == run.build_id
    assert (await client.actor("local/morpher").last_run().get()).id == run.id
    assert await client.actor("local/metamorph-target").last_run().get() is None

    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        finished = await http.post(f"/actor-runs/{run.id}/metamorph?targetActorId=metamorph-target")
        assert finished.status_code == 409 and "only a RUNNING run" in finished.json()["error"]["message"]
        missing = await http.post(f"/actor-runs/{run.id}/metamorph")
        assert missing.status_code == 400 and "targetActorId" in missing.json()["error"]["message"]
        assert (await http.post(f"/actor-runs/{run.id}/reboot")).status_code == 409


# Counts its boots in its store; the first boot reboots the run, the second writes OUTPUT.
REBOOTER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        boots = (await Actor.get_value("BOOTS") or 0) + 1
        await Actor.set_value("BOOTS", boots)
        print(f"boot {boots}", flush=True)
        if boots == 1:
            await Actor.reboot()
            print("not rebooted", flush=True)
        await Actor.set_value("OUTPUT", {"boots": boots, "input": await Actor.get_input()})

asyncio.run(main())
"""


async def test_sdk_reboot_restarts_the_container_with_the_same_input_and_storages(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "rebooter", REBOOTER)
    run = await client.actor("local/rebooter").call(run_input={"n": 7}, memory_mbytes=1024,
                                                    run_timeout=timedelta(seconds=300), logger=None)
    log = await client.run(run.id).log().get()
    assert status(run) == "SUCCEEDED", log
    assert log.index("boot 1") < log.index("boot 2") and "not rebooted" not in log
    assert (await client.run(run.id).key_value_store().get_record("OUTPUT"))["value"] == {"boots": 2,
                                                                                         "input": {"n": 7}}
    assert (run.stats.reboot_count, run.stats.restart_count, run.stats.metamorph) == (1, 0, 0)


def test_only_the_run_itself_or_the_user_may_metamorph_or_reboot_it(platform_factory):
    import requests

    from .conftest import define_actor, wait_until
    from .test_api_hostile import SLEEPER

    platform = platform_factory()
    define_actor(platform, "sleeper", SLEEPER)
    runs = [platform.start_run("sleeper", memory_mb=1024, timeout_secs=300) for _ in range(2)]
    for run in runs:
        wait_until(lambda run=run: b"sleeping" in platform.run_log(run["id"]), 60, message="running")
    mine, other = runs
    base = f"{platform.actor_api_url}/v2/actor-runs/{mine['id']}"
    as_other = {"Authorization": f"Bearer {other['token']}"}
    for path in ("/metamorph?targetActorId=sleeper", "/reboot"):
        refused = requests.post(base + path, headers=as_other, timeout=30)
        assert refused.status_code == 403, refused.text  # another run may read nothing of it, let alone this
    assert platform.get_run(mine["id"])["stop_intent"] is None
    rebooted = requests.post(base + "/reboot", headers={"Authorization": f"Bearer {mine['token']}"}, timeout=30)
    assert rebooted.status_code == 200 and rebooted.json()["data"]["stats"]["rebootCount"] == 1
    wait_until(lambda: platform.run_log(mine["id"]).count(b"sleeping") == 2, 60, message="rebooted")
    assert platform.get_run(mine["id"])["status"] == "RUNNING"
    for run in runs:
        platform.abort_run(run["id"])
        assert platform.wait_run(run["id"], 60)["status"] == "ABORTED"


def test_a_hand_over_the_last_server_did_not_finish_is_finished_at_the_next_start(platform_factory, tmp_path):
    """The server recorded a reboot, then died before the container was replaced: the next start replaces it."""
    from jupyter_actors.platform.lifecycle import STOP_REBOOT

    from .conftest import define_actor, wait_until
    from .test_api_hostile import SLEEPER

    data_dir = tmp_path / "hand-over"
    first = platform_factory(data_dir=data_dir)
    define_actor(first, "sleeper", SLEEPER)
    run = first.start_run("sleeper", memory_mb=1024, timeout_secs=300)
    wait_until(lambda: b"sleeping" in first.run_log(run["id"]), 60, message="running")
    old_container = first.get_run(run["id"])["container_id"]
    assert first.stores.runs.mark_stopping(run["id"], STOP_REBOOT, "Rebooting", {"reboot_count": 1})
    first.close()  # gone before it stopped the container

    second = platform_factory(data_dir=data_dir)
    report = second.reconcile()
    assert report.restarted == [run["id"]]
    wait_until(lambda: second.run_log(run["id"]).count(b"sleeping") == 2, 60, message="replaced")
    replaced = second.get_run(run["id"])
    assert replaced["status"] == "RUNNING" and replaced["container_id"] != old_container
    assert (replaced["reboot_count"], replaced["restart_count"], replaced["stop_intent"]) == (1, 0, None)
    second.abort_run(run["id"])
    assert second.wait_run(run["id"], 60)["status"] == "ABORTED"


def test_a_metamorphed_run_keeps_its_target_actor_from_being_deleted(platform_factory):
    import pytest

    from jupyter_actors.platform.errors import Conflict

    from .conftest import define_actor, wait_until
    from .test_api_hostile import SLEEPER

    platform = platform_factory()
    define_actor(platform, "first", SLEEPER)
    define_actor(platform, "second", SLEEPER.replace("sleeping", "second sleeping"))
    run = platform.start_run("first", memory_mb=1024, timeout_secs=300)
    wait_until(lambda: b"sleeping" in platform.run_log(run["id"]), 60, message="running")
    platform.metamorph_run(run["id"], "second", input={"a": 1})
    wait_until(lambda: b"second sleeping" in platform.run_log(run["id"]), 60, message="metamorphed")
    with pytest.raises(Conflict, match="metamorphed into it"):
        platform.delete_actor("second")
    morphed = platform.get_run(run["id"])
    assert morphed["status"] == "RUNNING" and morphed["input_key"] == "INPUT-METAMORPH-1"
    platform.abort_run(run["id"])
    assert platform.wait_run(run["id"], 60)["status"] == "ABORTED"
    platform.delete_actor("second")  # nothing runs it now
