"""Seal secrets the service must read back (webhook signing keys) with AES-GCM at rest.

The key is derived from DISPATCH_SECRET_KEY; rotating that key makes sealed secrets
unreadable, so rotate webhook secrets together with it.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_CONTEXT = b"guard-dispatch/webhook-secret/v1"


def _key(service_secret: str) -> bytes:
    return hashlib.sha256(_CONTEXT + service_secret.encode()).digest()


def seal(plaintext: str, service_secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(service_secret)).encrypt(nonce, plaintext.encode(), _CONTEXT)
    return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(token: str, service_secret: str) -> str:
    version, _, body = token.partition(".")
    if version != "v1":
        raise ValueError("unknown sealed secret version")
    raw = base64.urlsafe_b64decode(body)
    return AESGCM(_key(service_secret)).decrypt(raw[:12], raw[12:], _CONTEXT).decode()
