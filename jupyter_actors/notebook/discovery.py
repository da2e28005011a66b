"""Where this kernel's jupyter-actors API is, and how to authenticate to it.

A kernel started by a Jupyter server learns it from three places, most specific first:
its parent server's runtime file (``jpserver-<ppid>.json``: the real connection URL, HTTPS or a unix
socket, base_url and token), the ``JUPYTER_ACTORS_*`` variables the extension exports, and on a
JupyterHub single-user server the hub's ``JUPYTERHUB_API_TOKEN``/``JUPYTERHUB_SERVICE_URL``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

URL_VARIABLE = "JUPYTER_ACTORS_API_URL"
TOKEN_VARIABLE = "JUPYTER_ACTORS_TOKEN"
# A CA bundle (or the server's own self-signed certfile) to verify an HTTPS server with.
CA_VARIABLE = "JUPYTER_ACTORS_CA_FILE"
HUB_TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"
HUB_URL_VARIABLE = "JUPYTERHUB_SERVICE_URL"
HUB_PREFIX_VARIABLE = "JUPYTERHUB_SERVICE_PREFIX"
API_PATH = "actors/api"


@dataclass(frozen=True)
class Endpoint:
    """An HTTP(S) URL of the API, the unix socket to reach it through (if any), and the token."""

    url: str
    token: str = ""
    uds: str | None = None
    verify: str | bool = True


def split_socket_url(url: str) -> tuple[str, str | None]:
    """``http+unix://%2Fpath%2Fsock/base/`` -> (``http://localhost/base/``, ``/path/sock``)."""
    parts = urlsplit(url)
    if parts.scheme != "http+unix":
        return url, None
    return urlunsplit(("http", "localhost", parts.path, parts.query, "")), unquote(parts.netloc)


def parent_server(runtime_dir: str | None = None) -> dict | None:
    """The runtime info of the Jupyter server that started this process, if it wrote one."""
    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir
        except ImportError:
            return None
        runtime_dir = jupyter_runtime_dir()
    pids = [os.environ.get("JPY_PARENT_PID"), str(os.getppid())]
    for pid in filter(None, pids):
        try:
            info = json.loads((Path(runtime_dir) / f"jpserver-{pid}.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("url"):
            return info
    return None


def _api_url(server_url: str) -> str:
    return server_url.rstrip("/") + "/" + API_PATH


def _is_server_default(env_url: str, server: dict) -> bool:
    """Whether the exported URL is the extension's loopback guess at this same server (port and path)."""
    parts = urlsplit(env_url)
    return (parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.port == server.get("port")
            and parts.path.rstrip("/") == _api_url(server.get("base_url") or "/").rstrip("/"))


def discover(environ: dict[str, str] | None = None, server: dict | None = None) -> Endpoint | None:
    """This kernel's endpoint, or None when nothing says where a server is."""
    env = os.environ if environ is None else environ
    env_url = env.get(URL_VARIABLE) or ""
    if server is not None and (not env_url or _is_server_default(env_url, server)):
        url = _api_url(server["url"])
        if env_url and urlsplit(url).scheme == urlsplit(env_url).scheme:
            url = env_url  # the same server reached the same way: keep the address the extension exported
        # On a hub the hub issues the tokens: its token for this server beats the server's own one.
        token = env.get(HUB_TOKEN_VARIABLE) or env.get(TOKEN_VARIABLE) or server.get("token") or ""
    elif env_url:  # a server named by hand gets its own token only, never this server's or the hub's
        url, token = env_url, env.get(TOKEN_VARIABLE) or ""
    elif env.get(HUB_URL_VARIABLE):
        url, token = _api_url(env[HUB_URL_VARIABLE]), env.get(HUB_TOKEN_VARIABLE) or ""
    else:  # a hub prefix alone does not say where the single-user server listens
        return None
    http_url, uds = split_socket_url(url)
    return Endpoint(http_url, token, uds, env.get(CA_VARIABLE) or True)
