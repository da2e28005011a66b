"""The global storage quota (``storage_quota_mb``): all storages together may not grow past it.

Usage is the size on disk of every storage file (with its WAL) and the catalog. Scanning thousands of
files on every write would cost more than the write, so a scan is reused for ``RESCAN_SECS`` and the
bytes accepted since are added to it; a deletion forces a new scan, so freed space counts at once.
A write is checked before it starts: one that would take usage past the quota is refused whole.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..errors import StorageQuotaExceeded
from .kinds import KINDS

MB = 2**20


class StorageQuota:
    RESCAN_SECS = 1.0

    def __init__(self, root: Path, limit_bytes: int) -> None:
        """``limit_bytes`` 0: no quota (nothing is measured)."""
        self.root = root
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._used = 0
        self._scanned_at: float | None = None

    def check(self, incoming: int, *, reserve: bool = True) -> None:
        """Raise StorageQuotaExceeded when ``incoming`` more bytes would not fit; else count them as used
        (unless ``reserve`` is False: a check ahead of several writes that each check again)."""
        if not self.limit_bytes:
            return
        with self._lock:
            now = time.monotonic()
            if self._scanned_at is None or now - self._scanned_at >= self.RESCAN_SECS:
                self._used, self._scanned_at = self.used_bytes(), now
            if self._used + incoming > self.limit_bytes:
                raise StorageQuotaExceeded(
                    f"The storages use {self._used / MB:.1f} MB of the storage quota of {self.limit_bytes / MB:g} MB "
                    f"(storage_quota_mb); this write of {incoming / MB:.2f} MB does not fit, and nothing of it was "
                    "stored. Free space by deleting storages or runs (with their default storages) you no longer "
                    "need, or raise storage_quota_mb, then send it again. Reading and deleting work as before.")
            if reserve:
                self._used += incoming

    def freed(self) -> None:
        """Something was deleted: measure again at the next check."""
        with self._lock:
            self._scanned_at = None

    def used_bytes(self) -> int:
        total = 0
        for folder in (self.root, *(self.root / kind for kind in KINDS)):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.endswith((".sqlite", ".sqlite-wal")):
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:  # deleted meanwhile
                        continue
        return total
