"""Write the encryption keys and the license signing key, encrypted with a passphrase."""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.keys import KeysError, keys_export

from ._passphrase import add_passphrase_arguments, read_passphrase


class Command(BaseCommand):
    help = ("Export PORTAL_ENCRYPTION_KEYS and PORTAL_LICENSE_SIGNING_KEY, encrypted with a "
            "passphrase read from standard input or --passphrase-file: what a restore needs "
            "besides the database.")

    def add_arguments(self, parser):
        parser.add_argument("--output", metavar="PATH", help="write here (mode 0600) instead of standard output")
        add_passphrase_arguments(parser)

    def handle(self, *args, output, **options):
        passphrase = read_passphrase(options, confirm=True)
        try:
            document = keys_export(passphrase, encryption_keys=settings.PORTAL_ENCRYPTION_KEYS,
                                   signing_key=settings.PORTAL_LICENSE_SIGNING_KEY)
        except KeysError as e:
            raise CommandError(str(e)) from None
        if not output:
            sys.stdout.write(document)
            return
        path = Path(output)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(f"{path} exists: choose another --output") from None
        with os.fdopen(fd, "w") as f:
            f.write(document)
        self.stderr.write(f"Keys exported to {path}. Keep it and its passphrase apart from the database backup.")
