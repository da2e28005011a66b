"""Apify's rules for storage names and record keys, checked before anything is written."""

from __future__ import annotations

import re
from typing import Final

from ..errors import InvalidInput

#: crawlee's ``validate_storage_name`` pattern; the SDK rejects any other name coming back from the API.
NAME_PATTERN: Final = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?")
MAX_NAME_LENGTH: Final = 256

#: Apify's record-key rule: 1..256 characters of ``a-zA-Z0-9!-_.'()``. No ``/``, so no path tricks.
KEY_PATTERN: Final = re.compile(r"[a-zA-Z0-9!\-_.'()]{1,256}")
#: Every allowed key character sorts below this one, so ``prefix <= key < prefix + KEY_UPPER_BOUND``.
KEY_UPPER_BOUND: Final = "{"

#: Largest record accepted. Apify documents 9 MB for a record sent through the API; we allow much more
#: because notebooks store DataFrames and models, but keep a cap so one PUT cannot fill the disk.
MAX_RECORD_BYTES: Final = 100 * 1024 * 1024


def validate_name(name: object) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"Storage name {name!r} is not allowed: use letters, digits and hyphens, starting and ending "
            f"with a letter or digit (at most {MAX_NAME_LENGTH} characters), for example 'my-dataset-1'."
        )
    return name


MAX_TITLE_LENGTH: Final = 1000


def validate_title(title: object) -> str | None:
    """A storage title: free text (Apify's display name), or None for none."""
    if title is None:
        return None
    if not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH or any(ord(ch) < 32 for ch in title):
        raise InvalidInput(f"title must be text of at most {MAX_TITLE_LENGTH} characters without control "
                           "characters (or null).")
    return title


def validate_key(key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InvalidInput(
            f"Record key {key!r} is not allowed: use 1 to 256 characters of a-z, A-Z, 0-9 and !-_.'() "
            "(no slashes or spaces), for example 'OUTPUT' or 'page-1.html'."
        )
    return key


def validate_record_size(size: int) -> None:
    if size > MAX_RECORD_BYTES:
        raise InvalidInput(
            f"The record is {size} bytes; a record may be at most {MAX_RECORD_BYTES} bytes "
            f"({MAX_RECORD_BYTES // (1024 * 1024)} MiB). Split it into several records or use a dataset."
        )


def validate_offset(offset: object) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"offset must be a whole number of at least 0; got {offset!r}.")
    return offset


def validate_limit(limit: object, *, ceiling: int | None = None) -> int | None:
    """None stays None (no limit); otherwise a whole number >= 0, capped at ``ceiling`` if given."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"limit must be a whole number of at least 0; got {limit!r}.")
    return limit if ceiling is None else min(limit, ceiling)
