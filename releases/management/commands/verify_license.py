"""Check a license file: its shape, its Ed25519 signature and its expiry; print its license fields."""

from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils import timezone

from releases.licenses import LicenseError, load_public_key, verify_license_text

EXIT_INVALID = 1
EXIT_EXPIRED = 2


class Command(BaseCommand):
    help = (
        "Verify a license file. Prints OK and exits 0 when it is valid and unexpired; "
        f"INVALID (exit {EXIT_INVALID}) when it cannot be trusted; EXPIRED (exit {EXIT_EXPIRED}) "
        "when it is correctly signed but its expires_at has passed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the license YAML file")
        parser.add_argument(
            "--public-key", metavar="PEM_FILE",
            help="verify with this public key instead of the portal's own signing key",
        )

    def handle(self, *args, file, public_key=None, **options):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return self._fail(EXIT_INVALID, f"INVALID: {file}: not UTF-8 text, so not a license file")
        except OSError as e:
            return self._fail(EXIT_INVALID, f"INVALID: {file}: cannot read: {e.strerror or e}")
        try:
            key = load_public_key(Path(public_key).read_text()) if public_key else None
            result = verify_license_text(text, public_key=key)
            expired = result.expired(timezone.now())
        except (LicenseError, OSError, ValueError) as e:
            return self._fail(EXIT_INVALID, f"INVALID: {file}: {e}")
        summary = (
            f"customer {result.customer_name!r}, app {result.app_slug}, channel {result.channel_name}, "
            f"license type {result.license_type}, sequence {result.license_sequence}, "
            f"air-gap bundles {'yes' if result.is_airgap_supported else 'no'}"
        )
        if expired:
            return self._fail(EXIT_EXPIRED, f"EXPIRED: {file}: expired at {result.expires_at}; {summary}")
        self.stdout.write(self.style.SUCCESS(f"OK: {summary}, expires {result.expires_at or 'never'}"))
        for field in result.fields:
            hidden = ", hidden" if field.is_hidden else ""
            self.stdout.write(f"  {field.name} ({field.title}, {field.value_type}{hidden}): {_shown(field.value)}")

    def _fail(self, code: int, message: str):
        self.stderr.write(self.style.ERROR(message))
        raise SystemExit(code)


def _shown(value) -> str:
    """A field's value as the license says it: true/false, numbers, text (quoted when blank or multi-line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and (not value.strip() or "\n" in value or value != value.strip()):
        return repr(value)
    return str(value)
