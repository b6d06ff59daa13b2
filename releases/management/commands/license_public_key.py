"""Print the public key that verifies the portal's license files."""

from django.core.management.base import BaseCommand

from releases.licenses import public_key_pem


class Command(BaseCommand):
    help = "Print the Ed25519 public key (PEM) installers use to verify license signatures."

    def handle(self, *args, **options):
        self.stdout.write(public_key_pem(), ending="")
