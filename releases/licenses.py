"""License files: build, sign and verify the KOTS-shaped YAML a customer installs with.

The file is ``apiVersion: kots.io/v1beta1``, ``kind: License`` (kots
``pkg/license/testdata/valid.yaml``). Its ``spec.signature`` is an Ed25519 signature (base64)
over the canonical JSON of the spec without ``signature``: ``json.dumps(sort_keys=True,
separators=(",", ":"))``. The private key is ``settings.PORTAL_LICENSE_SIGNING_KEY`` (PEM);
installers verify with the public key printed by ``manage.py license_public_key``.

The license ID is the customer's credential: it appears in the file and on Admins' pages,
never in a log line or an audit entry.

Uploaded files are read with ``portal.yamlsafe`` (bounded), and the spec must hold only what
JSON can carry, since its canonical JSON is what is signed: text, integers within 64 bits,
finite numbers, booleans, null, lists and mappings with text keys. Dates, sets, ``!!binary``
and other keys are refused with the path of the value (``spec.entitlements.seats: …``).

``spec.entitlements`` holds ``expires_at`` and the app's license fields, each
``{title, value, valueType, isHidden}`` as KOTS names them (``isHidden`` only where true):
``valueType`` is String, Text, Integer (int64) or Boolean, and the value has that type.
``spec.isAirgapSupported`` says whether the customer may download air-gap bundles.
"""

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils.text import slugify

from portal import yamlsafe

API_VERSION = "kots.io/v1beta1"
KIND = "License"


class LicenseError(Exception):
    """A license file that cannot be trusted; the message says why."""


@lru_cache(maxsize=4)
def _private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("PORTAL_LICENSE_SIGNING_KEY must be an Ed25519 private key")
    return key


def signing_key() -> Ed25519PrivateKey:
    return _private_key(settings.PORTAL_LICENSE_SIGNING_KEY)


def public_key_pem() -> str:
    """The public half of the signing key, as PEM (SubjectPublicKeyInfo)."""
    return (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


INT64 = range(-(2**63), 2**63)


def _json_problem(value) -> str | None:
    """Why ``value`` itself (not what it holds) has no JSON form, or None when it has one."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if value in INT64 else "an integer beyond 64 bits is not allowed"
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN and infinite numbers are not allowed"
    if isinstance(value, (datetime, date)):  # YAML reads 2030-01-31 unquoted as a date
        return "a date is not allowed: put it in quotes to make it text"
    if isinstance(value, (set, frozenset)):
        return "a set (!!set) is not allowed: use a list"
    if isinstance(value, (bytes, bytearray)):
        return "binary data (!!binary) is not allowed"
    if isinstance(value, (dict, list, tuple)):
        return None
    return f"a value of type {type(value).__name__} is not allowed"


def _check_json(value, path: str) -> None:
    """Raise LicenseError at the first value under ``path`` that JSON cannot represent."""
    problem = _json_problem(value)
    if problem:
        raise LicenseError(f"{path}: {problem}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise LicenseError(f"{path}: the key {key!r} is not text: put it in quotes")
            _check_json(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")


def canonical_json(spec: dict) -> bytes:
    """The bytes that are signed: the spec without ``signature``, sorted keys, no spaces.
    LicenseError names the first value JSON cannot represent."""
    unsigned = {k: v for k, v in spec.items() if k != "signature"}
    _check_json(unsigned, "spec")
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign_spec(spec: dict) -> str:
    return base64.b64encode(signing_key().sign(canonical_json(spec))).decode()


def proxy_domain() -> str:
    """host[:port] customers pull images from: PORTAL_PROXY_HOST, else PORTAL_URL's."""
    return settings.PORTAL_PROXY_HOST or urlsplit(settings.PORTAL_URL).netloc


def rfc3339(value) -> str:
    """``2026-01-31T00:00:00Z``, as KOTS writes ``expires_at``; "" for no expiry."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_slug(customer) -> str:
    return slugify(customer.name)[:60].strip("-") or f"customer-{customer.pk}"


VALUE_TYPES = ("String", "Text", "Integer", "Boolean")
# Names the license already uses: a license field under one of them would shadow or confuse it.
BUILT_IN_NAMES = frozenset(name.lower() for name in (
    "expires_at", "licenseID", "licenseType", "licenseSequence", "isAirgapSupported", "appSlug",
    "channelID", "channelName", "customerName", "customerEmail", "endpoint", "signature",
))


def value_problem(value_type: str, value) -> str | None:
    """Why ``value`` is not a value of ``value_type`` (a KOTS valueType), or None when it is."""
    if value_type in ("String", "Text"):
        if not isinstance(value, str):
            return f"a {value_type} value must be text"
        if value_type == "String" and ("\n" in value or "\r" in value):
            return "a String value is one line"
        return None
    if value_type == "Integer":
        if isinstance(value, bool) or not isinstance(value, int) or value not in INT64:
            return "an Integer value must be a whole number within 64 bits"
        return None
    if value_type == "Boolean":
        return None if isinstance(value, bool) else "a Boolean value must be true or false"
    return f"valueType {value_type!r} is not {', '.join(VALUE_TYPES[:-1])} or {VALUE_TYPES[-1]}"


def field_value(field, values: dict):
    """The value ``field`` (a LicenseField) has in ``values`` ({name: value}), else its default.

    A stored value that no longer fits the field's type (the type changed) gives the default too."""
    value = values.get(field.name, field.default)
    return field.default if value_problem(field.field_type, value) else value


def entitlement(field, value) -> dict:
    entry = {"title": field.title, "value": value, "valueType": field.field_type}
    if field.is_hidden:
        entry["isHidden"] = True
    return entry


def license_spec(customer) -> dict:
    """The signed spec of ``customer``'s license (needs ``customer.app`` and ``customer.channel``)."""
    entitlements = {"expires_at": {
        "title": "Expiration",
        "description": "License Expiration",
        "value": rfc3339(customer.expires_at),
        "valueType": "String",
    }}
    values = customer.entitlements or {}
    for license_field in customer.app.license_fields.all():
        entitlements[license_field.name] = entitlement(license_field, field_value(license_field, values))
    spec = {
        "licenseID": customer.license_id,
        "appSlug": customer.app.slug,
        "channelID": str(customer.channel.pk),
        "channelName": customer.channel.name,
        "customerName": str(customer.name),
        "customerEmail": str(customer.email),
        "licenseType": str(customer.license_type),
        "licenseSequence": customer.license_sequence,
        "isAirgapSupported": bool(customer.is_airgap_supported),
        "endpoint": settings.PORTAL_URL,
        "replicatedProxyDomain": proxy_domain(),
        "entitlements": entitlements,
    }
    spec["signature"] = sign_spec(spec)
    return spec


def license_document(customer) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": customer_slug(customer)},
        "spec": license_spec(customer),
    }


def license_yaml(customer) -> str:
    return yaml.safe_dump(license_document(customer), sort_keys=False, allow_unicode=True)


def license_filename(customer) -> str:
    return f"{customer.app.slug}-{customer_slug(customer)}-license.yaml"


@dataclass(frozen=True)
class FieldValue:
    """A license field as a verified file carries it."""

    name: str
    title: str
    value_type: str
    value: object
    is_hidden: bool = False


@dataclass(frozen=True)
class VerifiedLicense:
    customer_name: str
    app_slug: str
    channel_name: str
    license_type: str
    license_sequence: int
    expires_at: str
    is_airgap_supported: bool = False
    fields: tuple[FieldValue, ...] = ()  # the license fields, expires_at aside, in the file's order
    license_id: str = field(default="", repr=False)  # a credential: kept out of any repr

    def expired(self, now: datetime) -> bool:
        """Whether ``entitlements.expires_at`` has passed at ``now`` (never, when empty)."""
        return bool(self.expires_at) and _parse_expiry(self.expires_at) <= now


def _parse_expiry(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LicenseError(f"entitlements.expires_at {value[:40]!r} is not a date and time "
                           "such as 2030-01-31T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# A license has a few dozen nodes (a hundred with many license fields): a far lower budget than
# release files', so a file a stranger uploads to the customer's sign-in costs milliseconds.
LICENSE_MAX_NODES = 10_000


def verify_license_text(text: str, public_key: Ed25519PublicKey | None = None) -> VerifiedLicense:
    """Check a license file's shape and signature; raise LicenseError saying what is wrong."""
    try:
        document = yamlsafe.load(text, max_nodes=LICENSE_MAX_NODES)
    except yamlsafe.YAMLLimitError as e:
        raise LicenseError(e.problem) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LicenseError(f"not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise LicenseError("not a license file: expected a YAML mapping")
    if document.get("apiVersion") != API_VERSION:
        raise LicenseError(f"wrong apiVersion {document.get('apiVersion')!r}, expected {API_VERSION!r}")
    if document.get("kind") != KIND:
        raise LicenseError(f"wrong kind {document.get('kind')!r}, expected {KIND!r}")
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise LicenseError("no spec")
    missing = [k for k in ("licenseID", "appSlug", "channelName", "customerName", "signature") if not spec.get(k)]
    if missing:
        raise LicenseError(f"spec lacks {', '.join(missing)}")
    try:
        signature = base64.b64decode(str(spec["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise LicenseError("the signature is not base64") from None
    key = public_key or signing_key().public_key()
    try:
        key.verify(signature, canonical_json(spec))
    except InvalidSignature:
        raise LicenseError("the signature does not match: the file was changed or signed by another key") from None
    fields = _entitlements(spec.get("entitlements"))
    expires = (spec.get("entitlements") or {}).get("expires_at") or {}
    if expires.get("value"):
        _parse_expiry(str(expires["value"]))
    return VerifiedLicense(
        customer_name=str(spec["customerName"]),
        app_slug=str(spec["appSlug"]),
        channel_name=str(spec["channelName"]),
        license_type=str(spec.get("licenseType", "")),
        license_sequence=int(spec.get("licenseSequence") or 0),
        expires_at=str(expires.get("value") or ""),
        is_airgap_supported=spec.get("isAirgapSupported") is True,
        fields=fields,
        license_id=str(spec["licenseID"]),
    )


def _entitlements(entitlements) -> tuple[FieldValue, ...]:
    """The fields under ``spec.entitlements``, each checked for the KOTS shape (after the
    signature, so a refusal here is a file this portal never signed as is)."""
    if entitlements is None:
        return ()
    if not isinstance(entitlements, dict):
        raise LicenseError("spec.entitlements: expected a mapping of license fields")
    fields = []
    for name, entry in entitlements.items():
        path = f"spec.entitlements.{name}"
        if not isinstance(entry, dict) or "value" not in entry or "valueType" not in entry:
            raise LicenseError(f"{path}: expected a mapping with title, value and valueType")
        problem = value_problem(str(entry["valueType"]), entry["value"])
        if problem:
            raise LicenseError(f"{path}: {problem}")
        if name != "expires_at":
            fields.append(FieldValue(name=name, title=str(entry.get("title") or name),
                                     value_type=entry["valueType"], value=entry["value"],
                                     is_hidden=entry.get("isHidden") is True))
    return tuple(fields)


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise LicenseError("the public key is not an Ed25519 key")
    return key
