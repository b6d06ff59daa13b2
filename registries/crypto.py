"""Encrypt registry secrets at rest (Fernet / MultiFernet from ``cryptography``).

Keys come from ``settings.PORTAL_ENCRYPTION_KEYS`` (``PORTAL_ENCRYPTION_KEYS`` or
``PORTAL_ENCRYPTION_KEYS_FILE``: comma-separated Fernet keys, newest first). The newest key
encrypts; every key decrypts, so a new key can be added in front and the old ones retired after
``manage.py rotate_encryption_keys``.

A stored value is ``fernet1:<token>``: the version prefix (like Harbor's ``<enc-v1>``) lets a
later scheme live beside this one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "fernet1:"


class DecryptionError(Exception):
    """A stored secret that no configured key opens (a key was removed too early)."""


def parse_keys(value) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    keys = [k.strip() for k in value if k and k.strip()]
    if not keys:
        raise ImproperlyConfigured("PORTAL_ENCRYPTION_KEYS holds no key")
    for i, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"PORTAL_ENCRYPTION_KEYS: key {i} is not a Fernet key (32 url-safe base64 bytes; "
                "make one with python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in parse_keys(settings.PORTAL_ENCRYPTION_KEYS)])


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise DecryptionError("unknown secret format")
    try:
        return _fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "no configured encryption key opens this secret (was a key removed from "
            "PORTAL_ENCRYPTION_KEYS?)"
        ) from None


def rotate(stored: str) -> str:
    """The same secret encrypted with the newest key."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise DecryptionError("unknown secret format")
    try:
        return PREFIX + _fernet().rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise DecryptionError("no configured encryption key opens this secret") from None
