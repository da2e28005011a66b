"""Identifiers shaped like Apify's: 17 characters of [a-zA-Z0-9], unguessable."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_token() -> str:
    """A per-run API token: long enough that guessing is hopeless."""
    return "run_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the registry keeps of a run token: its sha256, so a copy of the registry grants nothing."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
