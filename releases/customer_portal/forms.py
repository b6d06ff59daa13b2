"""The customer page's sign-in form and the channelSequence a customer's query names."""

from __future__ import annotations

from django import forms

from ..licenses import LicenseError, verify_license_text
from .access import check_license

MAX_LICENSE_FILE_BYTES = 256 * 1024


def parse_sequence(value: str | None, *, default: int | None = 0) -> int | None:
    """A query's channelSequence: missing → ``default``; ValueError when not a whole number ≥ 0."""
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ValueError("channelSequence must be a whole number (0 or more)")
    return int(value)


class LicenseForm(forms.Form):
    file_license_sequence = 0
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
            verified = verify_license_text(text)
        except LicenseError as e:
            raise forms.ValidationError(f"This license file cannot be trusted: {e}.") from None
        self.file_license_sequence = verified.license_sequence
        return verified.license_id

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
        # The sequence of the license the customer holds: the file's, else (an ID typed) today's.
        cleaned["license_sequence"] = (self.file_license_sequence if cleaned.get("license_file")
                                       else check.customer.license_sequence)
        return cleaned
