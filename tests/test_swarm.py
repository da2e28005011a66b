"""Runs on a real single-node Docker Swarm: the same platform, with each run a replicated-job service.

The ``swarm`` fixture initialises a swarm on loopback when the engine has none (and leaves it at the
end), so these tests need nothing but the test engine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import httpx
import pytest

from jupyter_actors.platform.backends.swarm import SwarmBackend
from jupyter_actors.platform.errors import EngineUnavailable

from .conftest import TEST_MEMORY_MB, extension_config, define_actor, wait_until
from .test_runs import LIMITS_PRINTER, SLEEPER, _log_values

COUNTER = """
import time
for i in range(1, 9):
    print(f"step {i}", flush=True)
    time.sleep(0.4)
"""

SDK_OUTPUT = """
import asyncio
from apify import Actor

async def main():
    async with Actor:
        data = await Actor.get_input()
        await Actor.push_data([{"n": n} for n in range(data["n"])])
        await Actor.set_value("OUTPUT", {"sum": sum(range(data["n"]))})
        print("stored", flush=True)

asyncio.run(main())
"""


@pytest.fixture
def swarm_platform(swarm, platform_factory):
    return lambda **config: platform_factory(backend="swarm", **config)


def _service(docker_client, run):
    return docker_client.api.inspect_service(run["container_id"])


def test_not_a_manager_is_refused_with_what_to_do(docker_client, monkeypatch):
    class Inactive:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return getattr(self._real, name)

        def info(self):
            return {**self._real.info(), "Swarm": {"LocalNodeState": "inactive"}}

    client = docker_client
    monkeypatch.setattr(client, "api", Inactive(client.api))
    with pytest.raises(EngineUnavailable, match="docker swarm init"):
        SwarmBackend(client)


def test_run_succeeds_as_a_job_service_with_the_runs_limits(swarm_platform, docker_client):
    platform = swarm_platform()
    define_actor(platform, "limits", LIMITS_PRINTER)
    run = platform.start_run("limits", memory_mb=512, timeout_secs=200)
    service = wait_until(lambda: platform.get_run(run["id"])["container_id"], 60, message="service created")
    spec = docker_client.api.inspect_service(service)["Spec"]
    assert "ReplicatedJob" in spec["Mode"]
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 512 * 2**20
    assert spec["TaskTemplate"]["Resources"]["Reservations"]["MemoryBytes"] == 512 * 2**20
    assert spec["TaskTemplate"]["ContainerSpec"]["Init"] is True
    assert spec["Labels"]["jupyter-actors.run-id"] == run["id"]
    run = platform.wait_run(run["id"], timeout=200)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"])
    values = _log_values(platform, run["id"])
    assert int(values["MEM"]) == 512 * 1024 * 1024
    quota, period = values["CPU"].split()
    assert int(quota) / int(period) == pytest.approx(512 / 4096)
    assert values["PIDS"] == str(platform.config.pids_limit)
    uid = values["UID"].split()
    assert uid[0] == "1000" and "CAPEFF 0000000000000000" in values["UID"]
    assert values["DOCKER_SOCKET"] == "False"
    # The service and its job container are removed once the log is stored.
    wait_until(lambda: not docker_client.api.services(filters={"id": service}), 30, message="service removed")
    # The platform removes the job containers before the service, so none is left once the service is gone.
    assert not docker_client.api.containers(all=True, filters={"label": f"com.docker.swarm.service.id={service}"})


def test_the_sdk_reaches_its_storages_and_logs_arrive_in_order(swarm_platform):
    platform = swarm_platform()
    define_actor(platform, "sdk-out", SDK_OUTPUT)
    define_actor(platform, "counter", COUNTER)
    sdk_run = platform.start_run("sdk-out", memory_mb=TEST_MEMORY_MB, timeout_secs=300, input={"n": 100})
    counter = platform.wait_run(platform.start_run("counter", memory_mb=TEST_MEMORY_MB, timeout_secs=120)["id"], 120)
    assert counter["status"] == "SUCCEEDED" and counter["exit_code"] == 0
    lines = [line.split(" ", 1)[1] for line in platform.run_log(counter["id"]).decode().splitlines()]
    assert lines == [f"step {i}" for i in range(1, 9)]
    sdk_run = platform.wait_run(sdk_run["id"], timeout=300)
    assert sdk_run["status"] == "SUCCEEDED", platform.run_log(sdk_run["id"])
    value, _ = platform.storages.get_record(sdk_run["default_key_value_store_id"], "OUTPUT")
    assert json.loads(value) == {"sum": 4950}
    assert platform.storages.list_items(sdk_run["default_dataset_id"]).total == 100


def test_failure_timeout_and_abort(swarm_platform, docker_client):
    platform = swarm_platform()
    define_actor(platform, "fails", "import sys\nprint('bad', flush=True)\nsys.exit(3)\n")
    define_actor(platform, "sleeper", SLEEPER)
    failed = platform.start_run("fails", memory_mb=TEST_MEMORY_MB, timeout_secs=120)
    timed = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=3)
    aborted = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=300)
    failed = platform.wait_run(failed["id"], timeout=120)
    assert failed["status"] == "FAILED" and failed["exit_code"] == 3 and "code 3" in failed["status_message"]
    timed = platform.wait_run(timed["id"], timeout=120)
    assert timed["status"] == "TIMED-OUT"
    wait_until(lambda: b"started" in platform.run_log(aborted["id"]), 120, message="sleeper started")
    platform.abort_run(aborted["id"])
    aborted = platform.wait_run(aborted["id"], timeout=60)
    assert aborted["status"] == "ABORTED"
    for run in (failed, timed, aborted):
        wait_until(lambda run=run: not docker_client.api.services(filters={"id": run["container_id"]}), 30,
                   message="service removed")


def test_server_restart_mid_run_adopts_the_service(swarm_platform, tmp_path):
    data_dir = tmp_path / "shared"
    first = swarm_platform(data_dir=data_dir)
    define_actor(first, "counter", COUNTER)
    run = first.start_run("counter", memory_mb=TEST_MEMORY_MB, timeout_secs=120)
    wait_until(lambda: b"step 2" in first.run_log(run["id"]), 120, message="counting")
    first.close()  # the server goes away; the service keeps running on the swarm

    second = swarm_platform(data_dir=data_dir)
    report = second.reconcile()
    assert report.adopted + report.finished == [run["id"]] and report.restarted == []
    final = second.wait_run(run["id"], timeout=120)
    assert final["status"] == "SUCCEEDED" and final["restart_count"] == 0
    lines = [line.split(" ", 1)[1] for line in second.run_log(run["id"]).decode().splitlines()]
    assert lines == [f"step {i}" for i in range(1, 9)]  # once each, across the two watchers


def test_a_lost_task_is_restarted_with_the_same_run(swarm_platform, docker_client, tmp_path):
    data_dir = tmp_path / "lost"
    first = swarm_platform(data_dir=data_dir)
    define_actor(first, "sleeper", SLEEPER)
    run = first.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=300, input={})
    wait_until(lambda: b"started" in first.run_log(run["id"]), 120, message="sleeper started")
    service = first.get_run(run["id"])["container_id"]
    first.close()
    # The task's node loses it while no server watches (what an engine or node going down does).
    task = docker_client.api.tasks(filters={"service": service})[0]
    docker_client.api.kill(task["Status"]["ContainerStatus"]["ContainerID"])
    wait_until(lambda: docker_client.api.tasks(filters={"service": service})[0]["Status"]["State"] == "failed", 60,
               message="the task failed")

    second = swarm_platform(data_dir=data_dir)
    report = second.reconcile()
    assert report.restarted == [run["id"]]
    wait_until(lambda: second.run_log(run["id"]).count(b"started") == 2, 120, message="started again")
    restarted = second.get_run(run["id"])
    assert restarted["status"] == "RUNNING" and restarted["restart_count"] == 1
    assert restarted["container_id"] != service
    assert not docker_client.api.services(filters={"id": service})  # the lost one is gone
    second.abort_run(run["id"])
    assert second.wait_run(run["id"], 60)["status"] == "ABORTED"


def test_the_engine_reports_a_lost_task_and_the_watcher_restarts_it(swarm_platform, docker_client, monkeypatch):
    """A task the swarm orphans (its node went away) is lost, not failed: the live watcher restarts it."""
    platform = swarm_platform()
    define_actor(platform, "counter", COUNTER)
    backend = platform.backend
    real_inspect = backend.inspect
    orphaned: set[str] = set()

    def inspect(service_id):
        state = real_inspect(service_id)
        if state is not None and service_id in orphaned and not state.running:
            state.lost = "its swarm node became unavailable"  # what inspect reports for an orphaned task
        return state

    monkeypatch.setattr(backend, "inspect", inspect)
    run = platform.start_run("counter", memory_mb=TEST_MEMORY_MB, timeout_secs=120)
    first = wait_until(lambda: platform.get_run(run["id"])["container_id"], 60, message="service")
    orphaned.add(first)
    final = platform.wait_run(run["id"], timeout=180)
    assert final["status"] == "SUCCEEDED" and final["restart_count"] == 1 and final["container_id"] != first
    assert platform.run_log(run["id"]).count(b"step 8") == 2  # the log continues across the restart


@pytest.fixture
def local_registry(tmp_path):
    """Debian's docker-registry on a free loopback port (engines trust 127.0.0.1 registries over HTTP)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v2/"), 30, message="registry up")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_builds_are_pushed_to_the_registry_and_runs_use_the_pushed_image(swarm_platform, local_registry,
                                                                         docker_client):
    platform = swarm_platform(registry=local_registry)
    build = define_actor(platform, "pushed", "print('from the registry', flush=True)\n")
    assert build["image"].startswith(f"{local_registry}/jupyter-actors-{platform.instance_id}/pushed:")
    catalog = httpx.get(f"http://{local_registry}/v2/_catalog").json()
    assert f"jupyter-actors-{platform.instance_id}/pushed" in catalog["repositories"]
    assert "Pushed" in platform.build_log(build["id"]).decode()
    run = platform.wait_run(platform.start_run("pushed", memory_mb=TEST_MEMORY_MB, timeout_secs=120)["id"], 120)
    assert run["status"] == "SUCCEEDED" and b"from the registry" in platform.run_log(run["id"])


def test_a_push_that_fails_fails_the_build_with_the_reason(swarm_platform):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    platform = swarm_platform(registry=f"127.0.0.1:{closed_port}")
    from jupyter_actors.platform.sources import inline_actor

    platform.create_actor(inline_actor("unpushed", "print(1)\n"))
    build = platform.build("unpushed")
    assert build["status"] == "FAILED"
    assert f"could not be pushed to 127.0.0.1:{closed_port}" in build["status_message"]


def test_web_servers_are_refused_unless_published_and_then_proxied(swarm_platform):
    platform = swarm_platform()
    assert "swarm_publish_web_servers" in platform.web_unavailable_reason()
    published = swarm_platform(swarm_publish_web_servers=True)
    assert published.web_unavailable_reason() is None
    define_actor(published, "site", "import http.server, os\n"
                 "class H(http.server.BaseHTTPRequestHandler):\n"
                 "    def do_GET(self):\n"
                 "        self.send_response(200); self.end_headers(); self.wfile.write(b'hello from swarm')\n"
                 "print('listening', flush=True)\n"
                 "http.server.HTTPServer(('0.0.0.0', int(os.environ['APIFY_CONTAINER_PORT'])), H).serve_forever()\n")
    run = published.start_run("site", memory_mb=TEST_MEMORY_MB, timeout_secs=300)
    wait_until(lambda: b"listening" in published.run_log(run["id"]), 120, message="listening")
    host, port = wait_until(lambda: published.web_address(run["id"]), 60, message="published port")
    assert httpx.get(f"http://{host}:{port}/").text == "hello from swarm"
    published.abort_run(run["id"])
    assert published.wait_run(run["id"], 60)["status"] == "ABORTED"


# -- chosen by configuration: the server extension's traitlet and the CLI option ----------------------

@pytest.fixture
def jp_server_config(tmp_path, base_image, swarm):
    return extension_config(tmp_path / "server-data", backend="swarm")


async def test_the_server_extension_sends_runs_to_the_swarm_when_configured(api_url, api_token, actors_app,
                                                                             docker_client):
    from .conftest import off

    platform = actors_app.platform
    assert isinstance(platform.backend, SwarmBackend)
    await off(define_actor, platform, "hello", SLEEPER)
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(timeout=60) as client:
        started = await client.post(f"{api_url}/v2/acts/hello/runs", params={"memory": TEST_MEMORY_MB}, headers=headers)
        run = started.json()["data"]
        await off(wait_until, lambda: b"started" in platform.run_log(run["id"]), 120, message="running on the swarm")
        service = platform.get_run(run["id"])["container_id"]
        assert docker_client.api.inspect_service(service)["Spec"]["Labels"]["jupyter-actors.run-id"] == run["id"]
        web_id = platform.get_run(run["id"])["web_id"]
        page = await client.get(api_url.removesuffix("actors/api") + f"actors/web/{web_id}/", headers=headers)
        assert page.status_code == 501 and "swarm_publish_web_servers" in page.text
        aborted = await client.post(f"{api_url}/v2/actor-runs/{run['id']}/abort", headers=headers)
        assert aborted.status_code == 200
    final = await off(platform.wait_run, run["id"], 60)
    assert final["status"] == "ABORTED"


def test_the_cli_passes_backend_and_registry_on():
    from jupyter_actors.cli import _config, build_parser

    args = build_parser().parse_args(["--backend", "swarm", "--registry", "registry.example:5000/team", "runs"])
    config = _config(args)
    assert config.backend == "swarm" and config.registry == "registry.example:5000/team"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--backend", "nomad", "runs"])
