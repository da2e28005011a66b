"""A headless `jupyter server` with the extension in a subprocess: for tests, benchmarks and runners
that need to start, kill and restart the real thing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """Start, kill and restart one Jupyter server on a fixed data directory."""

    # Typical use: ServerProcess(tmp_dir).start(); ... .client() ...; .stop()

    def __init__(self, root: Path, **extension_options) -> None:
        self.root = root
        self.data_dir = root / "actors-data"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.options = {"data_dir": str(self.data_dir), "stop_grace_secs": 2.0, **extension_options}
        self.process: subprocess.Popen | None = None
        self.env = {**os.environ}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/actors/api"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url + "/v2", headers={"Authorization": f"Bearer {self.token}"},
                            timeout=120)

    def start(self, timeout: float = 60) -> None:
        config = {
            "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}, "port": self.port, "ip": "127.0.0.1",
                          "open_browser": False, "root_dir": str(self.root), "allow_root": True},
            "IdentityProvider": {"token": self.token},
            "ActorsExtension": self.options,
        }
        config_path = self.root / "jupyter_server_config.json"
        config_path.write_text(json.dumps(config))
        env = {**self.env, "JUPYTER_CONFIG_DIR": str(self.root / "config"), "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
               "JUPYTER_DATA_DIR": str(self.root / "data")}
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={config_path}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {(self.root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.api_url}/v2/actors", headers={"Authorization": f"Bearer {self.token}"},
                             timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer in {timeout} s: {(self.root / 'server.log').read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM: the graceful path (Ctrl-C does the same)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def instance_id(self) -> str | None:
        from jupyter_actors.platform.registry import Registry

        path = self.data_dir / "registry.sqlite"
        if not path.exists():
            return None
        registry = Registry(path)
        try:
            return registry.get_meta("instance_id")
        finally:
            registry.close()

    def log_text(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")
