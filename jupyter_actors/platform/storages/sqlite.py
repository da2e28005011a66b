"""One SQLite file shared by threads and processes: WAL, busy timeout, versioned schema, lazy (re)open.

SQLite gives every storage what it needs: a returned write survives ``kill -9`` (WAL), a crash never
leaves half a transaction, and several threads or server processes can write one file (file locks
plus ``busy_timeout``). Each process keeps one connection per file, serialised by a lock.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from ..clock import iso, utcnow
from ..errors import SQLITE_FULL, StorageLimitExceeded

#: How long a writer waits for another process's write lock before SQLite gives up.
BUSY_TIMEOUT_SECS = 60.0
#: Longest pause between two attempts to open a file that another process holds (see ``connect_wal``).
OPEN_RETRY_MAX_SECS = 0.1
#: After a checkpoint, truncate the WAL back to this size so one big write does not keep disk forever.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class StorageGone(Exception):
    """The file belongs to a storage that was deleted; the manager turns this into NotFound."""


class Database:
    """A SQLite file with a schema upgraded through ``MIGRATIONS`` (``PRAGMA user_version``).

    The connection is opened on first use and may be closed at any time (``close``): the next call
    reopens it, so a cache can drop idle files safely. ``destroy`` closes for good and removes the files.
    """

    #: Entry i upgrades the schema from version i to i + 1. Never edit a released entry: append.
    MIGRATIONS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: Path, *, fsync: bool = False, may_create: Callable[[], bool] | None = None,
                 max_bytes: int = 0) -> None:
        """``may_create`` is asked before a missing file is created; returning False means "deleted".
        ``max_bytes`` (0: none) caps the file's size: SQLite's own page limit, so a write over it fails
        whole, inside its transaction, and is refused with ``StorageLimitExceeded``."""
        self.path = path
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._may_create = may_create
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._gone = False

    # -- transactions ------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-check-write is atomic."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                _rollback(conn)
                if isinstance(exc, sqlite3.OperationalError) and self._hit_cap(conn, exc):
                    raise StorageLimitExceeded(
                        f"The write would make this storage larger than the limit of "
                        f"{self._max_bytes / 2**20:g} MB per storage (storage_max_mb): nothing of it was stored. "
                        "Delete what you no longer need from the storage, or write to another one."
                    ) from None
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same snapshot."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                _rollback(conn)  # nothing to keep: ending a read transaction either way is the same

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement outside any explicit transaction (SQLite runs it on its own snapshot)."""
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    # -- life cycle --------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def destroy(self) -> None:
        """Close for good and delete the database with its WAL and shared-memory files."""
        with self._lock:
            self._gone = True
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def disk_bytes(self) -> int:
        """Bytes on disk including the WAL (which holds recent writes until a checkpoint)."""
        total = 0
        for suffix in ("", "-wal"):
            with suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    # -- internals ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._gone:
            raise StorageGone(str(self.path))
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            if self._may_create is not None and not self._may_create():
                raise StorageGone(str(self.path))
            self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect_wal(self.path, timeout=BUSY_TIMEOUT_SECS, setup=self._setup)

    def _setup(self, conn: sqlite3.Connection) -> None:
        # NORMAL in WAL mode: a committed write survives a process crash; FULL also survives power loss.
        conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        self._migrate(conn)
        if self._max_bytes:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(1, self._max_bytes // page_size)}")

    def _hit_cap(self, conn: sqlite3.Connection, exc: sqlite3.OperationalError) -> bool:
        """Whether SQLITE_FULL came from ``max_bytes`` rather than a full disk: the disk has room for the
        storage to reach its cap, so the cap stopped the write."""
        if not self._max_bytes or getattr(exc, "sqlite_errorcode", None) != SQLITE_FULL:
            return False
        page_size, pages = (int(conn.execute(f"PRAGMA {name}").fetchone()[0]) for name in ("page_size", "page_count"))
        return shutil.disk_usage(self.path.parent).free > self._max_bytes - page_size * pages

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(self.MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this jupyter-actors knows "
                    f"({len(self.MIGRATIONS)}); upgrade jupyter-actors to open it."
                )
            for index in range(version, len(self.MIGRATIONS)):
                for statement in self.MIGRATIONS[index].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {index + 1}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def connect_wal(
    path: Path, *, timeout: float, setup: Callable[[sqlite3.Connection], None], **options: Any
) -> sqlite3.Connection:
    """Connect to ``path`` in WAL mode and run ``setup`` on the new connection (pragmas, migrations).

    Switching to WAL, WAL recovery and the checkpoint of another process's last close take locks that
    SQLite's busy handler does not wait for, so a process opening a file another one is opening or
    closing gets "database is locked" at once. Those attempts are retried with a growing, jittered
    pause until ``timeout``; the journal mode is only switched when the file is not in WAL already.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        conn: sqlite3.Connection = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                                   check_same_thread=False, **options)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            setup(conn)
            return conn
        except sqlite3.OperationalError as error:
            conn.close()
            if not _is_busy(error) or time.monotonic() + pause > deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(pause * random.uniform(0.5, 1.5))  # back off; jitter keeps openers out of step
        pause = min(pause * 2, OPEN_RETRY_MAX_SECS)


#: SQLite's primary result codes for a locked database (``sqlite3`` names them from Python 3.11 only).
SQLITE_BUSY, SQLITE_LOCKED = 5, 6

def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (``sqlite_errorcode`` exists from Python 3.11; the message before)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class StorageFile(Database):
    """The file of one storage. Every schema has a one-row ``state`` table with ``modified_at``."""

    def metadata(self) -> dict[str, Any]:
        """Counters and ``modifiedAt`` for the storage's API object (camelCase keys)."""
        raise NotImplementedError

    @staticmethod
    def mark_modified(conn: sqlite3.Connection) -> None:
        """Record a content change in the same transaction as the change itself."""
        conn.execute("UPDATE state SET modified_at = ?", (iso(utcnow()),))
