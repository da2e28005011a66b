"""Last-run shortcuts through the real apify-client: ``actor(x).last_run()`` and everything under it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ConflictError

from .test_api_sdk import create_and_build, status

WRITER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input() or {}
        await Actor.set_value("OUTPUT", {"n": actor_input["n"]})
        await Actor.push_data([{"n": actor_input["n"], "i": i} for i in range(3)])
        queue = await Actor.open_request_queue()
        await queue.add_request(f"https://example.com/{actor_input['n']}")
        Actor.log.info(f"wrote {actor_input['n']}")
        if actor_input.get("fail"):
            await Actor.fail(status_message="failing on purpose")

asyncio.run(main())
"""


async def test_last_run_and_its_storages_log_and_filters(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "last-writer", WRITER)
    actor = client.actor("local/last-writer")
    assert await actor.last_run().get() is None
    assert await actor.last_run().key_value_store().get_record("OUTPUT") is None  # no run yet: 404, not a record

    first = await actor.call(run_input={"n": 1}, memory_mbytes=1024, logger=None)
    second = await actor.call(run_input={"n": 2, "fail": True}, memory_mbytes=1024, logger=None)
    assert (status(first), status(second)) == ("SUCCEEDED", "FAILED")

    last = actor.last_run()
    assert (await last.get()).id == second.id
    assert (await last.key_value_store().get_record("OUTPUT"))["value"] == {"n": 2}
    succeeded = actor.last_run(status="SUCCEEDED")
    assert (await succeeded.get()).id == first.id
    assert (await succeeded.key_value_store().get_record("OUTPUT"))["value"] == {"n": 1}
    assert [item["n"] for item in (await succeeded.dataset().list_items()).items] == [1, 1, 1]
    assert (await succeeded.dataset().get()).id == first.default_dataset_id
    assert [key.key for key in (await succeeded.key_value_store().list_keys()).items].count("OUTPUT") == 1
    assert (await succeeded.request_queue().get()).id == first.default_request_queue_id
    assert "wrote 1" in await succeeded.log().get()
    assert "wrote 2" in await last.log().get()
    assert await actor.last_run(status="ABORTED").get() is None
    assert (await actor.last_run(origin="API").get()).id == second.id
    assert await actor.last_run(origin="SCHEDULER").get() is None

    # Run lists: status as a list, started before/after.
    both = await actor.runs().list(status=["SUCCEEDED", "FAILED"])
    assert {run.id for run in both.items} == {first.id, second.id}
    assert [run.id for run in (await client.runs().list(status="FAILED")).items] == [second.id]
    assert (await actor.runs().list(started_after=second.started_at + timedelta(seconds=1))).items == []
    before = await actor.runs().list(started_before=second.started_at - timedelta(milliseconds=1))
    assert [run.id for run in before.items] == [first.id]
    assert (await actor.runs().list(started_before=first.started_at - timedelta(days=1))).items == []

    # Resurrect and abort the last run; wait_for_finish goes through /runs/last with waitForFinish.
    resurrected = await succeeded.resurrect(memory_mbytes=1024)
    assert resurrected.id == first.id and status(resurrected) == "RUNNING"
    finished = await actor.last_run(status="RUNNING,SUCCEEDED").wait_for_finish(wait_duration=timedelta(seconds=60))
    assert finished.id == first.id and status(finished) == "SUCCEEDED"
    with pytest.raises(ConflictError):  # finished: 409, nothing changes
        await actor.last_run(status="SUCCEEDED").abort()
    assert status(await client.run(first.id).get()) == "SUCCEEDED"


async def test_bad_filters_and_unsupported_actions_answer_in_apify_shape(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    await create_and_build(client, "last-failer", "import sys\nsys.exit(3)\n")
    run = await client.actor("local/last-failer").call(memory_mbytes=1024, logger=None)
    async with httpx.AsyncClient(base_url=f"{api_url}/v2", headers={"Authorization": f"Bearer {api_token}"}) as http:
        for path in ("/acts/local~last-failer/runs/last/metamorph?targetActorId=last-failer",
                     "/actors/last-failer/runs/last/reboot",
                     f"/actor-runs/{run.id}/metamorph?targetActorId=last-failer", f"/actor-runs/{run.id}/reboot"):
            response = await http.post(path)  # the last run has finished: nothing to metamorph or reboot
            assert response.status_code == 409, (path, response.text)
            assert response.json()["error"]["type"] == "run-not-running"
            assert "only a RUNNING run" in response.json()["error"]["message"]
        bad = await http.get("/acts/last-failer/runs/last?status=DONE")
        assert bad.status_code == 400 and "DONE" in bad.json()["error"]["message"]
        bad = await http.get("/actor-runs?startedAfter=yesterday")
        assert bad.status_code == 400 and "startedAfter" in bad.json()["error"]["message"]
        bad = await http.post("/acts/last-failer/runs/last/abort?surprise=1")
        assert bad.status_code == 400 and "surprise" in bad.json()["error"]["message"]
        missing = await http.get("/acts/last-failer/runs/last/dataset/items?status=SUCCEEDED")
        assert missing.status_code == 404 and "no run with status SUCCEEDED" in missing.json()["error"]["message"]
        assert (await http.get("/acts/last-failer/runs/last/dataset/items?status=FAILED")).json() == []
