"""Timestamps in the one format Apify uses everywhere: UTC ISO 8601 with milliseconds and ``Z``."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(ts: dt.datetime | None) -> str | None:
    """``2017-10-13T14:23:37.281Z`` for an aware datetime; None stays None."""
    if ts is None:
        return None
    ts = ts.astimezone(dt.timezone.utc)
    # Not strftime: glibc's %Y does not pad years before 1000 to four digits ("90-09-28").
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts:%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def now_iso() -> str:
    return iso(utcnow())  # type: ignore[return-value]
