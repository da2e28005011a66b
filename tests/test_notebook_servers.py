"""The kernel finds the actor API of the server that started it, however that server is reached.

Each test starts a real ``jupyter server`` with the extension (HTTPS with a self-signed certfile, a
unix socket with a base_url, a password and no token) or a real JupyterHub that spawns one, starts a
real kernel through that server's REST API, and the kernel's IPython startup file uses
``jupyter_actors`` with no configuration, writing what it saw to a file.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
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
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    seen.update(pid=os.getpid(), hub_token=bool(hub_token) and client.token == hub_token)
    seen["total"] = client.get("/datasets")["total"]
    seen["made"] = client.post("/datasets", name="made-by-kernel")["name"]
except Exception as exc:
    seen["error"] = f"{type(exc).__name__}: {exc}"
Path(os.environ["PROBE_OUT"]).write_text(json.dumps(seen))
"""


def install_probe(work: Path) -> Path:
    """An IPython profile (``work/ipython``) whose startup file runs PROBE; returns where it writes."""
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-probe.py").write_text(PROBE)
    return work / "probe.json"


def start_probed_kernel(http: httpx.Client, probe: Path) -> dict:
    """Start a kernel through the server's REST API (``http``'s base URL) and return what its probe saw."""
    wait_until(lambda: _answers(http), 60, 0.1, "the server to answer")
    kernel = http.post("api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    wait_until(probe.exists, 90, 0.1, "the kernel's startup probe")
    wait_until(lambda: probe.read_text().endswith("}"), 10, 0.05, "the probe to be written")
    return json.loads(probe.read_text())


class JupyterServer:
    """A ``jupyter server`` subprocess with the extension, its runtime dir and kernels' startup probe."""

    def __init__(self, work: Path, args: list[str], env: dict[str, str] | None = None, token: str = TOKEN) -> None:
        self.work = work
        self.runtime = work / "runtime"
        self.probe = install_probe(work)
        self.env = {**os.environ, "PYTHONPATH": WORKTREE, "JUPYTER_RUNTIME_DIR": str(self.runtime),
                    "IPYTHONDIR": str(work / "ipython"), "PROBE_OUT": str(self.probe), **(env or {})}
        for name in ("JUPYTER_ACTORS_API_URL", "JUPYTER_ACTORS_TOKEN", "JUPYTER_ACTORS_CA_FILE", "JUPYTER_TOKEN"):
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
        return start_probed_kernel(http, self.probe)

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
                                       "--ServerApp.port_retries=0"])
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
    # ... and is never sent the hub's token or the parent server's.
    assert discover({**env, **remote}, server) == Endpoint("https://actors.example/actors/api", "t")
    named = {"JUPYTER_ACTORS_API_URL": "https://actors.example/actors/api"}
    assert discover({**env, **named}, {**server, "token": "jupyter-token"}).token == ""
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


HUB_CONFIG = """
c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = {hub_url!r}
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret!r}
c.JupyterHub.pid_file = {pid_file!r}
c.ConfigurableHTTPProxy.api_url = {proxy_api_url!r}
c.ConfigurableHTTPProxy.command = [{proxy_command!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid_file!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"ann"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home!r}
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.environment = {environment!r}
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
                             "scopes": ["admin:servers", "access:servers", "read:users"]}}]
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Hub:
    """A real JupyterHub on loopback: its configurable-http-proxy, and single-user servers it spawns (as this
    user, SimpleLocalProcessSpawner) with the extension; the hub issues every token."""

    def __init__(self, work: Path, token: str) -> None:
        venv_bin = Path(sys.executable).parent
        proxy = shutil.which("configurable-http-proxy", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
        assert proxy, "configurable-http-proxy (npm) is missing: run `bash scripts/bootstrap.sh --for-tests`"
        self.work, self.token = work, token
        self.runtime = work / "runtime"
        self.probe = install_probe(work)
        self.url = f"http://127.0.0.1:{_free_port()}/"
        self.pid_file, self.proxy_pid_file = work / "hub.pid", work / "proxy.pid"
        environment = {"PYTHONPATH": WORKTREE, "JUPYTER_RUNTIME_DIR": str(self.runtime),
                       "IPYTHONDIR": str(work / "ipython"), "PROBE_OUT": str(self.probe)}
        environment.update({name: os.environ[name] for name in ("DOCKER_HOST",) if name in os.environ})
        args = ["--allow-root", "--ServerApp.jpserver_extensions={'jupyter_actors': True}",
                f"--ActorsExtension.data_dir={work / 'data'}", "--ActorsExtension.stop_grace_secs=2"]
        (work / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
            bind_url=self.url, hub_url=f"http://127.0.0.1:{_free_port()}", db_url=f"sqlite:///{work / 'hub.sqlite'}",
            cookie_secret=str(work / "cookie_secret"), pid_file=str(self.pid_file),
            proxy_api_url=f"http://127.0.0.1:{_free_port()}", proxy_command=proxy,
            proxy_pid_file=str(self.proxy_pid_file),
            home=str(work / "home" / "{username}"), python=sys.executable, args=args, environment=environment,
            token=token))
        env = {**os.environ, "PYTHONPATH": WORKTREE}
        for name in ("JUPYTER_ACTORS_API_URL", "JUPYTER_ACTORS_TOKEN", "JUPYTER_TOKEN"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(work / "jupyterhub_config.py")], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=open(work / "hub.log", "wb"),  # noqa: SIM115
        )
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"token {token}"}, timeout=30)
        wait_until(lambda: self._answers() or self.process.poll() is not None, 90, 0.1, "the hub to start")
        assert self.process.poll() is None, self.log()

    def log(self) -> str:
        return (self.work / "hub.log").read_text(errors="replace")[-4000:]

    def _answers(self) -> bool:
        try:
            return self.http.get("hub/api/").status_code == 200
        except httpx.TransportError:
            return False

    def spawn(self, user: str) -> None:
        """Start ``user``'s server through the hub's API and wait until the hub says it is ready."""
        started = self.http.post(f"hub/api/users/{user}/server")
        assert started.status_code in (201, 202), started.text
        wait_until(lambda: self.http.get(f"hub/api/users/{user}").json()["servers"].get("", {}).get("ready"),
                   120, 0.2, f"{user}'s single-user server")

    def child_pids(self) -> list[int]:
        """The single-user servers (their runtime files), the proxy (its pid file) and the probed kernel."""
        pids = [int(path.stem.removeprefix("jpserver-")) for path in self.runtime.glob("jpserver-*.json")]
        if self.proxy_pid_file.exists():
            pids.append(int(self.proxy_pid_file.read_text().strip()))
        if self.probe.exists() and self.probe.read_text().endswith("}"):
            pids.append(json.loads(self.probe.read_text())["pid"])
        return pids

    def stop(self) -> None:
        """SIGTERM the hub (it stops the servers, their kernels and the proxy), then end whatever outlived it."""
        others = self.child_pids()
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for pid in others:
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
        for pid in others:
            try:
                wait_until(lambda pid=pid: not _alive(pid), 30, 0.1, f"process {pid} to end")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("docker_client")
def test_kernel_reaches_a_jupyterhub_single_user_server(short_dir):
    """A real hub spawns the user's server; a kernel started through the hub's proxy with a hub-issued token
    uses the hub's token for that server (JUPYTERHUB_API_TOKEN) and reaches the actor API at its base_url."""
    hub = Hub(short_dir, "hub-service-token-for-tests")
    try:
        hub.spawn("ann")
        with httpx.Client(base_url=f"{hub.url}user/ann/", headers=hub.http.headers, timeout=30) as http:
            seen = start_probed_kernel(http, hub.probe)  # through the proxy, with the hub's token
            assert "error" not in seen, seen
            assert seen["hub_token"] and seen["made"] == "made-by-kernel"
            assert seen["url"].startswith("http://127.0.0.1:") and seen["url"].endswith("/user/ann/actors/api")
            made = http.get("actors/api/v2/datasets/made-by-kernel")  # and the API through the proxy
            assert made.status_code == 200 and made.json()["data"]["name"] == "made-by-kernel"
            assert http.get("actors/api/v2/datasets", headers={"Authorization": ""}).status_code == 401
    finally:
        hub.stop()


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b'{"data": {"ok": true}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def test_a_ca_signed_certfile_verifies_with_the_usual_roots(short_dir, monkeypatch):
    """The certfile a kernel is given is trusted besides the usual roots, not instead of them: a server's
    certificate signed by a CA (here a test CA made one of the roots through SSL_CERT_FILE) verifies too."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=short_dir)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "leaf.key", "-out", "leaf.csr")
    (short_dir / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
            "-extfile", "ext.cnf", "-out", "leaf.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(short_dir / "leaf.pem", short_dir / "leaf.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(short_dir / "ca.pem"))
    client = Client(f"https://127.0.0.1:{server.server_address[1]}/actors/api", "t", retry_attempts=1,
                    verify=str(short_dir / "leaf.pem"))
    try:
        assert client.get("/anything") == {"ok": True}
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(10)
