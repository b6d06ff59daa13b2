"""What a license holder may see: the license checks of the update check, the customer page and the proxy.

One set of rules for the admin console's update check (HTTP Basic ``licenseID:licenseID``), the
customer page (the license kept in the session) and, later, the proxy registry: the license
exists (else 401), is neither archived nor expired, its app is not archived and is the app the
URL names (else 403). The license ID is a credential: never logged, never in an error message.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..licenses import rfc3339
from ..models import Customer

SESSION_KEY = "customer_license_id"


@dataclass(frozen=True)
class LicenseCheck:
    """``customer`` when allowed; else ``status`` (401/403) and ``error`` to show."""

    customer: Customer | None
    status: int = 200
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.customer is not None and self.status == 200


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, password) of an ``Authorization: Basic …`` header, or None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def find_customer(license_id: str) -> Customer | None:
    if not license_id or len(license_id) > 64:
        return None
    return Customer.objects.select_related("app", "channel").filter(license_id=license_id).first()


def check_license(license_id: str, *, app_slug: str | None = None) -> LicenseCheck:
    customer = find_customer(license_id)
    if customer is None:
        return LicenseCheck(None, 401, "Unknown license: check the license ID.")
    if customer.is_archived:
        return LicenseCheck(None, 403, "This license has been archived by the vendor.")
    if customer.is_expired:
        return LicenseCheck(None, 403, f"This license expired on {rfc3339(customer.expires_at)}.")
    if customer.app.is_archived:
        return LicenseCheck(None, 403, "This application is no longer distributed.")
    if app_slug is not None and customer.app.slug != app_slug:
        return LicenseCheck(None, 403, "This license is not for this application.")
    return LicenseCheck(customer)


def check_basic_auth(header: str, *, app_slug: str) -> LicenseCheck:
    """KOTS sends the license ID as both username and password."""
    credentials = basic_credentials(header)
    if credentials is None:
        return LicenseCheck(None, 401, "Authenticate with the license ID as username and password.")
    username, password = credentials
    if username != password:
        return LicenseCheck(None, 401, "Unknown license: check the license ID.")
    return check_license(username, app_slug=app_slug)
