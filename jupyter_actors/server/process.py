"""A headless Jupyter server (or JupyterLab) with the extension in a subprocess.

The one launcher behind the quickstart runner, the benchmarks and the tests that start, kill and
restart the real thing. Everything it writes (config, runtime files, log) stays under ``root``, so
several can run side by side.
"""

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

class ServerStartFailed(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_dicts else value
    return merged


class ServerProcess:
    """Start, kill and restart one server on a fixed data directory.

    ``ServerProcess(tmp_dir, on_shutdown="detach").start()``; keyword arguments other than the ones
    named are ``ActorsExtension`` settings; ``config`` adds any other Jupyter configuration.
    """

    def __init__(self, root: Path, *, notebook_dir: Path | None = None, data_dir: Path | None = None,
                 app: str = "jupyter_server", config: dict | None = None, **extension_options) -> None:
        self.root = Path(root)
        self.notebook_dir = Path(notebook_dir or root).resolve()
        self.data_dir = Path(data_dir).resolve() if data_dir else self.root / "actors-data"
        self.app = app
        self.extra_config = config or {}
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.options = {"data_dir": str(self.data_dir), "stop_grace_secs": 2.0, **extension_options}
        self.process: subprocess.Popen | None = None
        self.env = {**os.environ}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"{self.url}actors/api"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url + "/v2", headers={"Authorization": f"Bearer {self.token}"},
                            timeout=120)

    def kernel_env(self) -> dict[str, str]:
        """The environment of a kernel pointed at this server (as the server gives its own kernels)."""
        from ..notebook.client import TOKEN_VARIABLE, URL_VARIABLE

        return {**os.environ, URL_VARIABLE: self.api_url, TOKEN_VARIABLE: self.token}

    def start(self, timeout: float = 60) -> None:
        """Start and wait until the extension's API answers with the token."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = _merge({
            "ServerApp": {"jpserver_extensions": {"jupyter_actors": True}, "port": self.port, "ip": "127.0.0.1",
                          "port_retries": 0, "open_browser": False, "root_dir": str(self.notebook_dir),
                          "allow_root": True},
            "IdentityProvider": {"token": self.token},
            "ActorsExtension": self.options,
        }, self.extra_config)
        config_path = self.root / "jupyter_server_config.json"
        config_path.write_text(json.dumps(config))
        env = {**self.env, "JUPYTER_CONFIG_DIR": str(self.config_dir),
               "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"), "JUPYTER_DATA_DIR": str(self.root / "data")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.app, f"--config={config_path}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerStartFailed(f"{self.app} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.api_url}/v2/actors", headers={"Authorization": f"Bearer {self.token}"},
                             timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerStartFailed(f"{self.app} did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling a starting process: there is nothing to wait on

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

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

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
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
