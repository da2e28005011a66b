"""The account's figures (Apify's ``/users/me/limits`` and ``/usage/monthly``): its memory quota, which
the user may change, and what it used in a month, from the run and build records.

Compute units are Apify's: memory in GB times hours, counted for a run or build on the day it started.
Nothing here is charged, so every amount in dollars is 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .clock import iso, parse_iso, utcnow
from .errors import InvalidInput
from .limits import MIN_MEMORY_MB
from .quota import Admission
from .stores import Stores

MEMORY_LIMIT_META = "memory_limit_mb"


@dataclass(frozen=True)
class Limits:
    memory_limit_mb: int
    memory_in_use_mb: int
    actor_count: int
    task_count: int
    schedule_count: int
    active_job_count: int
    retention_days: float
    month_compute_units: float


@dataclass
class DayUsage:
    date: dt.date
    compute_units: float = 0.0
    runs: int = 0
    builds: int = 0


@dataclass(frozen=True)
class MonthlyUsage:
    start: dt.datetime
    end: dt.datetime  # the cycle's last millisecond
    days: list[DayUsage] = field(default_factory=list)  # only days with usage, oldest first

    @property
    def compute_units(self) -> float:
        return sum(day.compute_units for day in self.days)

    @property
    def runs(self) -> int:
        return sum(day.runs for day in self.days)

    @property
    def builds(self) -> int:
        return sum(day.builds for day in self.days)


def month_cycle(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) holding ``day``: its first instant and its last millisecond."""
    start = dt.datetime(day.year, day.month, 1, tzinfo=dt.timezone.utc)
    following = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
    return start, following - dt.timedelta(milliseconds=1)


def compute_units(memory_mb: int, started_at: str | None, finished_at: str | None, now: dt.datetime) -> float:
    """As a run's ``stats.computeUnits``: GB of memory times hours from start to end (or now)."""
    started = parse_iso(started_at)
    if started is None:
        return 0.0
    seconds = max(((parse_iso(finished_at) or now) - started).total_seconds(), 0.0)
    return memory_mb / 1024 * seconds / 3600


class Account:
    def __init__(self, stores: Stores, admission: Admission, *, retention_days: float) -> None:
        self.stores = stores
        self.admission = admission
        self.retention_days = retention_days
        stored = stores.get_meta(MEMORY_LIMIT_META)
        if stored is not None:  # set through the API: it outlives restarts
            admission.limit_mb = int(stored)

    def limits(self) -> Limits:
        now = utcnow()
        return Limits(
            memory_limit_mb=self.admission.limit_mb, memory_in_use_mb=self.admission.memory_in_use(),
            actor_count=len(self.stores.actors.all()), task_count=len(self.stores.tasks.all()),
            schedule_count=len(self.stores.schedules.all()),
            active_job_count=self.stores.runs.active_count() + self.stores.builds.active_count(),
            retention_days=self.retention_days, month_compute_units=self.monthly_usage(now.date()).compute_units)

    def set_memory_limit(self, memory_mb: int) -> None:
        """The quota of memory running runs and builds may hold together; kept across restarts."""
        if memory_mb < MIN_MEMORY_MB:
            raise InvalidInput(f"The memory limit must be at least {MIN_MEMORY_MB} MB (the smallest run); "
                               f"got {memory_mb} MB.")
        self.stores.set_meta(MEMORY_LIMIT_META, str(memory_mb))
        self.admission.limit_mb = memory_mb

    def monthly_usage(self, day: dt.date | None = None) -> MonthlyUsage:
        """The usage of the calendar month holding ``day`` (default: today), day by day."""
        now = utcnow()
        start, end = month_cycle(day or now.date())
        by_day: dict[dt.date, DayUsage] = {}
        after, before = iso(start), iso(end + dt.timedelta(milliseconds=1))
        assert after is not None and before is not None
        for kind, rows in (("runs", self.stores.runs.started_between(after, before)),
                           ("builds", self.stores.builds.started_between(after, before))):
            for row in rows:
                started = parse_iso(row["started_at"])
                assert started is not None
                usage = by_day.setdefault(started.date(), DayUsage(started.date()))
                usage.compute_units += compute_units(row["memory_mb"], row["started_at"], row["finished_at"], now)
                setattr(usage, kind, getattr(usage, kind) + 1)
        return MonthlyUsage(start, end, [by_day[date] for date in sorted(by_day)])
