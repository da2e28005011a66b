"""The three storage kinds, named as in Apify's local storage layout (and our on-disk directories)."""

from __future__ import annotations

from typing import Final, Literal

StorageKind = Literal["key_value_stores", "datasets", "request_queues"]

KEY_VALUE_STORES: Final = "key_value_stores"
DATASETS: Final = "datasets"
REQUEST_QUEUES: Final = "request_queues"
KINDS: Final[tuple[StorageKind, ...]] = (KEY_VALUE_STORES, DATASETS, REQUEST_QUEUES)

#: What error messages call each kind.
LABELS: Final[dict[str, str]] = {
    KEY_VALUE_STORES: "Key-value store",
    DATASETS: "Dataset",
    REQUEST_QUEUES: "Request queue",
}


def check_kind(kind: str) -> StorageKind:
    """A wrong kind is a programming error of the caller, not bad user input: ValueError."""
    if kind not in KINDS:
        raise ValueError(f"Unknown storage kind {kind!r}; use one of {', '.join(KINDS)}.")
    return kind
