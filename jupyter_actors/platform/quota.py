"""The memory quota: running runs and builds together may not use more than the configured limit.

Admission (the quota check and the record that holds the memory) happens under one lock, so two
starts can never both fit into the last free megabytes.
"""

from __future__ import annotations

import threading

from .errors import MemoryLimitExceeded
from .stores import RunStore


class Admission:
    def __init__(self, runs: RunStore, limit_mb: int) -> None:
        self.runs = runs
        self.limit_mb = limit_mb
        #: Hold it from the quota check until the run or build record exists.
        self.lock = threading.Lock()
        self._builds: dict[str, int] = {}

    def memory_in_use(self) -> int:
        return self.runs.memory_in_use() + sum(self._builds.values())

    def check(self, memory_mb: int, *, what: str) -> None:
        """Raise MemoryLimitExceeded (saying what to do) when ``memory_mb`` more does not fit."""
        used = self.memory_in_use()
        limit = self.limit_mb
        if used + memory_mb > limit:
            raise MemoryLimitExceeded(
                f"Starting this {what} needs {memory_mb} MB, but {used} MB of your {limit} MB memory limit "
                f"is in use by running runs and builds ({limit - used} MB free). Wait for a run to finish, "
                "abort one, or start with less memory.",
            )

    def hold_build(self, build_id: str, memory_mb: int) -> None:
        self._builds[build_id] = memory_mb

    def release_build(self, build_id: str) -> None:
        self._builds.pop(build_id, None)
