"""Request-queue locks with Apify's semantics, through the real apify-client against a real server.

A locked request is invisible to every head until its lock expires or is released; two clients locking
the head at once never get the same request; only the lock's holder may prolong, release, update or
delete it; ``filter=locked`` lists live locks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError

from jupyter_actors.platform.storages import REQUEST_QUEUES, Storages
from jupyter_actors.platform.errors import Forbidden

from .conftest import TEST_MEMORY_MB, define_actor

LOCK = dt.timedelta(seconds=60)


async def new_queue(client: ApifyClientAsync, name: str, urls: list[str]) -> str:
    queue = await client.request_queues().get_or_create(name=name)
    await client.request_queue(queue.id).batch_add_requests([{"url": url, "uniqueKey": url} for url in urls])
    return queue.id


async def test_two_clients_never_get_the_same_request(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    urls = [f"https://example.com/{index}" for index in range(60)]
    queue_id = await new_queue(client, "locks-two-clients", urls)
    first = client.request_queue(queue_id, client_key="client-a")
    second = client.request_queue(queue_id, client_key="client-b")

    taken: dict[str, list[str]] = {"client-a": [], "client-b": []}

    async def drain(queue, key):
        while True:
            head = await queue.list_and_lock_head(lock_duration=LOCK, limit=7)
            if not head.items:
                return head
            assert head.client_key == key and head.lock_secs == 60
            taken[key] += [item.id for item in head.items]

    last_a, last_b = await asyncio.gather(drain(first, "client-a"), drain(second, "client-b"))
    everything = taken["client-a"] + taken["client-b"]
    assert len(everything) == len(set(everything)) == 60, "a request was handed to both clients"
    assert taken["client-a"] and taken["client-b"]
    assert last_a.queue_has_locked_requests and last_b.queue_has_locked_requests
    assert last_b.had_multiple_clients
    # Locked requests are out of every head, the plain one too.
    assert (await client.request_queue(queue_id).list_head(limit=100)).items == []
    locked = await client.request_queue(queue_id).list_requests(filter=["locked"])
    assert sorted(item.id for item in locked.items) == sorted(everything)
    assert all(item.model_extra.get("lockExpiresAt") for item in locked.items)

    # The holder marks one handled: its lock goes with it. unlock_requests releases the rest of a's.
    request = await first.get_request(taken["client-a"][0])
    await first.update_request({**request.model_dump(by_alias=True, exclude_none=True),
                                "handledAt": dt.datetime.now(dt.timezone.utc).isoformat()})
    unlocked = await first.unlock_requests()
    assert unlocked.unlocked_count == len(taken["client-a"]) - 1
    head = await second.list_head(limit=100)
    assert sorted(item.id for item in head.items) == sorted(taken["client-a"][1:])
    assert len((await client.request_queue(queue_id).list_requests(filter=["locked"])).items) == len(taken["client-b"])


async def test_only_the_holder_prolongs_releases_updates_or_deletes(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    queue_id = await new_queue(client, "locks-holder", ["https://example.com/a", "https://example.com/b"])
    holder = client.request_queue(queue_id, client_key="holder")
    other = client.request_queue(queue_id, client_key="other")
    head = await holder.list_and_lock_head(lock_duration=LOCK, limit=1)
    (item,) = head.items
    assert item.url == "https://example.com/a"
    expires = item.lock_expires_at

    with pytest.raises(ApifyApiError) as refused:
        await other.prolong_request_lock(item.id, lock_duration=LOCK)
    assert refused.value.status_code == 403 and refused.value.type == "request-locked"
    for attempt in (other.delete_request_lock(item.id), other.delete_request(item.id),
                    other.update_request({"id": item.id, "url": item.url, "uniqueKey": item.unique_key})):
        with pytest.raises(ApifyApiError) as refused:
            await attempt
        assert refused.value.status_code == 403, refused.value
    deleted = await other.batch_delete_requests([{"uniqueKey": item.unique_key}])
    assert [entry.unique_key for entry in deleted.unprocessed_requests] == [item.unique_key]
    assert (await holder.get_request(item.id)) is not None, "a refused delete deleted the request"

    prolonged = await holder.prolong_request_lock(item.id, lock_duration=dt.timedelta(seconds=120))
    assert prolonged.lock_expires_at > expires
    # Still invisible: the other client takes the next one only.
    assert [i.url for i in (await other.list_and_lock_head(lock_duration=LOCK, limit=5)).items] == ["https://example.com/b"]
    await holder.delete_request_lock(item.id, forefront=True)
    assert [i.id for i in (await client.request_queue(queue_id).list_head()).items] == [item.id]
    # Releasing what is no longer locked is already done.
    await holder.delete_request_lock(item.id)

    with pytest.raises(ApifyApiError) as bad:
        await holder.prolong_request_lock(item.id, lock_duration=dt.timedelta(seconds=0))
    assert bad.value.status_code == 400 and "lockSecs" in bad.value.message


async def test_an_expired_lock_gives_the_request_back(api_url, api_token):
    client = ApifyClientAsync(token=api_token, api_url=api_url)
    queue_id = await new_queue(client, "locks-expiry", ["https://example.com/x"])
    first = client.request_queue(queue_id, client_key="first")
    second = client.request_queue(queue_id, client_key="second")
    (item,) = (await first.list_and_lock_head(lock_duration=dt.timedelta(seconds=1))).items
    assert (await second.list_and_lock_head(lock_duration=LOCK)).items == []

    async def taken_by_second():
        return (await second.list_and_lock_head(lock_duration=LOCK)).items

    deadline = asyncio.get_running_loop().time() + 10
    while not (items := await taken_by_second()):
        assert asyncio.get_running_loop().time() < deadline, "the expired lock never released the request"
        await asyncio.sleep(0.1)
    assert [i.id for i in items] == [item.id]
    # The first client's lock is gone for good: it may neither prolong nor update it now.
    with pytest.raises(ApifyApiError) as refused:
        await first.prolong_request_lock(item.id, lock_duration=LOCK)
    assert refused.value.status_code == 403


def test_locks_belong_to_the_run_as_well_as_the_client_key(tmp_path):
    """From a run, a lock is the run's too: a restarted SDK (new clientKey, same run) may release it;
    another run may not."""
    storages = Storages(tmp_path)
    queue = storages.create_request_queue()["id"]
    storages.add_requests(queue, [{"url": "https://example.com/1"}, {"url": "https://example.com/2"}])
    head = storages.lock_head(queue, lock_secs=60, limit=1, client_key="before-restart", run_id="run-a")
    request_id = head["items"][0]["id"]
    with pytest.raises(Forbidden):
        storages.delete_request_lock(queue, request_id, client_key="x", run_id="run-b")
    storages.prolong_request_lock(queue, request_id, lock_secs=30, client_key="after-restart", run_id="run-a")
    assert storages.unlock_requests(queue, client_key="after-restart", run_id="run-a") == {"unlockedCount": 1}
    assert [i["id"] for i in storages.list_head(queue)["items"]][0] == request_id
    storages.close()


SHARED_CONSUMER = r"""
import asyncio, os
from crawlee import service_locator
from apify import Actor
from apify.storage_clients import ApifyStorageClient, SmartApifyStorageClient

async def main():
    service_locator.set_storage_client(
        SmartApifyStorageClient(cloud_storage_client=ApifyStorageClient(request_queue_access='shared')))
    async with Actor:
        queue = await Actor.open_request_queue(name='shared-crawl')
        while not await queue.is_finished():
            request = await queue.fetch_next_request()
            if request is None:
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(0.05)  # some work, so that both consumers overlap
            await Actor.push_data({'url': request.url, 'run': os.environ['ACTOR_RUN_ID']})
            await queue.mark_request_as_handled(request)

asyncio.run(main())
"""


def test_two_sdk_runs_in_shared_mode_handle_each_request_once(platform):
    """The Python SDK's shared request-queue mode (head/lock, prolong, handled) from two concurrent runs."""
    urls = [f"https://example.com/page/{index}" for index in range(40)]
    queue = platform.storages.create_request_queue("shared-crawl")
    platform.storages.add_requests(queue["id"], [{"url": url, "uniqueKey": url} for url in urls])
    define_actor(platform, "shared-consumer", SHARED_CONSUMER)
    runs = [platform.start_run("shared-consumer", memory_mb=TEST_MEMORY_MB, timeout_secs=240) for _ in range(2)]
    runs = [platform.wait_run(run["id"], timeout=270) for run in runs]
    for run in runs:
        assert run["status"] == "SUCCEEDED", platform.run_log(run["id"]).decode()[-3000:]
    items = [item for run in runs
             for item in json.loads(
                 b"".join(platform.storages.list_items(run["default_dataset_id"]).iter_json_array()))]
    handled = sorted(item["url"] for item in items)
    assert handled == sorted(urls), "a request was handled twice or never"
    meta = platform.storages.get(REQUEST_QUEUES, queue["id"])
    assert meta["handledRequestCount"] == 40 and meta["hadMultipleClients"]


async def test_requests_are_served_without_nulls_for_javascript_crawlee(api_url, api_token):
    """crawlee's JavaScript Request refuses ``handledAt: null`` (and other nulls) when it hydrates a
    request from GET .../requests/{id}; absent fields are what it expects."""
    import httpx

    client = ApifyClientAsync(token=api_token, api_url=api_url)
    queue_id = await new_queue(client, "no-nulls", ["https://example.com/n"])
    request_id = (await client.request_queue(queue_id).list_head()).items[0].id
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_token}"}) as http:
        data = (await http.get(f"{api_url}/v2/request-queues/{queue_id}/requests/{request_id}")).json()["data"]
        listed = (await http.get(f"{api_url}/v2/request-queues/{queue_id}/requests")).json()["data"]["items"]
    for request in (data, *listed):
        assert None not in request.values(), request
        assert "handledAt" not in request and request["userData"] == {} and request["retryCount"] == 0
