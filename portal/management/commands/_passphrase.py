"""The passphrase of export_keys / import_keys: from a file or standard input, never argv.

A passphrase on the command line would sit in the shell's history and in every process
listing on the machine.
"""

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import CommandError

ENV_FILE = "PORTAL_KEYS_PASSPHRASE_FILE"


def add_passphrase_arguments(parser) -> None:
    parser.add_argument(
        "--passphrase-file", metavar="PATH",
        help=f"read the passphrase from this file (or set {ENV_FILE}); default: standard input")
    # Accepted only to refuse it with a message saying what to do instead.
    parser.add_argument("--passphrase", help="refused: give it on standard input or in a file")


def read_passphrase(options, *, confirm: bool = False) -> str:
    if options.get("passphrase") is not None:
        raise CommandError(
            "a passphrase on the command line is refused (shell history, process listings): "
            "give it on standard input or with --passphrase-file PATH")
    path = options.get("passphrase_file") or os.environ.get(ENV_FILE, "")
    if path:
        try:
            passphrase = Path(path).read_text().rstrip("\r\n")
        except OSError as e:
            raise CommandError(f"cannot read the passphrase file {path}: {e.strerror}") from None
    elif sys.stdin.isatty():
        passphrase = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Passphrase again: ") != passphrase:
            raise CommandError("the two passphrases differ")
    else:
        passphrase = sys.stdin.readline().rstrip("\r\n")
    if not passphrase:
        raise CommandError("no passphrase given (standard input was empty)")
    return passphrase
