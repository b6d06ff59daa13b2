"""Check a license file: its shape and its Ed25519 signature."""

from pathlib import Path

from django.core.management.base import BaseCommand

from releases.licenses import LicenseError, load_public_key, verify_license_text


class Command(BaseCommand):
    help = "Verify a license file's signature. Exit 0 when it is valid, 1 when it is not."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the license YAML file")
        parser.add_argument(
            "--public-key", metavar="PEM_FILE",
            help="verify with this public key instead of the portal's own signing key",
        )

    def handle(self, *args, file, public_key=None, **options):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return self._fail(f"{file}: cannot read: {getattr(e, 'strerror', None) or e}")
        try:
            key = load_public_key(Path(public_key).read_text()) if public_key else None
            result = verify_license_text(text, public_key=key)
        except (LicenseError, OSError, ValueError) as e:
            return self._fail(f"{file}: {e}")
        expiry = result.expires_at or "never"
        self.stdout.write(self.style.SUCCESS(
            f"OK: customer {result.customer_name!r}, app {result.app_slug}, channel {result.channel_name}, "
            f"license type {result.license_type}, sequence {result.license_sequence}, expires {expiry}"
        ))

    def _fail(self, message: str):
        self.stderr.write(self.style.ERROR(f"INVALID: {message}"))
        raise SystemExit(1)
