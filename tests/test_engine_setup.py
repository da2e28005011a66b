"""ensure_engine against the real engine, and its refusal to start a daemon for a remote URL."""

from __future__ import annotations

import os
import shutil

import docker
import pytest

from jupyter_actors.platform.engine_setup import (
    BOOTSTRAP_TOOLS,
    _no_engine_message,
    ensure_debootstrap,
    ensure_engine,
)
from jupyter_actors.platform.errors import EngineUnavailable


def _engine_answers() -> bool:
    try:
        return docker.from_env(version="auto").ping()
    except Exception:
        return False


def test_ensure_engine_returns_a_client_that_pings() -> None:
    if not _engine_answers() and os.geteuid() != 0:
        pytest.skip("no Docker engine answers and not root, so none can be installed/started")
    lines: list[str] = []
    client = ensure_engine(log=lines.append)
    assert client.ping() is True
    assert client.version()["ApiVersion"]


def test_unreachable_url_is_not_fixed_by_a_local_daemon(tmp_path) -> None:
    url = f"unix://{tmp_path}/nothing-listens.sock"
    with pytest.raises(EngineUnavailable, match="No Docker engine answers") as info:
        ensure_engine(url, log=pytest.fail)
    assert info.value.status == 503


def test_no_install_means_a_clear_message() -> None:
    if _engine_answers():
        # With an engine answering, ensure_engine just returns it, even with install=False.
        assert ensure_engine(install=False).ping()
    message = _no_engine_message("unix:///var/run/docker.sock")
    assert "Install Docker Engine" in message and "DOCKER_HOST" in message


def test_ensure_debootstrap_finds_a_bootstrap_tool() -> None:
    if not any(shutil.which(t) for t in BOOTSTRAP_TOOLS) and os.geteuid() != 0:
        pytest.skip("no bootstrap tool and not root to install one")
    assert os.path.basename(ensure_debootstrap(log=lambda _: None)) in BOOTSTRAP_TOOLS
