"""Opaque, time-ordered string ids with a readable prefix (`inc_…`, `grd_…`)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """A monotonic ULID: 48 bits of milliseconds then 80 random bits.

    Within one millisecond the value is incremented instead of re-randomised, so ids made
    by this process sort in creation order (list endpoints page by id).
    """
    global _last
    candidate = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    with _lock:
        if candidate >> 80 <= _last >> 80:
            candidate = _last + 1
        _last = candidate
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[candidate & 31])
        candidate >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
