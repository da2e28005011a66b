"""Runs survive server restarts: kill -9 and adoption, graceful stop with `migrating`, events."""

from __future__ import annotations

import json

import pytest

from .conftest import server_process, wait_until
from jupyter_actors.server.process import ServerProcess

# The seed's counter made long-running: counts to N with a pause per step, persisting its position on
# persistState/migrating (the real SDK's use_state), pushing one dataset item per step.
LONG_COUNTER = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        actor_input = await Actor.get_input() or {}
        state = await Actor.use_state(default_value={"position": 0})
        if state["position"]:
            Actor.log.info("resuming from %s", state["position"])
        while state["position"] < actor_input.get("n", 20):
            state["position"] += 1
            print(f"count {state['position']}", flush=True)
            await Actor.push_data({"count": state["position"]})
            await asyncio.sleep(actor_input.get("pause", 0.5))
        await Actor.set_value("OUTPUT", {"final": state["position"]})

asyncio.run(main())
"""


def source(main_py: str) -> dict:
    return {"name": "long-counter", "versions": [{"versionNumber": "0.0", "sourceType": "SOURCE_FILES",
            "sourceFiles": [{"name": "main.py", "format": "TEXT", "content": main_py}]}]}


@pytest.fixture
def server(tmp_path, docker_client, base_image):
    with server_process(tmp_path, docker_client, persist_state_interval_secs=1.0, migrate_grace_secs=5.0) as made:
        yield made


def start_counter(server: ServerProcess, **run_input) -> str:
    with server.client() as client:
        assert client.post("/actors", json=source(LONG_COUNTER)).status_code == 201
        build = client.post("/actors/long-counter/builds", params={"waitForFinish": 60}).json()["data"]
        assert build["status"] == "SUCCEEDED"
        run = client.post("/actors/long-counter/runs", params={"memory": 1024, "timeout": 300},
                          json=run_input).json()["data"]
    return run["id"]


def log_lines(client, run_id: str) -> list[str]:
    text = client.get(f"/actor-runs/{run_id}/log").text
    return [line.split(" ", 1)[1] for line in text.splitlines() if " count " in f" {line.split(' ', 1)[1]}"]


def counted(client, run_id: str) -> int:
    lines = log_lines(client, run_id)
    return int(lines[-1].split()[1]) if lines else 0


def test_sigkill_of_the_server_mid_run_adopts_the_run(server):
    server.start()
    run_id = start_counter(server, n=16, pause=0.5)
    with server.client() as client:
        wait_until(lambda: counted(client, run_id) >= 4, 120, message="counting started")
    server.kill()
    server.start()  # a new process: reconciliation adopts the still-running container
    with server.client() as client:
        run = client.get(f"/actor-runs/{run_id}", params={"waitForFinish": 60}).json()["data"]
        run = wait_until(lambda: (r := client.get(f"/actor-runs/{run_id}").json()["data"])["isTerminal"] and r, 120)
        assert run["status"] == "SUCCEEDED", client.get(f"/actor-runs/{run_id}/log").text
        assert run["stats"]["restartCount"] == 0  # adopted, not restarted
        assert log_lines(client, run_id) == [f"count {i}" for i in range(1, 17)]
        output = client.get(f"/key-value-stores/{run['defaultKeyValueStoreId']}/records/OUTPUT").json()
        assert output == {"final": 16}
        items = client.get(f"/datasets/{run['defaultDatasetId']}/items").json()
        assert [item["count"] for item in items] == list(range(1, 17))


def test_graceful_stop_migrates_and_the_next_start_resumes(server):
    server.start()
    run_id = start_counter(server, n=12, pause=0.5)
    with server.client() as client:
        wait_until(lambda: counted(client, run_id) >= 3, 120, message="counting started")
    server.stop()  # SIGTERM: `migrating`, a grace period to persist, then the container is stopped
    server.start()
    with server.client() as client:
        run = wait_until(lambda: (r := client.get(f"/actor-runs/{run_id}").json()["data"])["isTerminal"] and r, 120)
        log = client.get(f"/actor-runs/{run_id}/log").text
        if run["status"] != "SUCCEEDED":  # seen under load (exit 134): the whole story, in the captured output
            print(run["statusMessage"], log, server.log_text(), sep="\n----\n")
        assert run["status"] == "SUCCEEDED"
        assert run["stats"]["restartCount"] == 1
        assert "resuming from" in log  # it continued from the persisted position, not from zero
        numbers = [int(line.split()[1]) for line in log_lines(client, run_id)]
        resumed_at = int(log.split("resuming from ", 1)[1].split()[0])
        assert resumed_at >= 3 and numbers[-1] == 12
        output = client.get(f"/key-value-stores/{run['defaultKeyValueStoreId']}/records/OUTPUT").json()
        assert output == {"final": 12}


MIGRATION_AWARE = """
import asyncio
from apify import Actor, Event

async def main():
    async with Actor:
        async def on_migrating(event_data):
            await Actor.set_value("MIGRATED", {"migrating": True})
            print("got migrating", flush=True)

        async def on_aborting(event_data):
            await Actor.set_value("ABORTING", {"aborting": True})
            print("got aborting", flush=True)

        Actor.on(Event.MIGRATING, on_migrating)
        Actor.on(Event.ABORTING, on_aborting)
        print("ready", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def test_graceful_stop_sends_migrating_and_state_is_stored_before_exit(tmp_path, docker_client, base_image):
    from jupyter_actors.platform.storages import Storages

    with server_process(tmp_path, docker_client, persist_state_interval_secs=600.0, migrate_grace_secs=5.0) as server:
        server.start()
        with server.client() as client:
            body = source(MIGRATION_AWARE) | {"name": "migrator"}
            assert client.post("/actors", json=body).status_code == 201
            build = client.post("/actors/migrator/builds", params={"waitForFinish": 60}).json()["data"]
            assert build["status"] == "SUCCEEDED"
            run = client.post("/actors/migrator/runs", params={"memory": 1024}).json()["data"]
            wait_until(lambda: "ready" in client.get(f"/actor-runs/{run['id']}/log").text, 120, message="ready")
        server.stop()
        storages = Storages(server.data_dir / "storages")
        try:
            value, _ = storages.get_record(run["defaultKeyValueStoreId"], "MIGRATED")
        finally:
            storages.close()
        assert value == b'{"migrating": true}' or b'"migrating"' in value


def test_graceful_abort_sends_aborting_and_the_socket_takes_only_its_own_token(platform_factory):
    import asyncio

    from tornado.httpclient import HTTPClientError
    from tornado.websocket import websocket_connect

    from .conftest import define_actor

    platform = platform_factory()
    define_actor(platform, "migrator", MIGRATION_AWARE)
    run = platform.start_run("migrator", memory_mb=1024, timeout_secs=300)
    other = platform.start_run("migrator", memory_mb=1024, timeout_secs=300)
    wait_until(lambda: b"ready" in platform.run_log(run["id"]), 120, message="ready")
    url = platform.events_url_template.format(run_id=run["id"], token=other["token"])
    with pytest.raises(HTTPClientError) as info:
        async def connect():
            return await websocket_connect(url, connect_timeout=10)

        asyncio.run(connect())
    assert info.value.code == 401
    platform.abort_run(run["id"], gracefully=True)
    final = platform.wait_run(run["id"], timeout=60)
    assert final["status"] == "ABORTED"
    assert b"got aborting" in platform.run_log(run["id"])
    value, _ = platform.storages.get_record(run["default_key_value_store_id"], "ABORTING")
    assert b'"aborting"' in value
    platform.abort_run(other["id"])
    platform.wait_run(other["id"], timeout=60)


def test_outage_longer_than_the_sdk_retry_budget_does_not_fail_the_run(server, docker_client):
    server.start()
    run_id = start_counter(server, n=400, pause=0.5)  # pushes an item every step: it needs the API
    with server.client() as client:
        wait_until(lambda: counted(client, run_id) >= 3, 120, message="counting started")
    server.kill()
    from jupyter_actors.platform.registry import Registry

    registry = Registry(server.data_dir / "registry.sqlite")
    container_id = registry.query_one("SELECT container_id FROM runs WHERE id = ?", (run_id,))["container_id"]
    registry.close()
    # The SDK retries for about two minutes, then exits 91: wait until it has given up.
    wait_until(lambda: not docker_client.api.inspect_container(container_id)["State"]["Running"], 400, interval=1,
               message="the actor gave up on the API")
    assert docker_client.api.inspect_container(container_id)["State"]["ExitCode"] != 0
    server.start()
    with server.client() as client:
        run = client.get(f"/actor-runs/{run_id}").json()["data"]
        assert run["status"] == "RUNNING" and run["stats"]["restartCount"] == 1  # lost, not failed
        # It resumes from its persisted position and counts on.
        wait_until(lambda: "resuming from" in client.get(f"/actor-runs/{run_id}/log").text, 120, message="resumed")
        client.post(f"/actor-runs/{run_id}/abort")
        run = wait_until(lambda: (r := client.get(f"/actor-runs/{run_id}").json()["data"])["isTerminal"] and r, 60)
        assert run["status"] == "ABORTED"


def test_plain_http_actor_keeps_its_state_across_a_migration(platform_factory, tmp_path):
    from jupyter_actors.cli import EXAMPLES_DIR
    from jupyter_actors.platform.sources import load_actor_dir

    data_dir = tmp_path / "shared-data"
    first = platform_factory(data_dir=data_dir, migrate_grace_secs=5.0)
    first.create_actor(load_actor_dir(EXAMPLES_DIR / "plain-http-state"))
    assert first.build("plain-http-state")["status"] == "SUCCEEDED"
    run = first.start_run("plain-http-state", memory_mb=1024, timeout_secs=300, input={"n": 12, "pause": 0.3})
    wait_until(lambda: b"count 3" in first.run_log(run["id"]), 120, message="counting")
    first.shutdown()  # migrate: SIGTERM (no events socket), it saves, the container is stopped
    assert b"on SIGTERM" in (data_dir / "logs" / f"run-{run['id']}.log").read_bytes()

    second = platform_factory(data_dir=data_dir)
    report = second.reconcile()
    assert report.restarted == [run["id"]]
    final = second.wait_run(run["id"], timeout=120)
    assert final["status"] == "SUCCEEDED" and final["restart_count"] == 1
    log = second.run_log(run["id"]).decode()
    saved = int(log.split("saved ", 1)[1].split()[0])
    assert f"resuming from {saved}" in log and saved >= 3
    value, _ = second.storages.get_record(run["default_key_value_store_id"], "OUTPUT")
    assert json.loads(value) == {"final": 12}


SYSTEM_INFO = """
import asyncio
from apify import Actor, Event

async def main():
    async with Actor:
        seen = []

        def on_info(data):
            seen.append((data.cpu_info.used_ratio, data.memory_info.current_size))

        Actor.on(Event.SYSTEM_INFO, on_info)
        ballast = b"\x01" * (64 * 1024 * 1024)  # 64 MB written, so resident (a zeroed bytearray is not)
        seen.clear()  # count only samples taken with the ballast in place
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 3 and asyncio.get_running_loop().time() < deadline:
            sum(range(200_000))  # keep the CPU busy between events
            await asyncio.sleep(0)
        for ratio, memory in seen:
            print(f"systemInfo cpu {ratio:.3f} memory {int(memory.bytes)}", flush=True)

asyncio.run(main())
"""


def test_system_info_events_carry_the_containers_cpu_and_memory(platform_factory):
    from .conftest import define_actor

    platform = platform_factory(system_info_interval_secs=0.5)
    define_actor(platform, "system-info", SYSTEM_INFO)
    run = platform.wait_run(platform.start_run("system-info", memory_mb=1024, timeout_secs=120)["id"], 120)
    log = platform.run_log(run["id"]).decode()
    assert run["status"] == "SUCCEEDED", log
    samples = [line.split("systemInfo ", 1)[1].split() for line in log.splitlines() if "systemInfo cpu" in line]
    assert len(samples) >= 3, log
    cpu = [float(sample[1]) for sample in samples]
    memory = [int(sample[3]) for sample in samples]
    assert max(cpu) > 0.3  # busy on a 0.25-core share: near or above its whole share
    # The server samples on its own clock: the first sample after clear() may predate the ballast.
    assert max(memory) > 64 * 1024 * 1024
    assert min(memory) > 0


def test_a_run_that_ended_while_nobody_watched_is_finished_as_if_watched(platform_factory, tmp_path, docker_client):
    from jupyter_actors.platform.core import LABEL_INSTANCE, LABEL_RUN

    from .conftest import define_actor

    data_dir = tmp_path / "unwatched"
    first = platform_factory(data_dir=data_dir)
    define_actor(first, "short", "import time\nfor i in range(6):\n    print(f'step {i}', flush=True)\n"
                                  "    time.sleep(0.5)\n")
    run = first.start_run("short", memory_mb=1024, timeout_secs=120)
    wait_until(lambda: b"step 1" in first.run_log(run["id"]), 60, message="started")
    container_id = first.get_run(run["id"])["container_id"]
    first.close()  # the server goes away (as with kill -9): nothing watches the container now
    wait_until(lambda: not docker_client.api.inspect_container(container_id)["State"]["Running"], 60,
               message="the container ended on its own")
    # A leftover container with this instance's labels but no run record (a crash between create and record).
    orphan = docker_client.api.create_container(
        "jupyter-actors/python:3.11", command=["true"],
        labels={LABEL_INSTANCE: first.instance_id, LABEL_RUN: "no-such-run"})["Id"]

    second = platform_factory(data_dir=data_dir, orphan_grace_secs=0)
    report = second.reconcile()
    assert report.finished == [run["id"]] and report.restarted == []
    assert orphan in report.removed
    final = second.wait_run(run["id"], 60)
    assert final["status"] == "SUCCEEDED" and final["exit_code"] == 0
    steps = [line.split(" ", 1)[1] for line in second.run_log(run["id"]).decode().splitlines()]
    assert steps == [f"step {i}" for i in range(6)]  # the lines printed while unwatched, once each
    wait_until(lambda: not docker_client.api.containers(all=True, filters={"id": container_id}), 30,
               message="container removed after its log was stored")


def test_a_stopping_run_whose_container_is_gone_ends_as_its_stop_intended(platform_factory, tmp_path, docker_client):
    """The server recorded why it stops a run (abort, timeout, disk), then died before the container was
    gone; the container disappears while nobody watches. The next start ends each run as intended."""
    from jupyter_actors.platform.lifecycle import STOP_ABORT, STOP_DISK, STOP_TIMEOUT, RunStatus

    from .conftest import define_actor

    data_dir = tmp_path / "stopping"
    first = platform_factory(data_dir=data_dir)
    define_actor(first, "sleeper", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    runs = {intent: first.start_run("sleeper", memory_mb=1024, timeout_secs=300)["id"]
            for intent in (STOP_ABORT, STOP_TIMEOUT, STOP_DISK)}
    for run_id in runs.values():
        wait_until(lambda run_id=run_id: b"up" in first.run_log(run_id), 60, message="running")
    first.transition(runs[STOP_ABORT], RunStatus.ABORTING, stop_intent=STOP_ABORT, status_message="Aborting")
    first.transition(runs[STOP_TIMEOUT], RunStatus.TIMING_OUT, stop_intent=STOP_TIMEOUT,
                     status_message="The run is timing out")
    assert first.stores.runs.mark_stopping(runs[STOP_DISK], STOP_DISK, "Over its disk limit")
    containers = [first.get_run(run_id)["container_id"] for run_id in runs.values()]
    first.close()  # the server goes away before it stopped them (as with kill -9)
    for container_id in containers:  # and the engine loses them
        docker_client.api.remove_container(container_id, force=True)

    second = platform_factory(data_dir=data_dir)
    report = second.reconcile()
    assert sorted(report.finished) == sorted(runs.values()) and report.restarted == report.adopted == []
    aborted, timed_out, over_disk = (second.get_run(runs[intent]) for intent in (STOP_ABORT, STOP_TIMEOUT, STOP_DISK))
    assert (aborted["status"], aborted["status_message"]) == ("ABORTED", "The run was aborted")
    assert (timed_out["status"], timed_out["status_message"]) == ("TIMED-OUT", "The run timed out after 300 seconds")
    assert over_disk["status"] == "FAILED" and "disk limit" in over_disk["status_message"]
    assert all(run["finished_at"] and run["status_message_terminal"] for run in (aborted, timed_out, over_disk))


# Counts until it is stopped; saves its count only when the platform says persistState (the periodic one is off).
PERSIST_ON_EVENT = """
import asyncio
from apify import Actor, Event

async def main():
    async with Actor:
        state = {"count": 0}

        async def persist(event_data):
            saved = dict(state)  # the loop counts on while the record is written
            await Actor.set_value("STATE", saved)
            print(f"persisted {saved['count']}", flush=True)

        async def aborting(event_data):
            await Actor.set_value("ABORTING", {"aborting": True})

        Actor.on(Event.PERSIST_STATE, persist)
        Actor.on(Event.ABORTING, aborting)
        while True:
            state["count"] += 1
            print(f"count {state['count']}", flush=True)
            await asyncio.sleep(0.2)

asyncio.run(main())
"""


def test_a_timeout_sends_aborting_and_persist_state_before_the_sigterm(platform_factory):
    from .conftest import define_actor

    platform = platform_factory(persist_state_interval_secs=600.0, stop_grace_secs=10)
    define_actor(platform, "persist-on-event", PERSIST_ON_EVENT)
    run = platform.start_run("persist-on-event", memory_mb=1024, timeout_secs=8)
    final = platform.wait_run(run["id"], timeout=120)
    log = platform.run_log(run["id"]).decode()
    assert final["status"] == "TIMED-OUT", log
    value, _ = platform.storages.get_record(run["default_key_value_store_id"], "STATE")
    saved = json.loads(value)["count"]
    counts = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if " count " in line]
    assert saved >= 10  # what it had counted when the timeout came (about 8 s at 5 a second), not nothing
    assert f"persisted {saved}" in log
    value, _ = platform.storages.get_record(run["default_key_value_store_id"], "ABORTING")
    assert json.loads(value) == {"aborting": True}
    # It was given the grace period and stopped then (SIGTERM after it), not killed at the timeout.
    assert counts[-1] > saved + 10
