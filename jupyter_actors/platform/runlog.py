"""The platform's own copy of a run's log: every line the container printed, in order, none twice.

Each stored line is ``<UTC ISO ms timestamp> <text>`` (apify-client only forwards lines that start
with such a timestamp). The engine's log is only a buffer, so capture resumes from the stored tail.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import Counter
from pathlib import Path

from .backends.base import LogLine

_MS = 1_000_000


def ms_iso(ts_ns: int) -> str:
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // _MS:03d}Z"


def _parse_ms(stamp: str) -> int:
    when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


class RunLog:
    """Append-only log file of one run, with the bookkeeping that makes re-reading the engine safe.

    ``since_ns`` tells where to reopen the engine's log (``since`` is inclusive there) and the
    boundary counter holds the lines already stored at that instant, so re-delivered lines are skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._boundary_start, self._boundary_end, self._boundary = self._load_boundary()
        self._last_ns = self._boundary_start
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the life of the capture

    def _load_boundary(self) -> tuple[int, int, Counter]:
        """From the file's tail: the last millisecond written and the texts written within it."""
        tail = _read_tail_lines(self.path)
        if not tail:
            return 0, 0, Counter()
        last_stamp = tail[-1].split(" ", 1)[0]
        start = _parse_ms(last_stamp)
        texts = Counter(line.split(" ", 1)[1] if " " in line else "" for line in tail if line.startswith(last_stamp + " "))
        return start, start + _MS, texts

    @property
    def since_ns(self) -> int | None:
        return self._last_ns or None

    def append(self, lines: list[LogLine]) -> int:
        """Write the lines not stored yet; returns how many were written."""
        out = []
        for line in lines:
            if line.ts_ns < self._boundary_start:
                continue
            if line.ts_ns < self._boundary_end and self._boundary[line.text] > 0:
                self._boundary[line.text] -= 1
                continue
            if line.ts_ns != self._last_ns:  # a new instant: lines stored at it become the boundary
                self._boundary_start, self._boundary_end = line.ts_ns, line.ts_ns + 1
                self._boundary = Counter()
            self._boundary[line.text] += 1
            self._last_ns = line.ts_ns
            out.append(f"{ms_iso(line.ts_ns)} {line.text}\n")
        if out:
            with self._lock:
                self._file.write("".join(out).encode("utf-8"))
                self._file.flush()
        return len(out)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def discard(self) -> None:
        """Resurrection starts a fresh log (the seed: the existing run log is discarded)."""
        with self._lock:
            self._file.truncate(0)
            self._file.seek(0)
            self._boundary_start = self._boundary_end = self._last_ns = 0
            self._boundary = Counter()


def _read_tail_lines(path: Path, max_bytes: int = 256 * 1024) -> list[str]:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    if start > 0:
        lines = lines[1:]  # the first one may be cut
    return [line for line in lines if line]
