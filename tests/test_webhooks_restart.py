"""A webhook dispatch is stored before it is sent, so a server killed between its attempts delivers it
after the restart: the receiver refuses the first attempts, the server dies, the receiver recovers."""

from __future__ import annotations

import pytest
from apify_client import ApifyClient

from jupyter_actors.server.process import ServerProcess

from .conftest import cleanup_instance, wait_until
from .test_api_sdk import source_version
from .webhook_receiver import Receiver


@pytest.fixture
def server(tmp_path, docker_client, base_image):
    made = ServerProcess(tmp_path, webhook_retry_base_secs=1.0, webhook_max_attempts=20)
    yield made
    made.stop()
    instance = made.instance_id()
    if instance:
        cleanup_instance(docker_client, instance)


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
