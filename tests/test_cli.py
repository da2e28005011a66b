"""The command-line tool, run as a user would: a subprocess per command against a real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_actors.cli import EXAMPLES_DIR
from jupyter_actors.platform.registry import Registry

from .conftest import cleanup_instance


@pytest.fixture
def cli(tmp_path, docker_client, base_image):
    data_dir = tmp_path / "cli-data"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "jupyter_actors.cli", "--data-dir", str(data_dir), *args],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

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
