"""``GET /datasets/{id}/statistics``: per-field figures over every item, as Apify defines them.

Apify measures the fields of a dataset's schema; datasets here have no schema, so every top-level
field seen is measured. For a field: ``min``/``max`` of its numbers, string lengths, array lengths
and object key counts (booleans do not count), ``nullCount`` items where it is null and
``emptyCount`` items where it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .items import ItemsPage


@dataclass
class _Field:
    seen: int = 0
    nulls: int = 0
    low: float | None = None
    high: float | None = None

    def add(self, value: object) -> None:
        self.seen += 1
        if value is None:
            self.nulls += 1
            return
        if isinstance(value, bool):
            return
        measure = value if isinstance(value, (int, float)) else len(value) if isinstance(
            value, (str, list, dict)) else None
        if measure is not None:
            self.low = measure if self.low is None else min(self.low, measure)
            self.high = measure if self.high is None else max(self.high, measure)


def field_statistics(page: ItemsPage) -> dict[str, Any]:
    """``{"fieldStatistics": {field: {min, max, nullCount, emptyCount}}}`` over the page's items."""
    fields: dict[str, _Field] = {}
    total = 0
    for part in page.iter_raw_items():
        total += 1
        for key, value in orjson.loads(part).items():
            fields.setdefault(key, _Field()).add(value)
    return {"fieldStatistics": {
        key: {"min": field.low, "max": field.high, "nullCount": field.nulls, "emptyCount": total - field.seen}
        for key, field in fields.items()
    }}
