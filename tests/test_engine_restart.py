"""The host-restart case on a private engine: runs lost with the engine restart from their persisted state.

The server is stopped (``on_shutdown="detach"``: it leaves the container running), then the Docker
engine is restarted - a graceful engine stop without live-restore stops its containers (exit 143/137)
as a host shutdown does. At the next server start reconciliation finds the container ended with no
stop intent of the platform's and restarts the run with the same id and storages; the actor resumes
from the position it persisted on ``persistState``. The engine is a private one this test starts
(``tests/private_engine.py``), never the engine the other tests use.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest


from .conftest import cleanup_instance, wait_until
from .private_engine import PrivateEngine, describe, link_snapshot
from jupyter_actors.server.process import ServerProcess
from .test_resume import counted, log_lines, start_counter

LABEL_INSTANCE = "jupyter-actors.instance"
LABEL_RUN = "jupyter-actors.run-id"
PERSIST_INTERVAL_SECS = 1.0
STEP_PAUSE_SECS = 0.5
MAX_REDONE_STEPS = 3  # one persist interval (2 steps at 0.5 s) plus the step in flight


def main_engine_snapshot(client: docker.DockerClient) -> dict[str, tuple]:
    """Every container of the main engine with what a restart or a stop would change."""
    snapshot = {}
    for container in client.api.containers(all=True):
        try:
            state = client.api.inspect_container(container["Id"])["State"]
        except docker.errors.NotFound:  # another test removed it meanwhile
            continue
        snapshot[container["Id"]] = (state["StartedAt"], state["Status"] == "running")
    return snapshot


def main_daemon_process() -> tuple[str, str] | None:
    """The main dockerd's pid and process start time (from its default pidfile), if it has one."""
    try:
        pid = Path("/var/run/docker.pid").read_text().strip()
        return pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@pytest.fixture
def private_engine(docker_client, base_image):
    main_before = main_engine_snapshot(docker_client)
    main_daemon = main_daemon_process()
    host_bridge = link_snapshot("docker0")
    engine = PrivateEngine()
    try:
        engine.start()
        engine.prepare_for_runs(docker_client, base_image)
        yield engine
    finally:
        left = engine.cleanup()
    assert not left, f"the private engine left things behind ({describe(engine)}): {left}"
    # The main engine is untouched: it still answers, docker0 is there, and every container of it that
    # existed before and still exists was neither restarted nor stopped by this test.
    assert docker_client.ping()
    assert docker_client.api.inspect_network("bridge")["Options"].get("com.docker.network.bridge.name") == "docker0"
    assert host_bridge == link_snapshot("docker0"), "the host's docker0 changed"
    main_after = main_engine_snapshot(docker_client)
    changed = {cid: (before, main_after[cid]) for cid, before in main_before.items()
               if cid in main_after and before[0] != main_after[cid][0]}
    assert not changed, f"containers of the main engine were restarted: {changed}"
    # Containers of other tests may end meanwhile; what this test must not do is stop the main daemon.
    assert main_daemon_process() == main_daemon, "the main dockerd was restarted"


@pytest.fixture
def server(tmp_path, private_engine, docker_client):
    made = ServerProcess(tmp_path, on_shutdown="detach", persist_state_interval_secs=PERSIST_INTERVAL_SECS,
                         reconcile_interval_secs=1.0)
    made.env["DOCKER_HOST"] = private_engine.docker_host
    yield made
    made.stop()
    instance = made.instance_id()
    if instance:
        if private_engine.client is not None:
            cleanup_instance(private_engine.client, instance)
        label = f"{LABEL_INSTANCE}={instance}"
        # Nothing of this instance ever reached the main engine.
        assert not docker_client.api.containers(all=True, filters={"label": label})
        assert not docker_client.api.images(filters={"label": label})


def extension_setup_secs(server_log: str) -> float | None:
    """From the last server start's log: extension linked -> platform ready (incl. reconcile and restart launch)."""
    stamp = r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) "
    linked = re.findall(stamp + r"ServerApp\] jupyter_actors \| extension was successfully linked", server_log)
    ready = re.findall(stamp + r"ActorsExtension\] jupyter-actors: data in", server_log)
    if not linked or not ready:
        return None
    parse = lambda text: dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    return (parse(ready[-1]) - parse(linked[-1])).total_seconds()


def stored_at_stop(server: ServerProcess, dataset_id: str, store_id: str) -> tuple[list[int], int | None]:
    """What the stopped server holds: the dataset's counts and the position the actor persisted."""
    from jupyter_actors.platform.storages import Storages

    storages = Storages(server.data_dir / "storages")
    try:
        counts = [item["count"] for item in storages.list_items(dataset_id).items()]
        try:
            value, _ = storages.get_record(store_id, "APIFY_GLOBAL_STATE")
        except Exception:  # nothing persisted yet
            return counts, None
    finally:
        storages.close()
    state = json.loads(value)
    return counts, state.get("position") if isinstance(state, dict) else None


def run_containers(engine: PrivateEngine, run_id: str) -> list[dict]:
    return engine.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})  # type: ignore[union-attr]


@dataclass
class CountingRun:
    """A counter run under way on the private engine, and how to describe the scene when a wait fails."""

    run_id: str
    dataset_id: str
    store_id: str
    context: Callable[[], str]


def start_counting(server: ServerProcess, engine: PrivateEngine, *, n: int, at_least: int) -> CountingRun:
    """Start the server and a counter to ``n``; return once it has counted ``at_least`` steps."""

    def context() -> str:
        return f"\n{describe(engine)}\n--- server log ---\n{server.log_text()[-4000:]}\n{engine.log_tail(3000)}"

    server.start()
    run_id = start_counter(server, n=n, pause=STEP_PAUSE_SECS)
    with server.client() as client:
        wait_until(lambda: counted(client, run_id) >= at_least, 120, message="counting started")
        run = client.get(f"/actor-runs/{run_id}").json()["data"]
    return CountingRun(run_id, run["defaultDatasetId"], run["defaultKeyValueStoreId"], context)


def test_engine_restart_restarts_the_lost_run_from_its_persisted_position(server, private_engine):
    n = 40
    engine = private_engine
    counting = start_counting(server, engine, n=n, at_least=5)
    run_id, dataset_id, store_id, context = counting.run_id, counting.dataset_id, counting.store_id, counting.context
    with server.client() as client:
        items_before = [item["count"] for item in client.get(f"/datasets/{dataset_id}/items").json()]
        last_seen = counted(client, run_id)
    assert items_before and items_before == list(range(1, len(items_before) + 1)), items_before

    server.stop()  # detach: the container keeps running, its API unreachable (the SDK retries)
    items_at_stop, persisted = stored_at_stop(server, dataset_id, store_id)
    assert items_at_stop[:len(items_before)] == items_before
    assert items_at_stop == list(range(1, len(items_at_stop) + 1)), items_at_stop
    [first] = run_containers(engine, run_id)
    assert first["State"] == "running", f"detach left the container {first['State']}{context()}"

    engine.restart()  # the engine stops its containers, as a host shutdown does
    state = engine.client.api.inspect_container(first["Id"])["State"]
    assert not state["Running"] and state["ExitCode"] in (137, 143), f"{state}{context()}"
    first_container_lines = [
        line for line in engine.client.api.logs(first["Id"]).decode(errors="replace").splitlines()
        if line.startswith("count ")
    ]

    started = time.monotonic()
    server.start()  # reconciliation: the container ended with no stop intent -> the run is restarted
    api_secs = time.monotonic() - started

    def restarted_container_running():
        return [c for c in run_containers(engine, run_id) if c["Id"] != first["Id"] and c["State"] == "running"]

    wait_until(restarted_container_running, 120, message=f"the restarted container running{context()}")
    running_secs = time.monotonic() - started
    with server.client() as client:
        wait_until(lambda: "resuming from" in client.get(f"/actor-runs/{run_id}/log").text, 120,
                   message=f"the actor resuming{context()}")
        resumed_secs = time.monotonic() - started
        run = wait_until(lambda: (r := client.get(f"/actor-runs/{run_id}").json()["data"])["isTerminal"] and r,
                         180, interval=0.2, message=f"run {run_id} finishing{context()}")
        finished_secs = time.monotonic() - started
        log = client.get(f"/actor-runs/{run_id}/log").text
        items = [item["count"] for item in client.get(f"/datasets/{dataset_id}/items").json()]
        output = client.get(f"/key-value-stores/{store_id}/records/OUTPUT").json()
        numbers = [int(line.split()[1]) for line in log_lines(client, run_id)]

    resumed_at = int(log.split("resuming from ", 1)[1].split()[0])
    duplicates = sorted(count for count in set(items) if items.count(count) > 1)
    redone = len(items) - n
    # Log lines the first container printed after the server stopped that never reached the run log.
    first_logged = sorted(set(int(line.split()[1]) for line in first_container_lines))
    before_resume = numbers[:max(0, len(numbers) - (n - resumed_at))]
    lost_log_lines = [count for count in first_logged if count not in before_resume]
    setup_secs = extension_setup_secs(server.log_text())
    print(f"\nBENCH engine-restart: server start -> API {api_secs:.2f} s (extension setup incl. reconcile "
          f"{setup_secs if setup_secs is None else round(setup_secs, 3)} s), -> run RUNNING again (new container "
          f"running) {running_secs:.2f} s, -> actor resumed {resumed_secs:.2f} s, -> finished {finished_secs:.2f} s; "
          f"engine stop {engine.timings.get('stop_secs', 0):.2f} s, start {engine.timings.get('start_secs', 0):.2f} s, "
          f"image load {engine.timings.get('image_load_secs', 0):.2f} s; last seen before stop {last_seen}, "
          f"items stored at stop {len(items_at_stop)}, persisted position {persisted}, resumed from {resumed_at}, "
          f"redone steps {redone} "
          f"(duplicates {duplicates}), first container's count lines missing from the run log {lost_log_lines}")

    assert run["status"] == "SUCCEEDED", f"{run}\n{log[-3000:]}{context()}"
    assert run["stats"]["restartCount"] == 1, run["stats"]
    assert lost_log_lines == [], "lines the lost container printed must be stored before it is removed"
    assert resumed_at >= 3, f"resumed from {resumed_at}, not from its persisted position\n{log}"
    # It resumed from exactly what it had persisted when the server stopped, never beyond what it counted.
    assert persisted is None or resumed_at == persisted, (resumed_at, persisted)
    assert resumed_at <= max(first_logged + [last_seen]), (resumed_at, first_logged)
    assert output == {"final": n}
    # Every item pushed before the restart is there, unchanged and in order; all of 1..n exist.
    assert items[:len(items_at_stop)] == items_at_stop
    assert set(items) == set(range(1, n + 1)), items
    assert set(range(1, last_seen + 1)) <= set(items)
    # Work redone: only the steps after the persisted position, at most one persist interval of them.
    assert 0 <= redone <= MAX_REDONE_STEPS, f"{redone} steps redone: {items}"
    assert redone == len(items_at_stop) - resumed_at, (redone, len(items_at_stop), resumed_at)
    assert duplicates == list(range(resumed_at + 1, resumed_at + 1 + redone)), (duplicates, resumed_at, items)
    # After the resume the log counts on from the persisted position to the end.
    after = numbers[len(numbers) - (n - resumed_at):]
    assert after == list(range(resumed_at + 1, n + 1)), numbers
    # The old container is gone; the restarted one was removed once its log was stored.
    assert run_containers(engine, run_id) == [], run_containers(engine, run_id)


def test_engine_restart_while_the_server_runs_restarts_the_run_and_it_succeeds(server, private_engine):
    """dockerd restarts with the server up: the watcher sees its container stopped by the engine, leaves
    the run alone, and periodic reconciliation restarts it (same id and storages) once the engine is
    back; the actor resumes from its persisted position. The API answers all along."""
    n = 24
    engine = private_engine
    counting = start_counting(server, engine, n=n, at_least=4)
    run_id, dataset_id, store_id, context = counting.run_id, counting.dataset_id, counting.store_id, counting.context

    probes: list[tuple[float, int]] = []
    done = threading.Event()

    def probe() -> None:  # the API while the engine is away: it answers, at once
        with server.client() as prober:
            while not done.is_set():
                started = time.monotonic()
                status = prober.get(f"/actor-runs/{run_id}").status_code
                probes.append((time.monotonic() - started, status))
                done.wait(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        engine.restart()  # the engine stops its containers (143/137) and comes back without them running
        with server.client() as client:
            run = wait_until(lambda: (r := client.get(f"/actor-runs/{run_id}").json()["data"])["isTerminal"] and r,
                             180, interval=0.2, message=f"run {run_id} finishing{context()}")
            log = client.get(f"/actor-runs/{run_id}/log").text
            items = [item["count"] for item in client.get(f"/datasets/{dataset_id}/items").json()]
            output = client.get(f"/key-value-stores/{store_id}/records/OUTPUT").json()
    finally:
        done.set()
        prober.join(timeout=30)
    slowest = max(seconds for seconds, _ in probes)
    print(f"\nBENCH engine-restart-live: {len(probes)} API probes during the restart, slowest {slowest:.3f} s; "
          f"items {len(items)} for {n} steps (redone {len(items) - n}); engine stop "
          f"{engine.timings.get('stop_secs', 0):.2f} s, start {engine.timings.get('start_secs', 0):.2f} s")
    assert run["status"] == "SUCCEEDED", f"{run}\n{log[-3000:]}{context()}"
    assert run["stats"]["restartCount"] == 1, run["stats"]
    assert "resuming from" in log, log[-3000:]
    assert output == {"final": n}
    assert set(items) == set(range(1, n + 1)), items
    assert 0 <= len(items) - n <= MAX_REDONE_STEPS, f"{len(items) - n} steps redone: {items}"
    assert all(status == 200 for _, status in probes), probes
    assert slowest < 1.0, probes
    assert run_containers(engine, run_id) == [], run_containers(engine, run_id)
