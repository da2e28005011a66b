"""The optional ``kubernetes`` client (pip install 'jupyter-actors[kubernetes]') and its error types."""

from __future__ import annotations

try:
    import kubernetes
    import urllib3
    from kubernetes.client.exceptions import ApiException
except ImportError:  # pragma: no cover - exercised only without the extra
    kubernetes = None  # type: ignore[assignment]
    urllib3 = None  # type: ignore[assignment]

    class ApiException(Exception):  # type: ignore[no-redef]
        status: int | None = None


#: What reading a streamed response raises when it is closed from another thread or the API goes away.
STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, AttributeError)
if urllib3 is not None:
    STREAM_ERRORS += (urllib3.exceptions.HTTPError,)

__all__ = ["STREAM_ERRORS", "ApiException", "kubernetes", "urllib3"]
