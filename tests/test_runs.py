"""Runs on a real Docker engine: lifecycle, limits, environment, logs, refusals."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time

import pytest

from jupyter_actors.platform.errors import Conflict, InvalidInput, MemoryLimitExceeded, NotFound
from jupyter_actors.platform.proxy import run_proxy_password

from .conftest import TEST_MEMORY_MB, define_actor, wait_until

PRINT_ENV = """
import json, os
print("ENV " + json.dumps({k: v for k, v in os.environ.items() if k.startswith(("APIFY_", "ACTOR_"))}))
"""

SLEEPER = """
import sys, time
print("started", flush=True)
time.sleep(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
"""


def statuses_of(platform, run_id_holder):
    """Collect every status a run passes through, from the platform's change notifications."""
    seen: list[str] = []
    lock = threading.Lock()

    def listener(run):
        if run_id_holder and run["id"] != run_id_holder[0]:
            return
        with lock:
            if not seen or seen[-1] != run["status"]:
                seen.append(run["status"])

    platform.subscribe(listener)
    return seen


def test_exit_zero_succeeds_and_logs_every_line_in_order(platform):
    define_actor(platform, "printer", "for i in range(3000):\n    print(f'line {i}')\n")
    run = platform.start_run("printer", memory_mb=TEST_MEMORY_MB, timeout_secs=120)
    assert run["status"] == "READY"
    run = platform.wait_run(run["id"], timeout=120)
    assert run["status"] == "SUCCEEDED" and run["exit_code"] == 0, run
    lines = platform.run_log(run["id"]).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [f"line {i}" for i in range(3000)]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line) for line in lines)
    assert run["finished_at"] >= run["started_at"]
    wait_until(lambda: platform.backend.inspect(run["container_id"]) is None, 10, message="container removed")


def test_a_finished_run_costs_one_inspect_and_no_wait(platform, monkeypatch):
    """The inspect that finds the container stopped is its final state: no wait and no second inspect (the
    per-run overhead); one drain of the log stays (a followed stream can miss a last unterminated line)."""
    define_actor(platform, "quick-printer", "for i in range(2000):\n    print(f'line {i}')\nraise SystemExit(4)\n")
    calls: list[tuple[str, str]] = []
    for name in ("inspect", "wait", "logs"):
        original = getattr(platform.backend, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            if threading.current_thread().name.startswith("run-"):  # the run's watcher
                calls.append((_name, "follow" if kwargs.get("follow") else ""))
            return _original(*args, **kwargs)

        monkeypatch.setattr(platform.backend, name, counted)
    run = platform.wait_run(platform.start_run("quick-printer", memory_mb=TEST_MEMORY_MB)["id"], timeout=120)
    assert run["status"] == "FAILED" and run["exit_code"] == 4, run
    lines = platform.run_log(run["id"]).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [f"line {i}" for i in range(2000)]
    assert calls[calls.index(("logs", "follow")):] == [("logs", "follow"), ("inspect", ""), ("logs", "")], calls


def test_nonzero_exit_fails_with_its_code(platform):
    define_actor(platform, "failer", "import sys\nprint('bad')\nsys.exit(3)\n")
    run = platform.wait_run(platform.start_run("failer", memory_mb=TEST_MEMORY_MB)["id"], timeout=120)
    assert run["status"] == "FAILED" and run["exit_code"] == 3
    assert "code 3" in run["status_message"]


def test_environment_variables_inside_the_container(platform):
    build = define_actor(platform, "env-printer", PRINT_ENV)
    started = platform.start_run("env-printer", memory_mb=TEST_MEMORY_MB, timeout_secs=100, input={"a": 1})
    run = platform.wait_run(started["id"], timeout=120)
    token = started["token"]  # handed back to the starter only: the registry keeps its sha256
    assert "token" not in run and run["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    path = platform.registry.path
    assert all(token.encode() not in f.read_bytes() for f in path.parent.glob(path.name + "*"))  # with the WAL
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"])
    line = next(text for text in platform.run_log(run["id"]).decode().splitlines() if " ENV " in text)
    env = json.loads(line.split(" ENV ", 1)[1])
    actor = platform.get_actor("env-printer")
    expected = {
        "APIFY_ACTOR_ID": actor["id"], "ACTOR_ID": actor["id"],
        "APIFY_ACTOR_RUN_ID": run["id"], "ACTOR_RUN_ID": run["id"],
        "APIFY_ACTOR_TASK_ID": "",
        "APIFY_DEFAULT_DATASET_ID": run["default_dataset_id"],
        "APIFY_DEFAULT_KEY_VALUE_STORE_ID": run["default_key_value_store_id"],
        "ACTOR_DEFAULT_KEY_VALUE_STORE_ID": run["default_key_value_store_id"],
        "APIFY_DEFAULT_REQUEST_QUEUE_ID": run["default_request_queue_id"],
        "APIFY_INPUT_KEY": "INPUT", "ACTOR_INPUT_KEY": "INPUT",
        "APIFY_HEADLESS": "1", "APIFY_IS_AT_HOME": "1",
        "APIFY_MEMORY_MBYTES": str(TEST_MEMORY_MB), "ACTOR_MEMORY_MBYTES": str(TEST_MEMORY_MB),
        "APIFY_PROXY_PASSWORD": run_proxy_password(run),
        "APIFY_PROXY_HOSTNAME": platform.proxy_endpoint.hostname,
        "APIFY_PROXY_PORT": str(platform.proxy_endpoint.port),
        "APIFY_PROXY_STATUS_URL": platform.proxy_endpoint.status_url,
        "APIFY_TOKEN": token, "APIFY_USER_ID": "local",
        "APIFY_CONTAINER_PORT": "4321", "ACTOR_WEB_SERVER_PORT": "4321",
        "ACTOR_BUILD_NUMBER": build["build_number"],
        "APIFY_API_BASE_URL": platform.actor_api_url,
    }
    for name, value in expected.items():
        assert env.get(name) == value, name
    date = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
    assert re.match(date, env["APIFY_STARTED_AT"]) and re.match(date, env["APIFY_TIMEOUT_AT"])
    assert env["APIFY_STARTED_AT"] == env["ACTOR_STARTED_AT"] == run["started_at"]
    events = env["APIFY_ACTOR_EVENTS_WS_URL"]
    assert events == env["ACTOR_EVENTS_WEBSOCKET_URL"]
    assert events.startswith("ws://") and f"/v2/actor-runs/{run['id']}/events?token={token}" in events
    assert env["APIFY_PERSIST_STATE_INTERVAL_MILLIS"] == str(int(platform.config.persist_state_interval_secs * 1000))


LIMITS_PRINTER = r"""
import os
def read(*paths):
    for path in paths:
        if os.path.exists(path):
            return open(path).read().strip()
print("MEM", read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"))
print("SWAP", read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"))
quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
print("CPU", read("/sys/fs/cgroup/cpu.max") or f"{quota} {period}")
print("PIDS", read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("UID", os.getuid(), "CAPEFF", status["CapEff"].strip(), "NONEWPRIVS", status["NoNewPrivs"].strip())
print("DOCKER_SOCKET", os.path.exists("/var/run/docker.sock"))
"""


def _log_values(platform, run_id):
    values = {}
    for line in platform.run_log(run_id).decode().splitlines():
        text = line.split(" ", 1)[1]
        key, _, rest = text.partition(" ")
        values[key] = rest
    return values


def test_limits_and_privileges_visible_inside_the_container(platform):
    define_actor(platform, "limits", LIMITS_PRINTER)
    run = platform.wait_run(platform.start_run("limits", memory_mb=512, timeout_secs=200)["id"], timeout=200)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"])
    values = _log_values(platform, run["id"])
    assert int(values["MEM"]) == 512 * 1024 * 1024
    assert values["SWAP"] in (str(512 * 1024 * 1024), "0")  # no swap beyond the memory limit
    quota, period = values["CPU"].split()
    assert int(quota) / int(period) == pytest.approx(512 / 4096)
    assert run["cpu_cores"] == pytest.approx(0.125) and run["disk_mb"] == 1024
    assert values["PIDS"] == str(platform.config.pids_limit)
    assert values["UID"].split()[0] != "0"
    assert "CAPEFF 0000000000000000" in values["UID"] and "NONEWPRIVS 1" in values["UID"]
    assert values["DOCKER_SOCKET"] == "False"


def test_cpu_shares_mode_sets_a_weight_not_a_quota(platform_factory):
    platform = platform_factory(cpu_mode="shares")
    define_actor(platform, "limits", LIMITS_PRINTER)
    run = platform.start_run("limits", memory_mb=1024, timeout_secs=200)
    run = platform.wait_run(run["id"], timeout=200)
    quota = _log_values(platform, run["id"])["CPU"].split()[0]
    assert quota in ("-1", "max")
    assert run["cpu_mode"] == "shares"


def test_timeout_goes_through_timing_out_to_timed_out(platform):
    define_actor(platform, "sleeper", SLEEPER)
    holder: list[str] = []
    seen = statuses_of(platform, holder)
    run = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=3)
    holder.append(run["id"])
    run = platform.wait_run(run["id"], timeout=60)
    assert run["status"] == "TIMED-OUT"
    assert seen == ["READY", "RUNNING", "TIMING-OUT", "TIMED-OUT"]
    assert "timed out" in run["status_message"]


def test_abort_running_and_refused_transitions(platform):
    define_actor(platform, "sleeper", SLEEPER)
    run = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=0)
    assert run["timeout_at"] is None
    wait_until(lambda: b"started" in platform.run_log(run["id"]), 60, message="actor printed")
    aborting = platform.abort_run(run["id"], gracefully=True)
    assert aborting["status"] == "ABORTING"
    with pytest.raises(Conflict):  # already aborting
        platform.abort_run(run["id"])
    run = platform.wait_run(run["id"], timeout=30)
    assert run["status"] == "ABORTED"
    with pytest.raises(Conflict) as info:
        platform.abort_run(run["id"])
    assert info.value.status == 409


def test_oom_kill_fails_with_a_memory_message(platform):
    define_actor(platform, "hog", "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))\n")
    run = platform.wait_run(platform.start_run("hog", memory_mb=256, timeout_secs=120)["id"], timeout=120)
    assert run["status"] == "FAILED"
    assert "memory limit of 256 MB" in run["status_message"]


def test_refusals_create_no_run(platform):
    define_actor(platform, "quick", "print('hi')\n")
    with pytest.raises(InvalidInput) as info:
        platform.start_run("quick", memory_mb=300)
    assert "power of two" in info.value.message and info.value.status == 400
    with pytest.raises(InvalidInput) as info:
        platform.start_run("quick", memory_mb=TEST_MEMORY_MB, input="x" * 1_000_001)
    assert "1,000,000" in info.value.message
    with pytest.raises(InvalidInput):
        platform.start_run("quick", memory_mb=TEST_MEMORY_MB, input="{not json")
    with pytest.raises(NotFound):
        platform.start_run("quick", build="9.9.9")
    with pytest.raises(NotFound):
        platform.start_run("no-such-actor")
    assert platform.list_runs() == []


def test_memory_quota_refuses_with_the_numbers(platform_factory):
    platform = platform_factory(memory_limit_mb=2048)
    define_actor(platform, "sleeper", SLEEPER)
    first = platform.start_run("sleeper", memory_mb=2048, timeout_secs=0)
    with pytest.raises(MemoryLimitExceeded) as info:
        platform.start_run("sleeper", memory_mb=128)
    error = info.value
    assert error.type == "actor-memory-limit-exceeded"
    assert "128 MB" in error.message and "2048 MB" in error.message
    assert len(platform.list_runs()) == 1
    platform.abort_run(first["id"])
    platform.wait_run(first["id"], timeout=30)
    second = platform.start_run("sleeper", memory_mb=128, timeout_secs=0)  # memory is free again
    platform.abort_run(second["id"])
    assert platform.wait_run(second["id"], timeout=30)["status"] == "ABORTED"


def test_abort_before_start_goes_straight_to_aborted(platform):
    define_actor(platform, "quick", "print('hi')\n")
    run = platform.start_run("quick", memory_mb=TEST_MEMORY_MB)
    aborted = platform.abort_run(run["id"])
    final = platform.wait_run(run["id"], timeout=30)
    assert final["status"] == "ABORTED"
    assert aborted["status"] in ("ABORTED", "ABORTING")


def test_build_reuse_and_numbering(platform):
    first = define_actor(platform, "reuse", "print(1)\n")
    assert first["build_number"] == "0.0.1"
    again = platform.build("reuse")
    assert again["id"] == first["id"]  # identical source: same build, no new image
    define_actor(platform, "reuse", "print(2)\n")
    changed = platform.build("reuse")
    assert changed["build_number"] == "0.0.2" and changed["id"] != first["id"]
    assert platform.build_tags(platform.get_actor("reuse")["id"])["latest"] == changed["id"]
    run = platform.wait_run(platform.start_run("reuse", build="0.0.1", memory_mb=TEST_MEMORY_MB)["id"], 120)
    assert run["build_number"] == "0.0.1" and platform.run_log(run["id"]).decode().endswith(" 1\n")


def test_build_failure_is_recorded_with_a_readable_error(platform):
    from jupyter_actors.platform.sources import ActorDefinition, text_file

    platform.create_actor(ActorDefinition(name="broken", files=[
        text_file("Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN exit 7\n"), text_file("main.py", "")],
        dockerfile="Dockerfile"))
    build = platform.build("broken")
    assert build["status"] == "FAILED"
    assert "exit 7" in build["status_message"] or "returned a non-zero code: 7" in build["status_message"]
    assert b"non-zero code: 7" in platform.build_log(build["id"])
    with pytest.raises(NotFound):
        platform.start_run("broken")


def test_resurrection_of_a_finished_run(platform):
    define_actor(platform, "counter", "import os\nprint('run', os.environ['ACTOR_RUN_ID'])\n")
    started = platform.start_run("counter", memory_mb=TEST_MEMORY_MB)
    run = platform.wait_run(started["id"], 120)
    assert run["status"] == "SUCCEEDED"
    again = platform.resurrect_run(run["id"])
    assert again["status"] == "RUNNING" and again["resurrect_count"] == 1
    # Only the hash of the first token was kept, so the new container gets a new token; the old one is dead.
    assert again["token"] != started["token"] and platform.run_for_token(started["token"]) is None
    assert platform.run_for_token(again["token"])["id"] == run["id"]
    final = platform.wait_run(run["id"], 120)
    assert final["status"] == "SUCCEEDED", final
    assert final["default_key_value_store_id"] == run["default_key_value_store_id"]
    assert platform.run_log(run["id"]).decode().count(" run ") == 1  # the old log was discarded
    define_actor(platform, "sleeper", SLEEPER)
    live = platform.start_run("sleeper", memory_mb=TEST_MEMORY_MB, timeout_secs=0)
    with pytest.raises(Conflict):
        platform.resurrect_run(live["id"])
    platform.abort_run(live["id"])
    platform.wait_run(live["id"], 30)


def test_disk_limit_stops_the_run_with_a_clear_message(platform_factory):
    # overlay2 on ext4 cannot cap a container's disk, so the platform measures and stops it.
    platform = platform_factory(disk_check_interval_secs=0.5, cpu_mode="shares")
    if platform.backend.disk_quota_supported(platform.config.base_image):
        pytest.skip("this storage driver enforces disk size itself")
    writer = (
        "import time\n"
        "with open('/tmp/fill', 'wb') as f:\n"
        "    for _ in range(300):\n"
        "        f.write(b'x' * 1024 * 1024)\n"
        "        f.flush()\n"
        "print('written', flush=True)\n"
        "time.sleep(120)\n"
    )
    define_actor(platform, "filler", writer)
    run = platform.start_run("filler", memory_mb=128, timeout_secs=300)  # disk = 256 MB
    run = platform.wait_run(run["id"], timeout=120)
    assert run["status"] == "FAILED"
    assert "disk limit of 256 MB" in run["status_message"]


def test_runs_cannot_reach_each_other_on_the_network(platform, docker_client):
    from jupyter_actors.platform.core import NETWORK_NAME

    network = docker_client.api.inspect_network(NETWORK_NAME)
    assert network["Options"].get("com.docker.network.bridge.enable_icc") == "false"


def test_builds_count_towards_the_memory_limit(platform_factory):
    from jupyter_actors.platform.sources import inline_actor

    platform = platform_factory(memory_limit_mb=1024, build_memory_mb=2048)
    platform.create_actor(inline_actor("too-big-to-build", "print(1)\n"))
    with pytest.raises(MemoryLimitExceeded) as info:
        platform.build("too-big-to-build")
    assert "2048 MB" in info.value.message and "1024 MB" in info.value.message
    assert platform.list_builds("too-big-to-build") == []


def test_secret_environment_variables_reach_the_actor_but_are_never_shown(platform):
    from jupyter_actors.api.views import Views
    from jupyter_actors.platform.sources import inline_actor

    platform.create_actor(inline_actor(
        "secretive", "import os\nprint('len', len(os.environ['API_KEY']), os.environ['MODE'])\n",
        env_vars=[{"name": "API_KEY", "value": "s3cr3t-value", "isSecret": True},
                  {"name": "MODE", "value": "fast", "isSecret": False}]))
    assert platform.build("secretive")["status"] == "SUCCEEDED"
    run = platform.wait_run(platform.start_run("secretive", memory_mb=TEST_MEMORY_MB)["id"], 120)
    log = platform.run_log(run["id"]).decode()
    assert "len 12 fast" in log and "s3cr3t" not in log
    version = Views(platform, "http://127.0.0.1:8888/actors/api").version(platform.versions("secretive")[0])
    assert {"name": "API_KEY", "isSecret": True} in version["envVars"]
    assert "s3cr3t-value" not in str(version)
    assert {"name": "MODE", "isSecret": False, "value": "fast"} in version["envVars"]


@pytest.mark.parametrize("how", ["FAILED", "TIMED-OUT", "ABORTED"])
def test_resurrection_of_every_terminal_status_counts_timeout_from_now(platform, how):
    code = {"FAILED": "import sys\nprint('up')\nsys.exit(2)\n", "TIMED-OUT": SLEEPER, "ABORTED": SLEEPER}[how]
    define_actor(platform, "phoenix", code)
    run = platform.start_run("phoenix", memory_mb=TEST_MEMORY_MB, timeout_secs=3 if how == "TIMED-OUT" else 0)
    if how == "ABORTED":
        wait_until(lambda: b"started" in platform.run_log(run["id"]), 60, message="started")
        platform.abort_run(run["id"])
    first = platform.wait_run(run["id"], 60)
    assert first["status"] == how
    again = platform.resurrect_run(run["id"], timeout_secs=30)
    assert again["status"] == "RUNNING" and again["started_at"] == first["started_at"]
    assert again["finished_at"] is None and again["exit_code"] is None
    from jupyter_actors.platform.clock import parse_iso, utcnow

    assert abs((parse_iso(again["timeout_at"]) - utcnow()).total_seconds() - 30) < 5  # from the resurrection
    if how == "FAILED":  # it exits with 2 again by itself
        assert platform.wait_run(run["id"], 60)["status"] == "FAILED"
        return
    platform.abort_run(run["id"])
    assert platform.wait_run(run["id"], 60)["status"] == "ABORTED"


BOOST_PRINTER = r"""
import os, time
def cpus():
    if os.path.exists("/sys/fs/cgroup/cpu.max"):
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
    else:
        quota = open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read()
        period = open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read()
    return int(quota) / int(period)
first = cpus()
print("START", first, flush=True)
deadline = time.time() + 60
while cpus() == first and time.time() < deadline:
    time.sleep(0.1)  # the actor watches its own quota change
print("LATER", cpus(), flush=True)
"""


def test_optional_startup_boost_gives_one_core_then_the_runs_share(platform_factory):
    platform = platform_factory(startup_boost_secs=2)
    define_actor(platform, "boosted", BOOST_PRINTER)
    run = platform.wait_run(platform.start_run("boosted", memory_mb=128, timeout_secs=120)["id"], timeout=120)
    assert run["status"] == "SUCCEEDED", platform.run_log(run["id"])
    values = _log_values(platform, run["id"])
    assert float(values["START"]) == pytest.approx(1.0)
    assert float(values["LATER"]) == pytest.approx(128 / 4096)
    assert run["cpu_cores"] == pytest.approx(128 / 4096)  # the run's share is what is recorded and counted


def test_plain_tokens_of_an_older_registry_are_hashed_and_still_authenticate(platform_factory, tmp_path):
    """Schema 4 kept run tokens in plain. After the upgrade only the hash is on disk, and the token a
    container was started with before the upgrade still finds its run."""
    import sqlite3

    from jupyter_actors.platform.registry import MIGRATIONS

    data_dir = tmp_path / "upgraded"
    data_dir.mkdir()
    old = sqlite3.connect(data_dir / "registry.sqlite")
    for script in MIGRATIONS[:4]:
        old.executescript(script)
    old.execute("PRAGMA user_version = 4")
    old.execute("INSERT INTO actors (id, name, username, created_at, modified_at, default_memory_mb, "
                "default_timeout_secs) VALUES ('a1', 'old', 'local', 'x', 'x', 1024, 0)")
    plain = "run_plain-token-of-schema-4"
    old.execute(
        "INSERT INTO runs (id, actor_id, build_id, build_number, status, created_at, started_at, timeout_secs, "
        "memory_mb, disk_mb, cpu_cores, cpu_mode, default_key_value_store_id, default_dataset_id, "
        "default_request_queue_id, token, container_name) VALUES ('r1', 'a1', 'b1', '0.0.1', 'SUCCEEDED', 'x', 'x', "
        "0, 1024, 2048, 0.25, 'quota', 'k', 'd', 'q', ?, 'c')", (plain,))
    old.commit()
    old.close()
    platform = platform_factory(data_dir=data_dir, serve_api=False)
    assert platform.registry.schema_version == len(MIGRATIONS)
    assert platform.run_for_token(plain)["id"] == "r1"
    assert platform.run_for_token("run_another") is None
    row = platform.registry.query_one("SELECT * FROM runs WHERE id = 'r1'")
    assert "token" not in row and row["token_hash"] == hashlib.sha256(plain.encode()).hexdigest()
    platform.registry.query("PRAGMA wal_checkpoint(TRUNCATE)")
    path = platform.registry.path
    assert all(plain.encode() not in f.read_bytes() for f in path.parent.glob(path.name + "*"))


def test_status_messages_set_in_a_tight_loop_are_coalesced_and_the_last_wins(platform_factory):
    """An actor setting its status message in a loop must not flood the registry and the live streams:
    at most status_message_rate writes a second per run, and the last message is the one stored."""
    platform = platform_factory(status_message_rate=5)
    define_actor(platform, "quiet", SLEEPER)
    run = platform.start_run("quiet", memory_mb=TEST_MEMORY_MB)
    wait_until(lambda: platform.get_run(run["id"])["status"] == "RUNNING", 60, message="running")
    written: list[str] = []
    unsubscribe = platform.subscribe(lambda r: r["id"] == run["id"] and written.append(r["status_message"]))
    try:
        started = time.monotonic()
        for i in range(500):
            answer = platform.set_status_message(run["id"], f"step {i}")
            assert answer["status_message"] == f"step {i}"  # the caller sees its own message at once
        elapsed = time.monotonic() - started
        wait_until(lambda: platform.get_run(run["id"])["status_message"] == "step 499", 5,
                   message="the last message stored")
        assert len(written) <= 5 * (elapsed + 1) + 2, (len(written), elapsed)
        assert written[-1] == "step 499"
        # A terminal message is the run's last word: stored at once, whatever the window says.
        platform.set_status_message(run["id"], "giving up", terminal=True)
        assert platform.get_run(run["id"])["status_message"] == "giving up"
    finally:
        unsubscribe()
        platform.abort_run(run["id"])
        platform.wait_run(run["id"], 60)
