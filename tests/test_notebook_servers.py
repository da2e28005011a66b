"""The kernel finds the actor API of the server that started it, however that server is reached.

Each test starts a real ``jupyter server`` with the extension (HTTPS with a self-signed certfile, a
unix socket with a base_url), starts a real kernel through that server's REST API, and the kernel's
IPython startup file uses ``jupyter_actors`` with no configuration, writing what it saw to a file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from jupyter_actors.notebook import Client
from jupyter_actors.notebook.discovery import Endpoint, discover

from .conftest import wait_until

WORKTREE = str(Path(__file__).resolve().parents[1])
TOKEN = "kernel-discovery-token"
PROBE = """
import json, os, traceback
from pathlib import Path
seen = {}
try:
    from jupyter_actors.notebook import default_client
    client = default_client()
    seen.update(url=client.url, uds=getattr(client, "uds", None))
    seen["total"] = client.get("/datasets")["total"]
    seen["made"] = client.post("/datasets", name="made-by-kernel")["name"]
except Exception as exc:
    seen["error"] = f"{type(exc).__name__}: {exc}"
Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
"""


class JupyterServer:
    """A ``jupyter server`` subprocess with the extension, its runtime dir and kernels' startup probe."""

    def __init__(self, work: Path, args: list[str], env: dict[str, str] | None = None, token: str = TOKEN) -> None:
        self.work = work
        self.runtime = work / "runtime"
        startup = work / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-probe.py").write_text(PROBE)
        self.probe = work / "probe.json"
        self.env = {**os.environ, "PYTHONPATH": WORKTREE, "JUPYTER_RUNTIME_DIR": str(self.runtime),
                    "IPYTHONDIR": str(work / "ipython"), "PROBE_OUT": str(self.probe), **(env or {})}
        for name in ("JUPYTER_ACTORS_API_URL", "JUPYTER_ACTORS_TOKEN", "JUPYTER_TOKEN"):
            self.env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--ServerApp.root_dir={work}",
             "--ServerApp.jpserver_extensions={'jupyter_actors': True}", f"--IdentityProvider.token={token}",
             f"--ActorsExtension.data_dir={work / 'data'}", "--ActorsExtension.stop_grace_secs=2", *args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"),  # noqa: SIM115
        )
        info = self.runtime / f"jpserver-{self.process.pid}.json"
        wait_until(lambda: info.exists() or self.process.poll() is not None, 60, 0.1, "the server to start")
        assert self.process.poll() is None, (work / "server.log").read_text()[-3000:]
        self.info = json.loads(info.read_text())

    def start_kernel(self, http: httpx.Client) -> dict:
        wait_until(lambda: _answers(http), 60, 0.1, "the server to answer")
        kernel = http.post("api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        wait_until(self.probe.exists, 90, 0.1, "the kernel's startup probe")
        wait_until(lambda: self.probe.read_text().endswith("}"), 10, 0.05, "the probe to be written")
        return json.loads(self.probe.read_text())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("api/status").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def short_dir():
    """A short directory: a unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ja-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.usefixtures("docker_client")
def test_kernel_reaches_a_unix_socket_server_with_a_base_url(short_dir):
    sock = short_dir / "j.sock"
    server = JupyterServer(short_dir, [f"--ServerApp.sock={sock}", "--ServerApp.base_url=/some/prefix/"])
    try:
        assert server.info["url"].startswith("http+unix://")
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, base_url="http://localhost/some/prefix/",
                          headers={"Authorization": f"token {TOKEN}"}) as http:
            seen = server.start_kernel(http)
            assert "error" not in seen, seen
            assert seen["uds"] == str(sock) and seen["url"].endswith("/some/prefix/actors/api")
            assert seen["made"] == "made-by-kernel"
            check = Client(server.info["url"] + "actors/api", TOKEN)  # the test's client, same socket
            assert check.get("/datasets/made-by-kernel")["name"] == "made-by-kernel"
            check.close()
    finally:
        server.stop()


@pytest.mark.usefixtures("docker_client")
def test_kernel_reaches_an_https_server_with_a_self_signed_certfile(short_dir):
    cert, key = short_dir / "cert.pem", short_dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = _free_port()
    server = JupyterServer(short_dir, [f"--ServerApp.certfile={cert}", f"--ServerApp.keyfile={key}",
                                       "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                                       "--ServerApp.port_retries=0"],
                           env={"JUPYTER_ACTORS_CA_FILE": str(cert)})
    try:
        assert server.info["url"] == f"https://127.0.0.1:{port}/"
        with httpx.Client(base_url=server.info["url"], verify=str(cert),
                          headers={"Authorization": f"token {TOKEN}"}) as http:
            seen = server.start_kernel(http)
        assert "error" not in seen, seen
        assert seen["url"] == f"https://127.0.0.1:{port}/actors/api" and seen["made"] == "made-by-kernel"
        untrusting = Client(seen["url"], TOKEN, retry_attempts=1)  # without the certfile: refused, clearly
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.get("/datasets")
        untrusting.close()
    finally:
        server.stop()


def test_hub_single_user_contract():
    """On a JupyterHub single-user server the hub's token and service URL are what the kernel uses."""
    env = {"JUPYTERHUB_API_TOKEN": "hub-token", "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:41000/user/ann/",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"}
    assert discover(env) == Endpoint("http://127.0.0.1:41000/user/ann/actors/api", "hub-token")
    server = {"url": "http://127.0.0.1:41000/user/ann/", "port": 41000, "base_url": "/user/ann/", "token": ""}
    exported = {**env, "JUPYTER_ACTORS_API_URL": "http://127.0.0.1:41000/user/ann/actors/api",
                "JUPYTER_ACTORS_TOKEN": "server-own-token"}
    assert discover(exported, server) == Endpoint("http://127.0.0.1:41000/user/ann/actors/api", "hub-token")
    # An explicitly exported remote server wins over the parent server's address.
    remote = {"JUPYTER_ACTORS_API_URL": "https://actors.example/actors/api", "JUPYTER_ACTORS_TOKEN": "t"}
    assert discover(remote, server) == Endpoint("https://actors.example/actors/api", "t")
    assert discover({}) is None


@pytest.mark.usefixtures("docker_client")
def test_kernel_reaches_a_password_only_server(short_dir):
    """Jupyter gives a password-only server's kernels no credential: the extension gives them its own, which
    opens the actors API and nothing else of the server."""
    from jupyter_server.auth import passwd

    sock = short_dir / "p.sock"
    server = JupyterServer(short_dir, [f"--ServerApp.sock={sock}",
                                       f"--PasswordIdentityProvider.hashed_password={passwd('secret')}"], token="")
    try:
        assert not server.info["token"]
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://localhost/") as http:
            assert http.get("actors/api/v2/datasets").status_code == 401  # the API does need a login
            login = http.get("login")
            xsrf = login.cookies.get("_xsrf")
            http.post("login", data={"password": "secret", "_xsrf": xsrf}, headers={"X-XSRFToken": xsrf})
            http.headers["X-XSRFToken"] = http.cookies.get("_xsrf")
            seen = server.start_kernel(http)
            assert "error" not in seen, seen
            assert seen["uds"] == str(sock) and seen["made"] == "made-by-kernel"
            assert http.get("actors/api/v2/datasets/made-by-kernel").json()["data"]["name"] == "made-by-kernel"
        credential = json.loads((short_dir / "data" / "server.json").read_text())["credential"]
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://localhost/",
                          headers={"Authorization": f"Bearer {credential}"}) as kernel_like:
            assert kernel_like.get("actors/api/v2/datasets").status_code == 200
            assert kernel_like.get("api/kernels").status_code == 403  # not Jupyter's kernels or terminals
    finally:
        server.stop()
