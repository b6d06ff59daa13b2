"""Read keys written by export_keys into var/ (development) and say what production needs."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from portal.keys import KeysError, keys_import, signing_fingerprint
from portal.models import Installation

from ._passphrase import add_passphrase_arguments, read_passphrase

# The files portal/settings.py reads (and generates in development) when the variables are unset.
FILES = {
    "PORTAL_ENCRYPTION_KEYS": "encryption_keys",
    "PORTAL_LICENSE_SIGNING_KEY": "license_signing_key.pem",
}


def _recorded_fingerprint() -> str:
    """The fingerprint the database holds, or "" (no record, no table yet, no database)."""
    try:
        return Installation.objects.filter(pk=1).values_list("signing_key_fingerprint", flat=True).first() or ""
    except DatabaseError:
        return ""


class Command(BaseCommand):
    help = ("Import keys written by export_keys (passphrase from standard input or "
            "--passphrase-file) into the var/ directory and print what to set in production.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="the file export_keys wrote")
        parser.add_argument("--to", metavar="DIR", help="write the key files here instead of PORTAL_VAR_DIR")
        parser.add_argument("--force", action="store_true",
                            help="replace keys this database already recorded as its own")
        add_passphrase_arguments(parser)

    def handle(self, *args, file, to, force, **options):
        try:
            document = Path(file).read_text()
        except OSError as e:
            raise CommandError(f"cannot read {file}: {e.strerror}") from None
        passphrase = read_passphrase(options)
        try:
            keys = keys_import(document, passphrase)
        except KeysError as e:
            raise CommandError(str(e)) from None

        # Settings generate keys into an empty var/ at start-up, so keys on disk are no proof
        # of use; keys the database recorded as its own are, and are kept unless --force.
        recorded = _recorded_fingerprint()
        configured = signing_fingerprint(settings.PORTAL_LICENSE_SIGNING_KEY)
        imported = signing_fingerprint(keys["PORTAL_LICENSE_SIGNING_KEY"])
        if recorded and recorded == configured != imported and not force:
            raise CommandError(
                "this database already uses the configured keys and the imported ones differ: "
                "nothing was changed (pass --force to replace them)")

        directory = Path(to or settings.VAR_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        for name, filename in FILES.items():
            path = directory / filename
            tmp = path.with_name(path.name + ".importing")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(keys[name].strip() + "\n")
            tmp.replace(path)
        paths = {name: directory / filename for name, filename in FILES.items()}
        self.stdout.write(self.style.SUCCESS(f"Keys imported into {directory} (signing key {imported})."))
        if recorded and recorded != imported:
            self.stdout.write(self.style.WARNING(
                "The database recorded another signing key: these keys are not the ones its data was made with."))
        self.stdout.write(
            "Development reads them from there. In production give the same files to every web, "
            "worker and beat process:\n"
            + "".join(f"  {name}_FILE={path}\n" for name, path in paths.items())
            + "or put them in the keys Secret (docs/deploy.md):\n"
            "  kubectl create secret generic portal-keys "
            + " ".join(f"--from-file={p.name}={p}" for p in paths.values()))
