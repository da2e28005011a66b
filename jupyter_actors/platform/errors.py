"""One exception tree for the platform; each error carries Apify's error type and an HTTP status.

The HTTP layer turns these into ``{"error": {"type": ..., "message": ...}}`` bodies unchanged, so the
message must say what to fix.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""

    status: int = 500
    type: str = "internal-error"

    def __init__(self, message: str, *, type: str | None = None, status: int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Apify's ``error.data``: details a client reads (a refused push's ``invalidItems``).
        self.data = data
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"error": error}


class InvalidInput(PlatformError):
    """The caller sent something the platform refuses (bad memory value, input too large, ...)."""

    status = 400
    type = "invalid-input"


class NotFound(PlatformError):
    status = 404
    type = "record-not-found"


class Conflict(PlatformError):
    """The request is valid but not in the resource's current state (illegal lifecycle transition)."""

    status = 409
    type = "conflict"


class Forbidden(PlatformError):
    status = 403
    type = "insufficient-permissions"


class Unauthorized(PlatformError):
    status = 401
    type = "token-not-provided"


class MemoryLimitExceeded(PlatformError):
    """Starting would push the sum of running runs' and builds' memory over the user's limit."""

    status = 402
    type = "actor-memory-limit-exceeded"


class EngineUnavailable(PlatformError):
    """The container engine does not answer; the message says how to get one."""

    status = 503
    type = "engine-unavailable"


class BuildFailed(PlatformError):
    status = 400
    type = "build-failed"


class DiskFull(PlatformError):
    """A write failed because the data directory's disk is full; SQLite rolled it back, nothing is half-written."""

    status = 507
    type = "insufficient-storage"


class StorageLimitExceeded(PlatformError):
    """A write would make a storage larger than the platform's per-storage limit (``storage_max_mb``)."""

    status = 403
    type = "storage-limit-exceeded"


class StorageQuotaExceeded(PlatformError):
    """A write would take all storages together past the global storage quota (``storage_quota_mb``)."""

    status = 507
    type = "storage-quota-exceeded"


#: SQLite's result code for "database or disk is full".
SQLITE_FULL = 13


def disk_full(exc: BaseException) -> DiskFull | None:
    """The answer for a write that failed on a full disk (ENOSPC, a disk quota, SQLITE_FULL), else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({exc.filename})" if exc.filename else ""
    elif isinstance(exc, sqlite3.OperationalError) and (
            getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(exc)):
        where = ""
    else:
        return None
    return DiskFull(f"The disk of the platform's data directory is full{where}: nothing of this write was stored. "
                    "Free some space (delete runs or storages, or grow the disk) and send it again.")
