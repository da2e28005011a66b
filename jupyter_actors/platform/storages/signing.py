"""Signed public URLs of storages, verified as Apify's clients sign them.

Each storage has a ``urlSigningSecretKey``. A record URL carries ``signature`` = the key's HMAC of the
record key; an items or keys URL carries base64url(``version.expiresAt.hmac``) where the HMAC covers
``version.expiresAt.storageId`` and ``expiresAt`` (epoch milliseconds, 0: never) bounds its life. The
HMAC is SHA-256 over the message, its first 30 hex digits read as a number and written in base 62.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import time

_BASE62 = string.digits + string.ascii_letters
#: Hex digits of the SHA-256 HMAC that a signature keeps (the clients' choice, kept short for URLs).
_HEX_DIGITS = 30


def new_signing_key() -> str:
    """A storage's secret for signing its public URLs."""
    return secrets.token_hex(16)


def short_hmac(secret: str, message: str) -> str:
    """HMAC-SHA256 of ``message``: the first 30 hex digits as a base-62 number."""
    number = int(hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:_HEX_DIGITS], 16)
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits)) or _BASE62[0]


def record_signature(secret: str, key: str) -> str:
    return short_hmac(secret, key)


def content_signature(secret: str, storage_id: str, *, expires_at_ms: int = 0, version: int = 0) -> str:
    """The ``signature`` of a dataset's items or a store's keys URL."""
    mac = short_hmac(secret, f"{version}.{expires_at_ms}.{storage_id}")
    return base64.urlsafe_b64encode(f"{version}.{expires_at_ms}.{mac}".encode()).decode()


def record_signature_valid(secret: str, key: str, signature: str) -> bool:
    return hmac.compare_digest(record_signature(secret, key).encode(), signature.encode())


def content_signature_valid(secret: str, storage_id: str, signature: str, *, now_ms: int | None = None) -> bool:
    """Whether ``signature`` signs ``storage_id`` with ``secret`` and has not expired."""
    try:
        padded = signature + "=" * (-len(signature) % 4)
        version, expires, mac = base64.urlsafe_b64decode(padded.encode()).decode().split(".")
        version_number, expires_at_ms = int(version), int(expires)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    expected = short_hmac(secret, f"{version_number}.{expires_at_ms}.{storage_id}")
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return False
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return expires_at_ms == 0 or now < expires_at_ms
