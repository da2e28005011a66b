"""A Job's log: its pods' logs in order, read with ``timestamps=true`` and deduplicated at pod boundaries.

Reading never changes the cluster: a followed pod that will never start ends the stream, and the
backend's ``inspect`` then reports why (its watcher fails the run and removes the Job).
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from urllib3 import HTTPResponse

from ..base import LogLine, LogStream
from .client import STREAM_ERRORS, ApiException
from .jobs import (
    CONTAINER,
    _container_status,
    _pod_done,
    _terminated,
    _time,
    _waiting_to_start,
    timestamp_ns,
)

log = logging.getLogger(__name__)


class JobPods(Protocol):
    """What the log reader needs from the backend (``backend.KubernetesBackend``)."""

    namespace: str
    core: Any
    poll_interval_secs: float
    log_since_margin_secs: int

    def _job_pods(self, name: str, uid: str | None = None) -> list[dict[str, Any]]: ...

    def _job_over(self, name: str) -> bool: ...

    def _cannot_start(self, pod: dict[str, Any]) -> str | None: ...


def _iter_lines(response: HTTPResponse) -> Iterator[bytes]:
    """Lines of a streamed urllib3 response, as they arrive (chunked) or block by block."""
    pending = b""
    chunks = response.stream(amt=None) if getattr(response, "chunked", False) else response.stream(65536)
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _shutdown(response: Any) -> None:
    """Unblock a thread reading ``response``: shut its socket down, then close it (``Any``: it digs
    into the private attributes of urllib3's and http.client's responses, whichever it finds)."""
    sock = None
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    if connection is not None:
        sock = getattr(connection, "sock", None)
    if sock is None:
        try:
            sock = response._fp.fp.raw._sock  # http.client response over a socket
        except AttributeError:
            sock = None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):  # closing a dead connection must not raise
        response.close()


class KubernetesLogStream(LogStream):
    """LogLines of a Job's pods in order (a replaced pod's, then its replacement's).

    ``close()`` from another thread unblocks the reader (the response's socket is shut down).
    """

    def __init__(self, backend: JobPods, name: str, since_ns: int | None, follow: bool) -> None:
        self._backend = backend
        self._name = name
        self._since = since_ns or 0
        self._follow = follow
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: HTTPResponse | None = None

    def __iter__(self) -> Iterator[LogLine]:
        try:
            yield from self._lines()
        except Exception:
            if not self._closed.is_set():
                raise
        finally:
            self._forget_response()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            _shutdown(response)

    # --

    def _pause(self) -> bool:
        """Wait one poll interval; False when closed meanwhile."""
        return not self._closed.wait(self._backend.poll_interval_secs)

    def _lines(self) -> Iterator[LogLine]:
        done: set[str] = set()
        followed_to_end: set[str] = set()
        position: dict[str, tuple[int, int]] = {}  # pod -> (last ts yielded, lines yielded at it)
        while not self._closed.is_set():
            pods = [p for p in self._backend._job_pods(self._name) if p["metadata"]["name"] not in done]
            if not pods:
                if not self._follow or self._backend._job_over(self._name):
                    return
                if not self._pause():
                    return
                continue
            pod = pods[0]
            name = pod["metadata"]["name"]
            if _waiting_to_start(pod):
                if not self._follow:
                    return
                if self._backend._cannot_start(pod):
                    return  # no line will ever come; ``inspect`` says why
                if not self._pause():
                    return
                continue
            finished = _pod_done(pod)
            never_ran = not {"running", "terminated"} & set(_container_status(pod).get("state") or {})
            if finished and (name in followed_to_end or never_ran or self._ended_before_since(pod)):
                done.add(name)
                continue
            if name in followed_to_end and not self._pause():
                return  # its stream ended but it is not seen finished yet: give the kubelet a moment
            follow = self._follow and not finished
            # A pod read again (its stream broke while it ran) repeats what was yielded: skip that.
            resume_ts, resume_count = position.get(name, (0, 0))
            response = self._open(name, follow, max(self._since, resume_ts))
            if response is None:  # not readable (waiting, gone): look again
                if not self._follow or finished:
                    done.add(name)
                elif not self._pause():
                    return
                continue
            ended = False
            skipping, to_skip = resume_ts > 0, resume_count
            last_ts, count = resume_ts, resume_count
            try:
                for raw in _iter_lines(response):
                    line = self._parse(raw, last_ts)
                    if line is None or line.ts_ns < self._since:
                        continue
                    if skipping:
                        if line.ts_ns < resume_ts:
                            continue
                        if line.ts_ns == resume_ts and to_skip > 0:
                            to_skip -= 1
                            continue
                        skipping = False
                    last_ts, count = (last_ts, count + 1) if line.ts_ns == last_ts else (line.ts_ns, 1)
                    position[name] = (last_ts, count)
                    yield line
                ended = True
            except STREAM_ERRORS:
                if self._closed.is_set():
                    return
            finally:
                self._forget_response()
            if self._closed.is_set():
                return
            if not follow:
                done.add(name)
            elif ended:
                followed_to_end.add(name)  # done once the pod is seen finished; read again if it runs

    def _ended_before_since(self, pod: dict[str, Any]) -> bool:
        """Every line of a pod that finished more than a second before ``since`` is older than it."""
        finished = _time((_terminated(pod) or {}).get("finishedAt"))
        return bool(self._since and finished and finished.timestamp() * 1e9 + 1e9 <= self._since)

    def _open(self, pod: str, follow: bool, since_ns: int) -> HTTPResponse | None:
        kwargs: dict[str, Any] = {"container": CONTAINER, "follow": follow, "timestamps": True,
                                  "_preload_content": False}
        if since_ns:
            age = time.time() - since_ns / 1e9
            kwargs["since_seconds"] = max(1, math.ceil(age) + self._backend.log_since_margin_secs)
        if not follow:  # a followed log may stay quiet for hours: no read timeout then
            kwargs["_request_timeout"] = (10, 120)
        try:
            response: HTTPResponse = self._backend.core.read_namespaced_pod_log(  # raw: _preload_content=False
                pod, self._backend.namespace, **kwargs)
        except ApiException as exc:
            if exc.status in (400, 404):  # waiting to start (ContainerCreating) or gone
                return None
            raise
        with self._lock:
            if self._closed.is_set():
                _shutdown(response)
                return None
            self._response = response
        return response

    def _forget_response(self) -> None:
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()

    @staticmethod
    def _parse(raw: bytes, previous_ts: int) -> LogLine | None:
        stamp, _, text = raw.partition(b" ")
        text_str = text.decode("utf-8", errors="replace").rstrip("\r")
        try:
            return LogLine(timestamp_ns(stamp.decode("ascii", errors="replace")), text_str)
        except ValueError:
            # Not a timestamped line (the kubelet writes some errors in-band): keep it in place.
            whole = raw.decode("utf-8", errors="replace").rstrip("\r")
            return LogLine(previous_ts, whole) if previous_ts else None


# -- the backend -----------------------------------------------------------------------------------------
