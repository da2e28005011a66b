"""A forward HTTP proxy for runs: the ``APIFY_PROXY_*`` contract of Apify's SDKs, on the runs' network.

Over 400 lines on purpose: one protocol end to end (see below why no proxy library).

Apify's SDKs (``Actor.create_proxy_configuration()`` in Python, ``Actor.createProxyConfiguration()`` in
JavaScript) build ``http://<username>:<password>@APIFY_PROXY_HOSTNAME:APIFY_PROXY_PORT`` and check it by
fetching ``APIFY_PROXY_STATUS_URL/?format=json`` *through* that proxy, expecting ``{connected,
connectionError, isManInTheMiddle}``. This module is that proxy: plain HTTP is forwarded, HTTPS goes
through CONNECT tunnels (never intercepted), either directly or through one upstream HTTP proxy the user
configures (a company proxy). The status URL is the proxy's own address, so the check is answered here
and passes even where the upstream proxy could not reach this host.

Each run gets its own password (``run_proxy_password``), valid while the run is live; the user has one
too (``users/me``). A wrong or missing password gets 407. The username carries Apify's options
(``auto``, ``groups-A+B``, ``session-X``, ``country-US``): they are accepted, and the run's log says once
that groups and countries have no effect here. Anything else in the username is refused with a 407
that says what is accepted.

Why not a proxy library: proxy.py (PyPI ``proxy-py``) runs its own acceptor processes or threads and
its own selector loop, configured through process-wide flags and plugins loaded by import path, so it
cannot share the server's event loop or look passwords up in the platform; per-run credentials, the
status answer and the run-log notes would all be plugins around it. pproxy has no per-request
authentication hook. What a forward proxy needs here (parse one request head, authenticate, open a
socket or an upstream CONNECT, then copy bytes both ways) is about as much code as that glue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from .backends.base import LogLine
from .lifecycle import RunStatus
from .models import Run
from .registry import Registry
from .runlog import RunLog

log = logging.getLogger(__name__)

#: A request head larger than this is refused (431): no client sends one, a hostile one would.
MAX_HEAD_BYTES = 64 * 1024
#: How long a positive password check is reused before the run's state is looked up again.
AUTH_CACHE_SECS = 5.0
CONNECT_TIMEOUT_SECS = 30.0
REALM = "jupyter-actors"
_PIPE_CHUNK = 64 * 1024
_USERNAME_PART = re.compile(r"^(groups|session|country)-([A-Za-z0-9._~+]{1,100})$")
_USER_PASSWORD_LOCK = threading.Lock()
_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}


@dataclass(frozen=True)
class ProxyEndpoint:
    """Where runs reach the proxy; its own address is also the status URL."""

    hostname: str
    port: int

    @property
    def status_url(self) -> str:
        return f"http://{self.hostname}:{self.port}"


def run_proxy_password(run: Run) -> str:
    """The run's proxy password: its id and a MAC of it under the hash of the run's API token.

    Derived, not stored: a restarted server recomputes it, and it never reveals the token.
    """
    mac = hmac.new(run["token_hash"].encode(), f"proxy:{run['id']}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{run['id']}_{mac}"


def proxy_environment(endpoint: ProxyEndpoint | None, run: Run) -> dict[str, str]:
    """The ``APIFY_PROXY_*`` variables of a run's container; none while no proxy is being served."""
    if endpoint is None:
        return {}
    return {
        "APIFY_PROXY_HOSTNAME": endpoint.hostname,
        "APIFY_PROXY_PORT": str(endpoint.port),
        "APIFY_PROXY_PASSWORD": run_proxy_password(run),
        "APIFY_PROXY_STATUS_URL": endpoint.status_url,
    }


@dataclass(frozen=True)
class ProxyOptions:
    """Apify's proxy username, parsed: ``auto`` or comma-separated ``groups-``, ``session-``, ``country-``."""

    groups: tuple[str, ...] = ()
    session: str | None = None
    country: str | None = None

    @classmethod
    def parse(cls, username: str) -> ProxyOptions:
        if username in ("", "auto"):
            return cls()
        values: dict[str, str] = {}
        for part in username.split(","):
            match = _USERNAME_PART.match(part)
            if match is None or match.group(1) in values:
                raise ValueError(
                    f"proxy username {username!r} is not understood: use 'auto' or comma-separated "
                    "'groups-NAME+NAME', 'session-ID' and 'country-CC' (as Apify Proxy does)."
                )
            values[match.group(1)] = match.group(2)
        groups = tuple(values["groups"].split("+")) if "groups" in values else ()
        return cls(groups=groups, session=values.get("session"), country=values.get("country"))


@dataclass(frozen=True)
class Upstream:
    """An HTTP proxy every outgoing connection goes through: ``http://[user:password@]host:port``."""

    host: str
    port: int
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"upstream_proxy {url!r} must be an HTTP proxy URL such as http://user:password@proxy.example:3128 "
                "(https:// and socks proxies are not supported)."
            )
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, parts.port or 3128, authorization)


@dataclass(frozen=True)
class Client:
    """Who a valid password belongs to: a run (``run_id``) or the user (None)."""

    run_id: str | None


class _LiveRun(Protocol):
    @property
    def runlog(self) -> RunLog: ...


class _LiveRuns(Protocol):
    @property
    def watchers(self) -> Mapping[str, _LiveRun]: ...


class ProxyPlatform(Protocol):
    """What the proxy needs of the platform (``core.Platform``): its registry, runs, and live runs' logs."""

    @property
    def registry(self) -> Registry: ...

    @property
    def runs(self) -> _LiveRuns: ...

    def get_run(self, run_id: str) -> Run: ...


class Credentials:
    """The passwords the proxy accepts: each live run's, and the user's. Also where notes go."""

    def __init__(self, platform: ProxyPlatform) -> None:
        self.platform = platform

    def user_password(self) -> str:
        """The user's proxy password (``users/me`` on the user API), made once per data directory."""
        registry = self.platform.registry
        with _USER_PASSWORD_LOCK:
            value: str | None = registry.get_meta("proxy_user_password")
            if value is None:
                value = "user_" + secrets.token_hex(16)
                registry.set_meta("proxy_user_password", value)
        return value

    def check(self, password: str) -> Client | None:
        """Blocking (SQLite): the client the password belongs to, or None."""
        if hmac.compare_digest(password.encode(), self.user_password().encode()):
            return Client(None)
        run_id, _, _ = password.partition("_")
        try:
            run = self.platform.get_run(run_id)
        except Exception:  # unknown run: simply not a valid password
            return None
        if RunStatus(run["status"]).is_terminal:
            return None
        if not hmac.compare_digest(password.encode(), run_proxy_password(run).encode()):
            return None
        return Client(run_id)

    def note(self, client: Client, text: str) -> None:
        """Blocking: a line in the run's log (the user has no log: the server log)."""
        if client.run_id is None:
            log.info("proxy: %s", text)
            return
        watcher = self.platform.runs.watchers.get(client.run_id)
        if watcher is not None:
            watcher.runlog.append([LogLine(time.time_ns(), f"[proxy] {text}")])


class Refused(OSError):
    """A destination the proxy will not connect to (answered 403)."""


class ProxyServer:
    """The forward proxy on ``host:port``, served on the running asyncio loop."""

    def __init__(self, credentials: Credentials, *, upstream: Upstream | None = None) -> None:
        self.credentials = credentials
        self.upstream = upstream
        self.endpoint: ProxyEndpoint | None = None
        self._server: asyncio.base_events.Server | None = None
        self._auth_cache: dict[str, tuple[float, Client]] = {}
        self._noted: set[tuple[str | None, tuple[str, ...], str | None]] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._starting: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    def start(self, host: str, port: int = 0, *, advertise_host: str | None = None,
              loop: asyncio.AbstractEventLoop | None = None) -> ProxyEndpoint:
        """Bind now (so the address is known at once) and serve on ``loop`` from its next turn.

        ``port`` 0 picks a free port; a taken port falls back to a free one.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            if not port:
                sock.close()
                raise
            sock.bind((host, 0))
        sock.listen(128)
        sock.setblocking(False)
        bound = sock.getsockname()[1]
        self.endpoint = ProxyEndpoint(advertise_host or host, bound)
        self._self_addresses = {(host, bound), (self.endpoint.hostname, bound)}
        loop = loop or asyncio.get_event_loop()
        self._sock = sock
        self._starting = loop.create_task(self._listen(sock))
        return self.endpoint

    async def _listen(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD_BYTES)
        self._starting = None

    def close(self) -> None:
        """Stop listening (connections under way finish on their own)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        elif self._sock is not None:
            self._sock.close()
        if self._starting is not None:
            self._starting.cancel()
            self._starting = None
        self._sock = None

    # -- one client connection -----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:  # one broken connection must not stop the proxy
            log.exception("proxy: connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        if head is None:
            return
        method, target, version, header_list = head
        headers = {name.lower(): value for name, value in header_list}
        is_connect = method == "CONNECT"
        host, port, path = _destination(method, target)
        if host is None:
            await _reply(writer, 400, "The request must name an absolute http:// URL, or CONNECT host:port.")
            return
        is_status = (host, port) in self._self_addresses
        client, problem = await self._authenticate(headers)
        if client is None:
            body = problem
            if is_status:  # what the SDKs' access check reads: it then says why
                body = json.dumps({"connected": False, "connectionError": problem, "isManInTheMiddle": False})
            await _reply(writer, 407, body, extra={"Proxy-Authenticate": f'Basic realm="{REALM}"'},
                         content_type="application/json" if is_status else "text/plain; charset=utf-8")
            return
        if is_status:
            if is_connect:  # a client that tunnels even plain http: answer inside the tunnel
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                if await _read_head(reader) is None:
                    return
            await self._status(writer, client)
            return
        if is_connect:
            await self._tunnel(reader, writer, host, port, version)
        else:
            await self._forward(reader, writer, method, target, version, header_list, host, port, path)

    async def _authenticate(self, headers: dict[str, str]) -> tuple[Client | None, str]:
        value = headers.get("proxy-authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return None, "Proxy authentication required: use http://auto:<APIFY_PROXY_PASSWORD>@host:port."
        try:
            username, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, "The Proxy-Authorization header is not valid Basic credentials."
        try:
            options = ProxyOptions.parse(unquote(username))
        except ValueError as error:
            return None, str(error)
        password = unquote(password)
        cached = self._auth_cache.get(password)
        now = time.monotonic()
        client: Client | None
        if cached is not None and now - cached[0] < AUTH_CACHE_SECS:
            client = cached[1]
        else:
            client = await asyncio.to_thread(self.credentials.check, password)
            if client is None:
                self._auth_cache.pop(password, None)
                return None, "Wrong proxy password: use the run's APIFY_PROXY_PASSWORD (valid while the run is live)."
            if len(self._auth_cache) > 1000:  # one entry per live run: drop the stale ones now and then
                self._auth_cache = {key: value for key, value in self._auth_cache.items()
                                    if now - value[0] < AUTH_CACHE_SECS}
            self._auth_cache[password] = (now, client)
        noted = (client.run_id, options.groups, options.country)  # sessions vary per request: not in the key
        if (options.groups or options.country) and noted not in self._noted:
            self._noted.add(noted)
            asked = ", ".join(filter(None, [f"groups {'+'.join(options.groups)}" if options.groups else "",
                                            f"country {options.country}" if options.country else ""]))
            route = "the upstream proxy" if self.upstream else "this machine's own connection"
            await asyncio.to_thread(self.credentials.note, client,
                                    f"Proxy options {asked} are accepted but ignored here: requests go out "
                                    f"through {route}.")
        return client, ""

    async def _status(self, writer: asyncio.StreamWriter, client: Client) -> None:
        body = json.dumps({
            "connected": True,
            "connectionError": None,
            "isManInTheMiddle": False,
            "groups": [],
            "upstream": bool(self.upstream),
            "runId": client.run_id,
        })
        await _reply(writer, 200, body, content_type="application/json")

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``host:port`` (direct), or to the upstream proxy.

        Direct connections never go to this machine's loopback: containers cannot reach it, and the
        proxy must not be the way around that (the Jupyter server listens there).
        """
        if self.upstream:
            target = (self.upstream.host, self.upstream.port)
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
            if not addresses or any(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
                raise Refused(f"{host} is this machine's loopback, which runs may not reach through the proxy.")
            target = (addresses[0], port)
        return await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT_SECS)

    async def _open_or_reply(self, writer: asyncio.StreamWriter, host: str,
                             port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The connection towards ``host:port``, or None once the client was told why there is none."""
        try:
            return await self._open(host, port)
        except Refused as error:
            await _reply(writer, 403, str(error))
        except (OSError, TimeoutError) as error:
            await _reply(writer, 502, f"Cannot connect to {host}:{port}: {error}.")
        return None

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int,
                      version: str) -> None:
        upstream = await self._open_or_reply(writer, host, port)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            if self.upstream:
                auth = f"Proxy-Authorization: {self.upstream.authorization}\r\n" if self.upstream.authorization else ""
                up_writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
                await up_writer.drain()
                answer = await _read_head(up_reader)
                status = int(answer[1]) if answer and answer[1].isdigit() else 502
                if answer is None or not 200 <= status < 300:
                    await _reply(writer, 502, f"The upstream proxy refused CONNECT {host}:{port} ({status}).")
                    return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, target: str,
                       version: str, headers: list[tuple[str, str]], host: str, port: int, path: str) -> None:
        upstream = await self._open_or_reply(writer, host, port)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            lines = [f"{method} {target if self.upstream else path} {version}"]
            lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
            if self.upstream and self.upstream.authorization:
                lines.append(f"Proxy-Authorization: {self.upstream.authorization}")
            lines.append("Connection: close")  # one request per connection: the end of the reply is EOF
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await up_writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, str, list[tuple[str, str]]] | None:
    """(method or version, target or status, version or reason, headers in order); None at EOF."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise
    if len(raw) > MAX_HEAD_BYTES:
        return None
    first, *rest = raw.decode("latin-1").split("\r\n")
    parts = first.split(" ", 2)
    if len(parts) < 3:
        parts += [""] * (3 - len(parts))
    headers = []
    for line in rest:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return parts[0], parts[1], parts[2], headers


def _destination(method: str, target: str) -> tuple[str | None, int, str]:
    """(host, port, origin-form path) of a proxied request; host None if it names none."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            return None, 0, ""
        return host.strip("[]"), int(port), ""
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        return None, 0, ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


async def _reply(writer: asyncio.StreamWriter, status: int, body: str, *, extra: dict[str, str] | None = None,
                 content_type: str = "text/plain; charset=utf-8") -> None:
    reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 407: "Proxy Authentication Required",
               502: "Bad Gateway"}
    data = body.encode()
    lines = [f"HTTP/1.1 {status} {reasons.get(status, 'Error')}", f"Content-Type: {content_type}",
             f"Content-Length: {len(data)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()


async def _pipe_both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                     up_writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until the far side is done (a client's half-close does not end the reply)."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(_PIPE_CHUNK):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if sink.can_write_eof():
                    sink.write_eof()

    upward = asyncio.ensure_future(pipe(reader, up_writer))
    try:
        await pipe(up_reader, writer)
    finally:
        upward.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await upward

