"""What a license holder may see: the update check's rules and the customer page's form.

One set of rules for the admin console's update check (HTTP Basic ``licenseID:licenseID``), the
customer page (the license kept in the session) and, later, the proxy registry: the license
exists (else 401), is neither archived nor expired, its app is not archived and is the app the
URL names (else 403). The license ID is a credential: never logged, never in an error message.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from django import forms

from .licenses import LicenseError, rfc3339, verify_license_text
from .models import Customer, Promotion

SESSION_KEY = "customer_license_id"
MAX_LICENSE_FILE_BYTES = 256 * 1024


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


# --- channel releases -------------------------------------------------------------------------


def channel_releases(customer: Customer):
    """The live (not demoted) releases on the customer's channel, oldest first."""
    return (
        Promotion.objects.filter(channel=customer.channel, demoted_at__isnull=True)
        .select_related("release")
        .order_by("channel_sequence")
    )


def pending_releases(*, customer: Customer, after: int = 0) -> list[Promotion]:
    return list(channel_releases(customer).filter(channel_sequence__gt=after))


def channel_release(*, customer: Customer, channel_sequence: int | None) -> Promotion | None:
    """One live channel release, or the newest when ``channel_sequence`` is None."""
    releases = channel_releases(customer)
    if channel_sequence is None:
        return releases.last()
    return releases.filter(channel_sequence=channel_sequence).first()


def channel_release_json(promotion: Promotion) -> dict:
    return {
        "channelSequence": promotion.channel_sequence,
        "releaseSequence": promotion.release.sequence,
        "versionLabel": promotion.version_label,
        "isRequired": promotion.is_required,
        "createdAt": rfc3339(promotion.created_at),
        "releaseNotes": promotion.release_notes,
    }


def parse_sequence(value: str | None, *, default: int | None = 0) -> int | None:
    """A query's channelSequence: missing → ``default``; ValueError when not a whole number ≥ 0."""
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ValueError("channelSequence must be a whole number (0 or more)")
    return int(value)


def release_archive_name(promotion: Promotion, app_slug: str) -> str:
    return f"{app_slug}-{promotion.channel_sequence}"


# --- the customer page's sign-in form ---------------------------------------------------------


class LicenseForm(forms.Form):
    license_id = forms.CharField(
        label="License ID", required=False, max_length=64, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="The licenseID in your license file.",
    )
    license_file = forms.FileField(
        label="Or upload your license file", required=False,
        help_text="The .yaml license file your vendor sent you.",
    )

    def clean_license_file(self):
        upload = self.cleaned_data.get("license_file")
        if not upload:
            return None
        if upload.size > MAX_LICENSE_FILE_BYTES:
            raise forms.ValidationError("This file is too large to be a license file (over 256 KB).")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("This is not a license file: it is not UTF-8 text.") from None
        try:
            return verify_license_text(text).license_id
        except LicenseError as e:
            raise forms.ValidationError(f"This license file cannot be trusted: {e}.") from None

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        license_id = cleaned.get("license_file") or cleaned.get("license_id")
        if not license_id:
            raise forms.ValidationError("Enter your license ID or upload your license file.")
        check = check_license(license_id)
        if not check.ok:
            field = "license_file" if cleaned.get("license_file") else "license_id"
            self.add_error(field, check.error)
            return cleaned
        cleaned["customer"] = check.customer
        return cleaned
