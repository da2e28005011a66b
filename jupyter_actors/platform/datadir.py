"""Who holds a data directory: one platform per directory, and where to reach the one that runs.

The process hosting a platform (a Jupyter server with the extension, or a CLI with no server to talk
to) holds an exclusive ``flock`` on ``platform.lock`` for as long as it runs; the kernel drops it when
the process dies, so a killed holder never blocks the next one. The lock file names its holder, for
the refusal a second process gets. A server also writes ``server.json`` (mode 0600: it holds a
credential for the user API) so a CLI uses that server over HTTP instead of hosting a second platform.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import PlatformError

LOCK_FILE = "platform.lock"
SERVER_FILE = "server.json"


class DataDirBusy(PlatformError):
    """Another live process hosts a platform on this data directory."""

    def __init__(self, data_dir: Path, holder: dict[str, Any]) -> None:
        who = holder.get("holder") or "another process"
        pid = f" (pid {holder['pid']})" if holder.get("pid") else ""
        since = f" since {holder['since']}" if holder.get("since") else ""
        super().__init__(
            f"The data directory {data_dir} is in use by {who}{pid}{since}; two platforms never share one. "
            "Wait for it to finish or stop it, use another --data-dir, or start `jupyter-actors serve` "
            "on this directory so the CLI and Lab share that server.", status=409, type="data-dir-busy")
        self.data_dir = data_dir
        self.holder = holder


class DataDirLock:
    """The exclusive hold on a data directory; ``acquire`` does not wait, it raises ``DataDirBusy``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, holder: str) -> DataDirLock:
        """Take the lock, recording ``holder`` (what the refusal of a second process names)."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PlatformError(f"Cannot lock the data directory {self.data_dir}: {exc.strerror} ({exc.filename}); "
                                "give a directory you can write to (--data-dir).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(self.data_dir, read_holder(self.data_dir)) from None
        record = {"holder": holder, "pid": os.getpid(),
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(data_dir: Path) -> dict[str, Any]:
    """What the holder wrote (empty while it is still writing, or if it is not ours)."""
    try:
        value = json.loads((Path(data_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ServerInfo:
    """How a CLI reaches the server that holds the directory: its user API and a credential for it.

    ``credential`` is made per server start and only opens the actors API (not the Jupyter server's
    kernels and terminals, as its token would); ``verify`` is a CA file for an HTTPS server, or true.
    """

    url: str
    credential: str
    pid: int
    verify: str | bool = True

    @staticmethod
    def new_credential() -> str:
        return secrets.token_urlsafe(32)


def write_server_info(data_dir: Path, info: ServerInfo) -> None:
    """Atomically, readable by the owner only (the credential must not leak to other local users)."""
    path = Path(data_dir) / SERVER_FILE
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(info), handle)
    os.replace(temporary, path)


def read_server_info(data_dir: Path) -> ServerInfo | None:
    """The server's file, or None when there is none or its process is gone (a killed server's leftover)."""
    try:
        value = json.loads((Path(data_dir) / SERVER_FILE).read_text())
        info = ServerInfo(url=str(value["url"]), credential=str(value["credential"]), pid=int(value["pid"]),
                          verify=value.get("verify", True))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def remove_server_info(data_dir: Path, info: ServerInfo | None = None) -> None:
    """Remove the file (only if it is still ``info``'s, when given: a later server may have replaced it)."""
    path = Path(data_dir) / SERVER_FILE
    if info is not None:
        try:
            if json.loads(path.read_text()).get("credential") != info.credential:
                return
        except (OSError, ValueError, AttributeError):
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
