"""The platform's own copy of a run's log: every line the container printed, in order, none twice.

Each stored line is ``<UTC ISO ms timestamp> <text>`` (apify-client only forwards lines that start
with such a timestamp). The engine's log is only a buffer, so capture resumes from the stored tail.
"""

from __future__ import annotations

import datetime as dt
import functools
import contextlib
import os
import threading
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from .backends.base import LogLine

_MS = 1_000_000


@functools.lru_cache(maxsize=64)
def _second_iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def run_log_path(logs_dir: Path, run_id: str) -> Path:
    """Where a run's log is kept in the data dir's ``logs``."""
    return logs_dir / f"run-{run_id}.log"


def ms_iso(ts_ns: int) -> str:
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return f"{_second_iso(seconds)}.{rest // _MS:03d}Z"


def _parse_ms(stamp: str) -> int:
    when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


class RunLog:
    """Append-only log file of one run, with the bookkeeping that makes re-reading the engine safe.

    The engine's ``since`` is inclusive, so a re-read delivers again the lines stored at the last
    instant. ``resume()`` arms a multiset of those lines; ``append`` skips exactly that many copies.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._lock = threading.Lock()
        # The last instant written ([start, end) in ns) and the texts written within it.
        self._last_start, self._last_end, self._stored = self._load_boundary()
        self._skip: Counter[str] = Counter()
        self._skip_start = self._skip_end = 0
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the life of the capture

    def _load_boundary(self) -> tuple[int, int, Counter[str]]:
        """From the file's tail: the last millisecond written and the texts written within it."""
        tail = _read_tail_lines(self.path)
        if not tail:
            return 0, 0, Counter()
        last_stamp = tail[-1].split(" ", 1)[0]
        start = _parse_ms(last_stamp)
        texts = Counter(line.split(" ", 1)[1] if " " in line else ""
                        for line in tail if line.startswith(last_stamp + " "))
        return start, start + _MS, texts

    def resume(self) -> int | None:
        """Where to re-read the engine's log from (None: the start), with de-duplication armed."""
        self._skip = Counter(self._stored)
        self._skip_start, self._skip_end = self._last_start, self._last_end
        return self._last_start or None

    def append(self, lines: list[LogLine]) -> int:
        """Write the lines not stored yet; returns how many were written."""
        skip, skip_start, skip_end = self._skip, self._skip_start, self._skip_end
        kept = []
        for line in lines:
            if line.ts_ns < skip_end:
                if line.ts_ns < skip_start:
                    continue  # before the resume point: stored long ago
                if skip[line.text] > 0:
                    skip[line.text] -= 1
                    continue
            kept.append(line)
        if not kept:
            return 0
        out, stamp_ms, stamp = [], -1, ""
        for line in kept:
            ms = line.ts_ns // _MS
            if ms != stamp_ms:  # consecutive lines mostly share a millisecond: format it once
                stamp_ms, stamp = ms, ms_iso(line.ts_ns)
            out.append(f"{stamp} {line.text}\n")
        with self._lock:
            self._write_whole("".join(out).encode("utf-8"))
            self._remember_last_instant(kept)
            if self.max_bytes and self._file.tell() > self.max_bytes:
                self._keep_tail()
        return len(kept)

    def _write_whole(self, data: bytes) -> None:
        """Append all of ``data`` or nothing: on a failed write (a full disk) the file is cut back to where it
        was, so no torn line glues onto the next one and the next capture resumes from the last whole line."""
        start = self._file.tell()
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), start)
            raise

    def _remember_last_instant(self, kept: list[LogLine]) -> None:
        """The texts written at the newest instant: a re-read from there must skip exactly these."""
        last = kept[-1].ts_ns
        texts: Counter[str] = Counter()
        for line in reversed(kept):
            if line.ts_ns != last:
                break
            texts[line.text] += 1
        if kept[0].ts_ns == last and self._last_start <= last < self._last_end:
            texts += self._stored  # the batch continued the instant the previous one ended in
        self._last_start, self._last_end, self._stored = last, last + 1, texts

    def _keep_tail(self) -> None:
        """Past the cap, keep the newest half and say how much was dropped (written atomically)."""
        assert self.max_bytes is not None
        self._file.close()
        data = self.path.read_bytes()
        tail = data[-(self.max_bytes // 2):]
        tail = tail[tail.find(b"\n") + 1:]
        dropped = len(data) - len(tail)
        first_stamp = tail.split(b" ", 1)[0].decode() if tail else ms_iso(self._last_start)
        notice = (f"{first_stamp} [jupyter-actors] This log reached its size limit of "
                  f"{self.max_bytes / 2**20:g} MB: its first {dropped:,} bytes were dropped.\n").encode()
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(notice + tail)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        fsync_directory(self.path.parent)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def discard(self) -> None:
        """Resurrection starts a fresh log (the seed: the existing run log is discarded)."""
        with self._lock:
            self._file.truncate(0)
            self._file.seek(0)
            self._last_start = self._last_end = self._skip_start = self._skip_end = 0
            self._stored, self._skip = Counter(), Counter()


class LogFollower:
    """Reads a run log's new complete lines, keeping its place when the tail is rotated.

    ``_keep_tail`` swaps in a shorter file (a new inode); a byte offset into the old one would skip
    or split lines. On a new inode, or a file shorter than the offset, the follower finds the last
    line it delivered in the new file and goes on after it (from the start, with the notice, when
    that line was dropped).
    """

    def __init__(self, path: Path, limit: int = 1 << 20) -> None:
        self.path = path
        self.limit = limit
        self.position = 0
        self.inode: int | None = None
        self.last_line = b""

    def read(self) -> bytes:
        """Up to ``limit`` bytes of new complete lines (b"" when there are none yet)."""
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                if self.inode is not None and (stat.st_ino != self.inode or stat.st_size < self.position):
                    self.position = self._place_in(handle)
                self.inode = stat.st_ino
                handle.seek(self.position)
                data = handle.read(self.limit)
        except FileNotFoundError:
            return b""
        end = data.rfind(b"\n")
        if end < 0:
            return b""
        data = data[: end + 1]
        self.position += len(data)
        self.last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        return data

    def _place_in(self, handle: BinaryIO) -> int:
        """Where the new file goes on after the last line delivered (0 when it is not there)."""
        if not self.last_line:
            return 0
        data = handle.read()
        found = data.rfind(self.last_line)
        return found + len(self.last_line) if found >= 0 else 0


def fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable: the new name is in the directory only once it is synced."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _cut_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (a crash mid-append): the engine delivers it again, whole, from the
    instant of the last whole line."""
    try:
        with open(path, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            start = max(0, size - 256 * 1024)
            handle.seek(start)
            data = handle.read()
            handle.truncate(start + data.rfind(b"\n") + 1 if b"\n" in data else start)
    except FileNotFoundError:
        return


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
