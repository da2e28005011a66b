"""Where the CLI's platform is: through the Jupyter server that holds the data directory, else hosted by
the CLI under the directory's lock; never two platforms on one directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from jupyter_actors.platform.datadir import SERVER_FILE, read_holder, read_server_info
from jupyter_actors.platform.registry import Registry

from .conftest import cleanup_instance, off, wait_until

WORKTREE = str(Path(__file__).resolve().parent.parent)
WAITER = """
import time
print("waiting for an abort", flush=True)
time.sleep(300)
"""


def actor_dir(root: Path, name: str = "waiter", main_py: str = WAITER) -> Path:
    """An actor directory in Apify's layout (the platform writes the Dockerfile)."""
    directory = root / name
    (directory / ".actor").mkdir(parents=True)
    (directory / ".actor" / "actor.json").write_text(json.dumps({"actorSpecification": 1, "name": name,
                                                                 "version": "0.0"}))
    (directory / "main.py").write_text(main_py)
    return directory


def cli_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jupyter_actors.cli", "--data-dir", str(data_dir), *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": WORKTREE, "PYTHONUNBUFFERED": "1"}


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(data_dir, *args), capture_output=True, text=True, timeout=300, env=cli_env())


def _as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(data_dir: Path, *args: str) -> subprocess.Popen:
    """The CLI as a terminal's foreground command: Ctrl-C (SIGINT) reaches it. A suite started as a
    background job (``cmd &`` in a script, as CI may) has SIGINT ignored, and children inherit that."""
    return subprocess.Popen(cli_command(data_dir, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), preexec_fn=_as_in_a_terminal)


def cleanup_data_dir(docker_client, data_dir: Path) -> None:
    if (data_dir / "registry.sqlite").exists():
        registry = Registry(data_dir / "registry.sqlite")
        instance = registry.get_meta("instance_id")
        registry.close()
        cleanup_instance(docker_client, instance)


async def test_a_cli_run_goes_through_the_running_server(actors_app, api_url, api_token, tmp_path):
    data_dir = Path(actors_app.platform.data_dir)
    info = read_server_info(data_dir)
    assert info is not None and info.pid == os.getpid() and info.url.rstrip("/").endswith("/actors/api")
    assert stat.S_IMODE((data_dir / SERVER_FILE).stat().st_mode) == 0o600
    assert api_token not in (data_dir / SERVER_FILE).read_text()  # its own credential, not Jupyter's token
    async with httpx.AsyncClient(base_url=f"{api_url}/v2") as http:
        assert (await http.get("/users/me", headers={"Authorization": f"Bearer {info.credential}"})).status_code == 200
        assert (await http.get("/users/me", headers={"Authorization": "Bearer not-it"})).status_code == 401

    built = await off(cli, data_dir, "build", str(actor_dir(tmp_path)))
    assert built.returncode == 0, built.stdout + built.stderr
    process = start_cli(data_dir, "run", "waiter", "--memory", "1024")
    try:
        headers = {"Authorization": f"token {api_token}"}

        def running() -> dict | None:
            items = httpx.get(f"{api_url}/v2/actor-runs", headers=headers).json()["data"]["items"]
            return next((run for run in items if run["status"] == "RUNNING"), None)

        run = await off(wait_until, running, 120, 0.2, "the CLI's run RUNNING in the server's API")
        # The server's platform started it and watches it: the CLI hosts nothing beside the server.
        assert actors_app.platform.is_watched(run["id"])
        assert actors_app.platform.get_run(run["id"])["status"] == "RUNNING"
        await off(wait_until, lambda: "waiting for an abort" in httpx.get(
            f"{api_url}/v2/actor-runs/{run['id']}/log", headers=headers).text, 60, 0.2, "the run's log")
        # Ctrl-C stops the CLI following; the run is the server's and goes on.
        process.send_signal(signal.SIGINT)
        out, err = await off(process.communicate, timeout=120)
        assert process.returncode == 130, out + err
        assert "waiting for an abort" in out and "it keeps running on the server" in out
        assert actors_app.platform.get_run(run["id"])["status"] == "RUNNING"
        aborted = await off(httpx.post, f"{api_url}/v2/actor-runs/{run['id']}/abort", headers=headers)
        assert aborted.status_code == 200, aborted.text
        final = await off(actors_app.platform.wait_run, run["id"], 60)
        assert final["status"] == "ABORTED"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_one_platform_per_data_directory(tmp_path, docker_client, base_image):
    """A CLI hosting the platform holds the directory: a second CLI and a server are refused, naming it."""
    data_dir = tmp_path / "data"
    built = cli(data_dir, "build", str(actor_dir(tmp_path)))
    assert built.returncode == 0, built.stdout + built.stderr
    holder = subprocess.Popen(cli_command(data_dir, "run", "waiter", "--memory", "1024"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        wait_until(lambda: read_holder(data_dir).get("pid") == holder.pid, 60, 0.1, "the CLI to hold the lock")
        second = cli(data_dir, "runs")
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"is in use by the jupyter-actors CLI (run) (pid {holder.pid})" in second.stderr

        server = subprocess.run(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={free_port()}",
             "--ServerApp.jpserver_extensions={'jupyter_actors': True}", f"--ServerApp.root_dir={tmp_path}",
             "--ServerApp.reraise_server_extension_failures=True", f"--ActorsExtension.data_dir={data_dir}"],
            capture_output=True, text=True, timeout=120,
            env={**cli_env(), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
        assert server.returncode != 0
        assert f"is in use by the jupyter-actors CLI (run) (pid {holder.pid})" in server.stderr
    finally:
        holder.kill()  # a killed holder's lock goes with it
        holder.wait(10)
    try:
        after = cli(data_dir, "runs")
        assert after.returncode == 0, after.stdout + after.stderr
        assert "waiter" in after.stdout
    finally:
        cleanup_data_dir(docker_client, data_dir)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(tmp_path: Path, data_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={free_port()}",
         "--ServerApp.jpserver_extensions={'jupyter_actors': True}", f"--ServerApp.root_dir={tmp_path}",
         f"--ActorsExtension.data_dir={data_dir}", "--ActorsExtension.stop_grace_secs=2"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "ab"),  # noqa: SIM115
        env={**cli_env(), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    wait_until(lambda: read_server_info(data_dir) or process.poll() is not None, 60, 0.1, "the server file")
    assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
    return process


def test_the_server_file_goes_with_its_server(tmp_path, docker_client, base_image):
    """Written at start, removed on a clean shutdown; a killed server's leftover is taken for stale."""
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, data_dir)
    try:
        info = read_server_info(data_dir)
        assert info is not None and info.pid == server.pid
        wait_until(lambda: _answers(info.url, info.credential), 60, 0.1, "the server to answer")
        through = cli(data_dir, "runs")
        assert through.returncode == 0, through.stdout + through.stderr
        settings = cli(data_dir, "--backend", "docker", "runs")  # the server's setting: refused, not ignored
        assert settings.returncode == 2 and "--backend would have no effect" in settings.stderr
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        assert not (data_dir / SERVER_FILE).exists()

        server = start_server(tmp_path, data_dir)
        server.kill()
        server.wait(10)
        assert (data_dir / SERVER_FILE).exists() and read_server_info(data_dir) is None
        hosted = cli(data_dir, "runs")
        assert hosted.returncode == 0, hosted.stdout + hosted.stderr
        assert not (data_dir / SERVER_FILE).exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        cleanup_data_dir(docker_client, data_dir)


def _answers(url: str, credential: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/users/me", headers={"Authorization": f"Bearer {credential}"}).status_code == 200
    except httpx.TransportError:
        return False


def test_ctrl_c_aborts_a_run_the_cli_hosts(tmp_path, docker_client, base_image):
    """Hosted by the CLI, a run cannot outlive it: Ctrl-C aborts it instead of leaving an unwatched container."""
    data_dir = tmp_path / "data"
    try:
        built = cli(data_dir, "build", str(actor_dir(tmp_path)))
        assert built.returncode == 0, built.stdout + built.stderr
        process = start_cli(data_dir, "run", "waiter", "--memory", "1024")
        try:
            wait_until(lambda: run_statuses(data_dir) == ["RUNNING"], 120, 0.2, "the run RUNNING")
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        assert process.returncode == 130, out + err
        assert "ABORTED; this command hosts the platform" in out and "Traceback" not in err
        assert run_statuses(data_dir) == ["ABORTED"]
        instance = json.loads(cli(data_dir, "runs", "--json").stdout)[0]
        assert instance["status"] == "ABORTED"
    finally:
        cleanup_data_dir(docker_client, data_dir)


def run_statuses(data_dir: Path) -> list[str]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(data_dir / "registry.sqlite")) as db:
        return [row[0] for row in db.execute("SELECT status FROM runs")]


def test_an_unwritable_data_directory_gets_a_message(tmp_path):
    refused = cli(Path("/proc/no-such-data-dir"), "runs")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "Cannot lock the data directory /proc/no-such-data-dir" in refused.stderr
