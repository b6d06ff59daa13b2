"""Re-encrypt every stored registry secret with the newest key of PORTAL_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registries import crypto
from registries.models import ExternalRegistry


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored registry secret with the newest PORTAL_ENCRYPTION_KEYS key. "
        "Put the new key first, run this, then remove the old keys."
    )

    def handle(self, *args, **options):
        done = 0
        failed = []
        with transaction.atomic():
            for registry in ExternalRegistry.objects.select_for_update().exclude(secret_encrypted=""):
                try:
                    registry.secret_encrypted = crypto.rotate(registry.secret_encrypted)
                except crypto.DecryptionError:
                    failed.append(registry.pk)
                    continue
                registry.save(update_fields=["secret_encrypted"])
                done += 1
            if failed:
                raise CommandError(
                    f"No configured key opens the secret of registries {failed}: nothing was "
                    "changed. Put back the key they were encrypted with."
                )
        self.stdout.write(f"Re-encrypted {done} secret(s) with the newest key.")
