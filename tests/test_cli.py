"""The command-line tool, run as a user would: a subprocess per command against a real engine."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from jupyter_actors.cli import EXAMPLES_DIR
from jupyter_actors.platform.registry import Registry

from .conftest import cleanup_instance


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


@pytest.fixture
def cli(tmp_path, docker_client, base_image):
    data_dir = tmp_path / "cli-data"

    def run(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "jupyter_actors.cli", "--data-dir", str(data_dir), *args],
            capture_output=True, text=True, timeout=300, cwd=cwd, env=cli_env(),
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    run.data_dir = data_dir
    yield run
    if (data_dir / "registry.sqlite").exists():
        registry = Registry(data_dir / "registry.sqlite")
        instance = registry.get_meta("instance_id")
        registry.close()
        cleanup_instance(docker_client, instance)


def test_build_run_runs_log(cli):
    built = cli("build", str(EXAMPLES_DIR / "hello-world"))
    assert "Built hello-world 0.0.1" in built.stdout
    ran = cli("run", "hello-world", "--memory", "1024", "--timeout", "120", "--input", '{"name": "CLI", "count": 2}')
    assert "Hello, CLI!" in ran.stdout
    output = ran.stdout.split("OUTPUT (application/json; charset=utf-8):\n", 1)[1]
    assert json.loads(output) == {"message": "Hello, CLI!", "rows": 2}
    run_id = ran.stdout.split("Started run ", 1)[1].split()[0]
    listed = cli("runs")
    assert run_id in listed.stdout and "SUCCEEDED" in listed.stdout
    log = cli("log", run_id)
    assert "Hello, CLI!" in log.stdout


def test_bad_values_get_a_message_not_a_traceback(cli):
    cli("build", str(EXAMPLES_DIR / "hello-world"))
    bad = cli("run", "hello-world", "--memory", "300", check=False)
    assert bad.returncode == 2
    assert "power of two" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("abort", "no-such-run", check=False)
    assert missing.returncode == 2 and "not found" in missing.stderr
    not_dir = cli("build", str(Path(EXAMPLES_DIR).parent), check=False)
    assert not_dir.returncode == 2 and "actor.json" in not_dir.stderr


def output_of(stdout: str) -> dict:
    return json.loads(stdout.split("OUTPUT (application/json; charset=utf-8):\n", 1)[1])


def test_run_in_an_actor_directory_builds_and_runs_it(cli, tmp_path):
    """As ``apify run``: this directory (or one given) is built, then run with its local INPUT.json."""
    directory = tmp_path / "my-hello"
    shutil.copytree(EXAMPLES_DIR / "hello-world", directory)
    local_input = directory / "storage" / "key_value_stores" / "default" / "INPUT.json"
    local_input.parent.mkdir(parents=True)
    local_input.write_text('{"name": "Directory", "count": 4}')

    here = cli("run", "--memory", "1024", cwd=directory)
    assert "Built hello-world 0.0.1" in here.stdout
    assert output_of(here.stdout) == {"message": "Hello, Directory!", "rows": 4}

    (directory / "src" / "main.py").write_text(
        (directory / "src" / "main.py").read_text().replace('f"Hello, {name}!"', 'f"Hi again, {name}!"'))
    given = cli("run", str(directory), "--memory", "1024", "--input", '{"name": "Option", "count": 1}')
    assert "Built hello-world 0.0.2" in given.stdout  # the changed source is built again
    assert output_of(given.stdout) == {"message": "Hi again, Option!", "rows": 1}  # --input wins over INPUT.json

    refused = cli("run", str(directory), "--build", "0.0.1", check=False)
    assert refused.returncode == 2 and "drop --build" in refused.stderr
    not_actor = cli("run", str(tmp_path), check=False)
    assert not_actor.returncode == 2 and "actor.json" in not_actor.stderr


def test_json_output_for_scripts(cli):
    """--json: stdout is one JSON document (Apify's objects); the log and messages go to stderr."""
    build = json.loads(cli("build", str(EXAMPLES_DIR / "hello-world"), "--json").stdout)
    assert build["status"] == "SUCCEEDED" and build["buildNumber"] == "0.0.1"
    ran = cli("run", "hello-world", "--memory", "1024", "--input", '{"name": "JSON", "count": 1}', "--json")
    run = json.loads(ran.stdout)
    assert run["status"] == "SUCCEEDED" and run["buildId"] == build["id"] and run["options"]["memoryMbytes"] == 1024
    assert "Hello, JSON!" in ran.stderr and "Started run" in ran.stderr
    runs = json.loads(cli("runs", "--json").stdout)
    assert [item["id"] for item in runs] == [run["id"]] and runs[0]["status"] == "SUCCEEDED"


def in_terminal(command: list[str]) -> str:
    """Run ``command`` on a pseudo-terminal (160 columns), as a person would; returns what it drew."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**cli_env(), "TERM": "xterm-256color", "COLUMNS": "160"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_tables_and_progress_on_a_terminal_plain_in_a_pipe(cli):
    cli("run", str(EXAMPLES_DIR / "hello-world"), "--memory", "1024")
    command = [sys.executable, "-m", "jupyter_actors.cli", "--data-dir", str(cli.data_dir)]
    table = in_terminal([*command, "runs"])
    assert "┏━" in table and "RUN" in table and "SUCCEEDED" in table and "\x1b[" in table  # a rich table, in colour
    piped = cli("runs").stdout
    assert piped.split()[:6] == ["RUN", "ACTOR", "STATUS", "MB", "STARTED", "MESSAGE"]
    assert "┃" not in piped and "\x1b[" not in piped and "SUCCEEDED" in piped
    setup = in_terminal([*command, "setup"])
    assert "4/4" in setup and "Docker engine answers" in setup  # the progress bar reached its last step
