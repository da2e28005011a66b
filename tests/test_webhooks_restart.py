"""A webhook dispatch is stored before it is sent, so a server killed between its attempts delivers it
after the restart: the receiver refuses the first attempts, the server dies, the receiver recovers."""

from __future__ import annotations

import pytest
from apify_client import ApifyClient


from .conftest import server_process, wait_until
from .test_api_sdk import source_version
from .webhook_receiver import Receiver


@pytest.fixture
def server(tmp_path, docker_client, base_image):
    with server_process(tmp_path, docker_client, webhook_retry_base_secs=1.0, webhook_max_attempts=20) as made:
        yield made


@pytest.fixture
def receiver():
    made = Receiver(answer=503).start()
    yield made
    made.stop()


def test_a_refused_dispatch_is_delivered_after_a_server_restart(server, receiver):
    server.start()
    client = ApifyClient(token=server.token, api_url=server.api_url)
    actor = client.actors().create(name="hook-restart", versions=[source_version("print('done')\n")])
    assert str(client.actor(actor.id).build(version_number="0.0", wait_for_finish=60).status).endswith("SUCCEEDED")
    hook = client.webhooks().create(event_types=["ACTOR.RUN.SUCCEEDED"], request_url=receiver.url("/restart"),
                                    actor_id=actor.id)
    run = client.actor(actor.id).call(memory_mbytes=1024, logger=None)
    assert str(run.status).endswith("SUCCEEDED")

    def calls() -> list:
        items = client.webhook(hook.id).dispatches().list().items
        return items[0].calls if items else []

    wait_until(lambda: len(calls()) >= 2, 60, message="two refused calls recorded (a retry in between)")
    server.kill()  # SIGKILL: nothing is flushed or handed over on the way out
    receiver.set_answer(200)
    refused = [request for request in receiver.requests if request.answered == 503]
    assert len(refused) >= 2

    server.start()
    delivered = receiver.wait_for(lambda requests: next((r for r in requests if r.answered == 200), None), 90)
    assert delivered.json["eventType"] == "ACTOR.RUN.SUCCEEDED" and delivered.json["resource"]["id"] == run.id
    client = ApifyClient(token=server.token, api_url=server.api_url)

    def succeeded():
        items = client.webhook(hook.id).dispatches().list().items
        return items and str(items[0].status).endswith("SUCCEEDED") and items[0]

    dispatch = wait_until(succeeded, 30, message="the dispatch recorded as SUCCEEDED")
    # Every call the receiver saw is recorded, the refused ones first; delivered once, not once per start.
    assert [call.response_status for call in dispatch.calls] == [503] * len(refused) + [200]
    assert len(receiver.requests) == len(refused) + 1


def test_events_a_dying_server_left_undispatched_are_dispatched_at_the_next_start(platform_factory, tmp_path,
                                                                                    receiver):
    """The run's end is stored but the server dies before storing its dispatch: the next start replays the
    events since the last heartbeat, to the webhooks that existed when they happened, once."""
    from jupyter_actors.platform.clock import iso, parse_iso
    from jupyter_actors.platform.webhooks.service import WebhookSettings

    from .conftest import TEST_MEMORY_MB, define_actor

    receiver.set_answer(200)
    data_dir = tmp_path / "crashing"
    first = platform_factory(data_dir=data_dir)
    define_actor(first, "hook-crash", "print('done')\n")
    settings = WebhookSettings(event_types=("ACTOR.RUN.SUCCEEDED",), request_url=receiver.url("/before"),
                               actor_id="hook-crash")
    before, _ = first.webhooks.create(settings)
    run = first.start_run("hook-crash", memory_mb=TEST_MEMORY_MB)
    run = first.wait_run(run["id"], 120)
    assert run["status"] == "SUCCEEDED"
    receiver.wait_for(lambda requests: len(requests) == 1, 30)
    # The crash: the dispatch was never stored (nor sent), and the last heartbeat was just before the end.
    first.registry.query("DELETE FROM webhook_dispatches")
    first.webhooks.create(WebhookSettings(event_types=("ACTOR.RUN.SUCCEEDED",), request_url=receiver.url("/after"),
                                          actor_id="hook-crash"))
    first.stores.set_meta("heartbeat", iso(parse_iso(run["finished_at"])))
    first.close()
    receiver.requests.clear()

    second = platform_factory(data_dir=data_dir)
    second.reconcile()
    second.reconcile()  # a replay of a replay stores nothing new
    delivered = receiver.wait_for(lambda requests: requests, 30)
    assert delivered[0].path == "/before" and delivered[0].json["resource"]["id"] == run["id"]
    dispatches = second.webhooks.dispatches()
    assert [d["webhook_id"] for d in dispatches] == [before["id"]]
    wait_until(lambda: second.webhooks.dispatch(dispatches[0]["id"])["status"] == "SUCCEEDED", 30)
    assert [r.path for r in receiver.requests] == ["/before"]
