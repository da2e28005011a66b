"""One exception tree for the notebook side: every failure a user sees is an ``ActorsError``.

Messages are plain sentences (mostly the server's own error message); in IPython they are shown
without a Python traceback, because the traceback of an HTTP call says nothing useful.
"""

from __future__ import annotations


class ActorsError(Exception):
    """The root of every error raised by the notebook client."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting a traceback.
        return [f"{type(self).__name__}: {self}"]


class ServerNotFound(ActorsError):
    """No server is configured, or the configured one does not answer."""


class ApiError(ActorsError):
    """The server refused a request; ``status`` and ``type`` are Apify's error fields."""

    def __init__(self, message: str, *, status: int, type: str = "") -> None:  # Apify's name
        super().__init__(message)
        self.status = status
        self.type = type


class NotFoundError(ApiError):
    """The actor, run, build or storage does not exist (HTTP 404)."""


class InvalidInputError(ApiError):
    """The server rejected a value (HTTP 400): a bad memory size, malformed input, ..."""


class BuildFailed(ActorsError):
    """An actor's image did not build; the message ends with the build log's last lines."""


class InputValidationError(ActorsError):
    """Run input does not match the actor's input schema (checked before starting)."""
