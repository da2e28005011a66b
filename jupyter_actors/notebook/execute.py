"""Execute a notebook headless against a real server: ``run_notebook(path, output_path)``.

It starts ``jupyter server`` with the extension on a free port with a fresh token, runs the notebook
with nbclient in a kernel pointed at that server (the same variables a server gives its kernels),
writes the executed copy with its outputs and stops the server.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .client import TOKEN_VARIABLE, URL_VARIABLE
from .errors import ActorsError, ServerNotFound

STARTUP_TIMEOUT_SECS = 60
CELL_TIMEOUT_SECS = 600


@dataclass
class Server:
    """A running headless server: its API URL and token, and where it writes its log."""

    api_url: str
    token: str
    log_path: Path
    process: subprocess.Popen

    def kernel_env(self) -> dict[str, str]:
        return {**os.environ, URL_VARIABLE: self.api_url, TOKEN_VARIABLE: self.token}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def headless_server(root_dir: Path | str, *, data_dir: Path | str | None = None,
                    startup_timeout: float = STARTUP_TIMEOUT_SECS) -> Iterator[Server]:
    """``jupyter server`` with the extension, answering on its API before this yields; stopped after."""
    port, token = free_port(), secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="jupyter-actors-server-") as tmp:
        config = {"ServerApp": {"jpserver_extensions": {"jupyter_actors": True}, "open_browser": False,
                                "port_retries": 0, "allow_root": True, "root_dir": str(Path(root_dir).resolve())},
                  "IdentityProvider": {"token": token}}
        if data_dir is not None:
            config["ActorsExtension"] = {"data_dir": str(Path(data_dir).resolve())}
        config_path = Path(tmp) / "jupyter_server_config.json"
        config_path.write_text(json.dumps(config))
        log_path = Path(tmp) / "server.log"
        command = [sys.executable, "-m", "jupyter_server", f"--config={config_path}", "--ip=127.0.0.1",
                   f"--port={port}"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server(f"http://127.0.0.1:{port}/actors/api", token, log_path, process)
        try:
            _wait_until_ready(server, startup_timeout)
            yield server
        finally:
            _stop(process)


def _wait_until_ready(server: Server, timeout: float) -> None:
    """Poll the API until it answers with the token (or the process dies, or the deadline passes)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {server.token}"}
    while True:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise ServerNotFound(f"jupyter server exited with {code}:\n{_log_tail(server.log_path)}")
        try:
            if httpx.get(f"{server.api_url}/v2/actor-runs?limit=1", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerNotFound(f"jupyter server did not answer within {timeout:.0f} s:\n{_log_tail(server.log_path)}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def execute_notebook(path: Path | str, output_path: Path | str, env: dict[str, str], *,
                     cell_timeout: int = CELL_TIMEOUT_SECS) -> None:
    """Run every cell with nbclient in a kernel started with ``env``; the copy is written even on failure."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source = Path(path)
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.resolve().parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        raise ActorsError(f"{source.name} failed:\n{exc}") from None
    finally:
        Path(output_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output_path)


def run_notebook(path: Path | str, output_path: Path | str, *, data_dir: Path | str | None = None,
                 cell_timeout: int = CELL_TIMEOUT_SECS, startup_timeout: float = STARTUP_TIMEOUT_SECS) -> Path:
    """Execute ``path`` headless against a fresh server and write the executed copy to ``output_path``."""
    with headless_server(Path(path).resolve().parent, data_dir=data_dir, startup_timeout=startup_timeout) as server:
        execute_notebook(path, output_path, server.kernel_env(), cell_timeout=cell_timeout)
    return Path(output_path)
