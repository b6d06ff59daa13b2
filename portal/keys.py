"""The installation's keys: recognise them, and carry them to a restore.

The encryption keys (``PORTAL_ENCRYPTION_KEYS``) and the license signing key
(``PORTAL_LICENSE_SIGNING_KEY``) are what a restore needs besides the database. The first use
records the signing public key's fingerprint and a canary (a known value encrypted with the
encryption keys) in ``Installation``; ``keys_problem()`` then says when the configured keys
are not the ones the data was made with, which the readiness probe and ``check --deploy``
report. Settings would otherwise generate new keys into an empty ``var/`` without a word.

Exported keys are a JSON envelope: scrypt derives an AES-256-GCM key from the passphrase; the
ciphertext holds both keys. Nothing here logs a key or the passphrase.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings
from django.db import connection, transaction

from .models import Installation

CANARY = b"vendor-portal key canary"
EXPORT_FORMAT = "vendor-portal-keys-1"
# scrypt's interactive-login cost (2**15, 8, 1: 32 MiB, about 0.1 s) would be cheap to guess
# against for an export that lives for years in a backup; 2**17 costs 128 MiB and under a second.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MIN_PASSPHRASE = 12


class KeysError(Exception):
    """Keys that cannot be read, or an export that cannot be opened; the message says why."""


# --- recognising the keys ------------------------------------------------------------------


def signing_fingerprint(pem: str) -> str:
    """``sha256:<hex>`` of the raw Ed25519 public key of the private key ``pem``."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise KeysError("PORTAL_LICENSE_SIGNING_KEY is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeysError("PORTAL_LICENSE_SIGNING_KEY must be an Ed25519 private key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _fernets(keys) -> list[Fernet]:
    try:
        return [Fernet(k) for k in keys]
    except (ValueError, TypeError):
        raise KeysError("PORTAL_ENCRYPTION_KEYS holds a value that is not a Fernet key") from None


def keys_record(*, replace: bool = False) -> Installation:
    """Record the configured keys when nothing is recorded yet (or ``replace``)."""
    fingerprint = signing_fingerprint(settings.PORTAL_LICENSE_SIGNING_KEY)
    fernets = _fernets(settings.PORTAL_ENCRYPTION_KEYS)
    with transaction.atomic():
        Installation.current()
        installation = Installation.objects.select_for_update().get(pk=1)
        if replace or not installation.signing_key_fingerprint:
            installation.signing_key_fingerprint = fingerprint
        if replace or not installation.encryption_canary:
            installation.encryption_canary = fernets[0].encrypt(CANARY).decode()
        installation.save()
    return installation


def record_keys_after_migrate(sender, **kwargs):
    """Record the keys as soon as the database exists, so protection does not wait for a probe.

    Keys that cannot be read are left to /readyz and check --deploy to report, with the reason.
    """
    if Installation._meta.db_table not in connection.introspection.table_names():
        return  # migrating backwards past the table
    try:
        keys_record()
    except KeysError:
        pass


def keys_problem() -> str:
    """What is wrong with the configured keys against the recorded ones; "" when they match.

    Records them on first use. A canary the newest key did not write is written again with it,
    so after ``rotate_encryption_keys`` an older key can be retired without tripping this.
    """
    try:
        fingerprint = signing_fingerprint(settings.PORTAL_LICENSE_SIGNING_KEY)
        fernets = _fernets(settings.PORTAL_ENCRYPTION_KEYS)
        if not fernets:
            return "PORTAL_ENCRYPTION_KEYS holds no key"
        installation = keys_record()
    except KeysError as e:
        return str(e)
    problems = []
    if installation.signing_key_fingerprint != fingerprint:
        problems.append(
            "PORTAL_LICENSE_SIGNING_KEY is not the key this database's licenses were signed with "
            f"(configured {fingerprint[:19]}…, recorded {installation.signing_key_fingerprint[:19]}…): "
            "restore the keys with manage.py import_keys")
    token = installation.encryption_canary.encode()
    try:
        MultiFernet(fernets).decrypt(token)
    except InvalidToken:
        problems.append(
            "no key in PORTAL_ENCRYPTION_KEYS opens this database's secrets: restore the keys "
            "with manage.py import_keys")
    else:
        try:
            fernets[0].decrypt(token)
        except InvalidToken:
            Installation.objects.filter(pk=1, encryption_canary=installation.encryption_canary).update(
                encryption_canary=fernets[0].encrypt(CANARY).decode())
    return "; ".join(problems)


# --- export and import ---------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def keys_export(passphrase: str, *, encryption_keys: list[str], signing_key: str) -> str:
    """The keys as an encrypted JSON document (safe to store beside a database backup)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeysError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    payload = json.dumps({
        "PORTAL_ENCRYPTION_KEYS": ",".join(encryption_keys),
        "PORTAL_LICENSE_SIGNING_KEY": signing_key.strip(),
    }).encode()
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(nonce, payload, EXPORT_FORMAT.encode())
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return json.dumps({
        "format": EXPORT_FORMAT,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": b64(salt)},
        "cipher": {"name": "AES-256-GCM", "nonce": b64(nonce)},
        "ciphertext": b64(ciphertext),
        "signing_key_fingerprint": signing_fingerprint(signing_key),
    }, indent=2) + "\n"


def keys_import(document: str, passphrase: str) -> dict[str, str]:
    """``{"PORTAL_ENCRYPTION_KEYS": ..., "PORTAL_LICENSE_SIGNING_KEY": ...}`` from an export."""
    try:
        envelope = json.loads(document)
        if envelope.get("format") != EXPORT_FORMAT:
            raise KeysError(f"not a key export of this portal (format {envelope.get('format')!r})")
        kdf = envelope["kdf"]
        key = _derive(passphrase, base64.b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        payload = AESGCM(key).decrypt(base64.b64decode(envelope["cipher"]["nonce"]),
                                      base64.b64decode(envelope["ciphertext"]), EXPORT_FORMAT.encode())
    except InvalidTag:
        raise KeysError("wrong passphrase (or the file was changed): the keys were not imported") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise KeysError("the file is not a complete key export") from None
    keys = json.loads(payload)
    encryption_keys = [k for k in keys["PORTAL_ENCRYPTION_KEYS"].split(",") if k]
    if not encryption_keys:
        raise KeysError("the export holds no encryption key")
    _fernets(encryption_keys)
    signing_fingerprint(keys["PORTAL_LICENSE_SIGNING_KEY"])
    return keys
