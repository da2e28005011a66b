"""Where the start-to-SUCCEEDED time of a trivial run goes: a timeline of one run, phase by phase.

    .venv/bin/python benchmarks/profile_start.py [--runs 10] [--memory 1024]

Runs the platform in this process (no Jupyter server, no HTTP for the user side) with every engine
call timed, and prints the median of each phase next to a raw docker-py create+start+wait of the
same image. The benchmark table says whether the overhead target is met; this says why.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).parent))
from run import TRIVIAL  # the benchmark's own trivial actor

from jupyter_actors.platform.core import NETWORK_NAME
from jupyter_actors.platform.limits import limits_for


def timed_backend(backend, calls: dict[str, list[float]], states: list) -> None:
    """Wrap the backend's methods so each call's duration is recorded under its name (and the last
    inspected state kept, for the engine's own start and finish times)."""
    for name in ("create", "start", "inspect", "wait", "remove", "logs"):
        original = getattr(backend, name)

        @functools.wraps(original)
        def wrapper(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                result = _original(*args, **kwargs)
                if _name == "inspect" and result is not None:
                    states.append(result)
                return result
            finally:
                calls[_name].append(time.perf_counter() - started)

        setattr(backend, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--memory", type=int, default=1024)
    args = parser.parse_args(argv)
    from jupyter_actors.cli import local_platform

    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="ja-profile-") as tmp, \
            local_platform(argparse.Namespace(data_dir=tmp)) as platform:
        from jupyter_actors.platform.sources import inline_actor

        platform.create_actor(inline_actor("trivial", TRIVIAL))
        image = platform.build("trivial")["image"]
        calls: dict[str, list[float]] = defaultdict(list)
        states: list = []
        timed_backend(platform.backend, calls, states)
        phases: dict[str, list[float]] = defaultdict(list)
        marks: dict[str, float] = {}
        seen = threading.Condition()

        def listener(run: dict) -> None:
            with seen:
                marks.setdefault(run["status"], time.perf_counter())
                seen.notify_all()

        platform.subscribe(listener)
        for rep in range(args.runs + 1):
            calls.clear()
            marks.clear()
            states.clear()
            wall_started = time.time()
            started = time.perf_counter()
            run = platform.start_run("trivial", memory_mb=args.memory, timeout_secs=300)
            recorded = time.perf_counter()
            final = platform.wait_run(run["id"], timeout=120)
            assert final["status"] == "SUCCEEDED", platform.run_log(run["id"])
            done = marks["SUCCEEDED"]
            limits = limits_for(args.memory)
            raw_wall_started = time.time()
            raw_started = time.perf_counter()
            container = client.containers.create(image, mem_limit=limits.memory_bytes, nano_cpus=limits.nano_cpus,
                                                 memswap_limit=limits.memory_bytes, init=True, network=NETWORK_NAME)
            container.start()
            container.wait()
            raw = time.perf_counter() - raw_started
            raw_wall_done = time.time()
            state = client.api.inspect_container(container.id)["State"]
            container.remove(force=True)
            raw_life = _engine_seconds(state["FinishedAt"]) - _engine_seconds(state["StartedAt"])
            ours_state = states[-1]
            ours_life = (ours_state.finished_at - ours_state.started_at).total_seconds()
            put = float(platform.run_log(run["id"]).decode().split("PUT ", 1)[1].split()[0])
            if rep == 0:
                continue
            phases["API call -> container started (engine StartedAt)"].append(
                ours_state.started_at.timestamp() - wall_started)
            phases["container finished (engine FinishedAt) -> SUCCEEDED notified"].append(
                done - started - (ours_state.finished_at.timestamp() - wall_started))
            phases["raw: create call -> container started (engine StartedAt)"].append(
                _engine_seconds(state["StartedAt"]) - raw_wall_started)
            phases["raw: container finished (engine FinishedAt) -> wait returned"].append(
                raw_wall_done - _engine_seconds(state["FinishedAt"]))
            phases["container life, ours (StartedAt..FinishedAt)"].append(ours_life)
            phases["container life, raw"].append(raw_life)
            phases["  the actor's OUTPUT PUT inside ours"].append(put)
            phases["start_run() returns (validate, storages, record READY)"].append(recorded - started)
            phases["-> RUNNING notified"].append(marks["RUNNING"] - started)
            phases["-> SUCCEEDED notified (total)"].append(done - started)
            phases["raw create+start+wait"].append(raw)
            phases["overhead (total - raw)"].append(done - started - raw)
            for name, values in calls.items():
                phases[f"engine {name} x{len(values)}"].append(sum(values))
        for image in client.api.images(filters={"label": f"jupyter-actors.instance={platform.instance_id}"}):
            client.api.remove_image(image["Id"], force=True)  # what this profile built
    print(f"{args.runs} runs at {args.memory} MB; medians in ms")
    for name, values in phases.items():
        print(f"  {name:58} {statistics.median(values) * 1000:8.1f}   "
              f"[{min(values) * 1000:.1f}-{max(values) * 1000:.1f}]")
    return 0


def _engine_seconds(text: str) -> float:
    from jupyter_actors.platform.backends.docker import parse_timestamp_ns

    return parse_timestamp_ns(text) / 1e9


if __name__ == "__main__":
    sys.exit(main())
