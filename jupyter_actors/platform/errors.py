"""One exception tree for the platform; each error carries Apify's error type and an HTTP status.

The HTTP layer turns these into ``{"error": {"type": ..., "message": ...}}`` bodies unchanged, so the
message must say what to fix.
"""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """Base of every error the platform raises on purpose."""

    status: int = 500
    type: str = "internal-error"

    def __init__(self, message: str, *, type: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}


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
