"""Engine faults while the platform runs: a watcher that loses the engine never strands or kills a run.

The faults are injected at the backend (the shared engine keeps running): a transient 5xx from the
engine's log endpoint, and the engine unreachable for a while with the watcher's followed log cut
(what a dockerd restart does to it). The run's container keeps running meanwhile; the run must be
adopted again and SUCCEED with every line once. A real dockerd restart with the server up is in
``tests/test_engine_restart.py``.
"""

from __future__ import annotations

import threading
import time

import docker
import pytest
import requests

from jupyter_actors.platform.errors import EngineUnavailable

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

TICKER = """
import time
for i in range(1, 21):
    print(f"tick {i}", flush=True)
    time.sleep(0.3)
"""
TICKS = [f"tick {i}" for i in range(1, 21)]


class FlakyEngine:
    """Wraps a backend's engine calls: ``down`` makes them fail as an unreachable engine does, and
    ``fail_next_follow`` makes the next followed log request fail with a 500."""

    CALLS = ("logs", "inspect", "wait", "list", "kill", "stop", "remove", "create", "start", "ensure_network")

    def __init__(self, monkeypatch, backend) -> None:
        self.down = threading.Event()
        self.fail_next_follow = threading.Event()
        self.failures = 0
        for name in self.CALLS:
            monkeypatch.setattr(backend, name, self._wrap(name, getattr(backend, name)))
        monkeypatch.setattr(backend.api, "ping", self._wrap("ping", backend.api.ping))  # the engine's own client

    def _wrap(self, name, call):
        def wrapped(*args, **kwargs):
            if self.down.is_set():
                self.failures += 1
                raise requests.exceptions.ConnectionError(f"engine unreachable ({name})")
            if name == "logs" and kwargs.get("follow") and self.fail_next_follow.is_set():
                self.fail_next_follow.clear()
                self.failures += 1
                raise docker.errors.APIError("500 Server Error: Internal Server Error (injected)")
            return call(*args, **kwargs)
        return wrapped


def run_lines(platform, run_id: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in platform.run_log(run_id).decode().splitlines() if " tick " in line]


@pytest.fixture
def ticking(platform_factory):
    platform = platform_factory(reconcile_interval_secs=0.5)
    define_actor(platform, "ticker", TICKER)
    return platform


def start_ticking(platform):
    run = platform.start_run("ticker", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: len(run_lines(platform, run["id"])) >= 3, 60, message="ticking started")
    return run["id"]


def cut_followed_log(platform, run_id: str) -> None:
    """Close the watcher's followed log stream, as a dockerd restart or a dropped connection does."""
    watcher = platform.runs.watchers[run_id]
    stream = wait_until(lambda: watcher._stream, 10, message="the watcher following the log")
    stream.close()


@pytest.mark.parametrize("fault", ["log-endpoint-500", "engine-unreachable"])
def test_engine_fault_while_following_a_run_keeps_the_run(ticking, docker_client, monkeypatch, fault):
    platform = ticking
    flaky = FlakyEngine(monkeypatch, platform.backend)
    try:
        run_id = start_ticking(platform)
        container_id = platform.get_run(run_id)["container_id"]
        if fault == "log-endpoint-500":
            flaky.fail_next_follow.set()
            cut_followed_log(platform, run_id)
        else:
            flaky.down.set()
            cut_followed_log(platform, run_id)
            wait_until(lambda: not platform.runs.is_watched(run_id), 10, message="the watcher losing the engine")
            # While the engine is away: the run is still RUNNING, its container untouched, and the
            # platform answers at once (nothing waits for the engine).
            started = time.monotonic()
            run = platform.get_run(run_id)
            assert run["status"] == "RUNNING", run
            assert time.monotonic() - started < 0.5
            assert docker_client.api.inspect_container(container_id)["State"]["Running"]
            wait_until(lambda: flaky.failures >= 3, 20, message="reconciliation retrying the engine")
            # A start meanwhile is refused with 503, saying why, and nothing of it is stored.
            runs_before = len(platform.list_runs())
            with pytest.raises(EngineUnavailable) as refused:
                platform.start_run("ticker", memory_mb=TEST_MEMORY_MB)
            assert refused.value.status == 503 and "does not answer" in refused.value.message
            assert len(platform.list_runs()) == runs_before
            flaky.down.clear()
        run = platform.wait_run(run_id, timeout=90)
        assert run["status"] == "SUCCEEDED", (run, platform.run_log(run_id).decode()[-2000:])
        assert run_lines(platform, run_id) == TICKS
        assert run["restart_count"] == 0  # the same container, adopted again
        assert flaky.failures >= 1
    finally:
        flaky.down.clear()


def test_a_container_the_engine_stopped_is_restarted_as_lost_not_failed(ticking, docker_client):
    """`docker stop` from outside (as the engine does to every container when it restarts) is not the
    actor's own exit 143/137: the run is restarted with the same storages and finishes."""
    platform = ticking
    run_id = start_ticking(platform)
    first = platform.get_run(run_id)["container_id"]
    docker_client.api.stop(first, timeout=1)
    run = platform.wait_run(run_id, timeout=90)
    assert run["status"] == "SUCCEEDED", (run, platform.run_log(run_id).decode()[-2000:])
    assert run["restart_count"] == 1 and run["container_id"] != first, run
    assert "Restarted" in run["status_message"] or run["status_message"] == "The run finished successfully"
    assert run_lines(platform, run_id)[-20:] == TICKS  # the restarted container ticked from 1 to the end


def test_a_container_gone_while_the_engine_was_unreachable_is_restarted(ticking, docker_client, monkeypatch):
    """The engine comes back without the run's container (removed meanwhile): the run is restarted as lost,
    with the same id and storages, and finishes; it is never left RUNNING."""
    platform = ticking
    flaky = FlakyEngine(monkeypatch, platform.backend)
    try:
        run_id = start_ticking(platform)
        first = platform.get_run(run_id)["container_id"]
        flaky.down.set()
        cut_followed_log(platform, run_id)
        wait_until(lambda: not platform.runs.is_watched(run_id), 10, message="the watcher losing the engine")
        docker_client.api.remove_container(first, force=True)
        wait_until(lambda: flaky.failures >= 3, 20, message="reconciliation retrying the engine")
        flaky.down.clear()
        run = platform.wait_run(run_id, timeout=90)
    finally:
        flaky.down.clear()
    assert run["status"] == "SUCCEEDED", (run, platform.run_log(run_id).decode()[-2000:])
    assert run["restart_count"] == 1 and run["container_id"] != first, run
    assert run_lines(platform, run_id)[-20:] == TICKS
