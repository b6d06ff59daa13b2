"""The keys a restore needs: export_keys / import_keys, and the check that they fit the data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from portal.models import Installation
from portal.settings import _generate_signing_key
from tests.support.processes import CLEARED, ROOT

PASSPHRASE = "correct horse battery staple"


def manage(directory: Path, *args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    """manage.py in development mode with its own var/ directory and SQLite file."""
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_VAR_DIR": str(directory / "var"),
        "PORTAL_SQLITE_PATH": str(directory / "portal.sqlite3"),
    })
    for name in ("PORTAL_ENCRYPTION_KEYS", "PORTAL_LICENSE_SIGNING_KEY", "PORTAL_KEYS_PASSPHRASE"):
        environment.pop(name, None)
        environment.pop(name + "_FILE", None)
    environment.update(env or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          input=stdin, capture_output=True, text=True, timeout=120)


def key_files(directory: Path) -> dict[str, str]:
    return {name: (directory / "var" / name).read_text().strip()
            for name in ("encryption_keys", "license_signing_key.pem")}


@pytest.fixture
def exported(tmp_path):
    source = tmp_path / "source"
    result = manage(source, "export_keys", "--output", str(tmp_path / "keys.json"), stdin=PASSPHRASE + "\n")
    assert result.returncode == 0, result.stderr
    return source, tmp_path / "keys.json"


@pytest.mark.slow
def test_export_import_round_trip_on_a_fresh_var_dir(tmp_path, exported):
    source, export = exported
    text = export.read_text()
    for secret in key_files(source).values():
        assert secret.strip() not in text
    assert (export.stat().st_mode & 0o777) == 0o600

    target = tmp_path / "restored"
    result = manage(target, "import_keys", str(export), stdin=PASSPHRASE + "\n")
    assert result.returncode == 0, result.stderr
    assert key_files(target) == key_files(source)
    assert "PORTAL_ENCRYPTION_KEYS_FILE=" in result.stdout
    assert "PORTAL_LICENSE_SIGNING_KEY_FILE=" in result.stdout
    for secret in key_files(source).values():
        assert secret.strip() not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_passphrase_file_works_too(tmp_path, exported):
    _, export = exported
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    result = manage(tmp_path / "restored", "import_keys", str(export),
                    env={"PORTAL_KEYS_PASSPHRASE_FILE": str(tmp_path / "passphrase")})
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_wrong_passphrase_is_refused(tmp_path, exported):
    source, export = exported
    target = tmp_path / "restored"
    result = manage(target, "import_keys", str(export), stdin="not the passphrase\n")
    assert result.returncode != 0
    assert "wrong passphrase" in result.stderr
    assert key_files(target) != key_files(source)


@pytest.mark.slow
def test_a_passphrase_in_the_arguments_is_refused(tmp_path):
    result = manage(tmp_path, "export_keys", "--passphrase", PASSPHRASE)
    assert result.returncode != 0
    assert "command line is refused" in result.stderr
    assert "{" not in result.stdout


@pytest.mark.slow
def test_import_keeps_the_keys_the_database_uses(tmp_path, exported):
    _, export = exported
    target = tmp_path / "in-use"
    assert manage(target, "migrate", "--noinput").returncode == 0
    assert manage(target, "check", "--deploy").returncode == 0  # first use: records the keys
    before = key_files(target)
    result = manage(target, "import_keys", str(export), stdin=PASSPHRASE + "\n")
    assert result.returncode != 0
    assert "--force" in result.stderr
    assert key_files(target) == before


@pytest.mark.django_db
def test_wrong_keys_make_readyz_fail(client, settings):
    assert client.get("/readyz").status_code == 200  # first use records the keys
    assert Installation.objects.get().signing_key_fingerprint.startswith("sha256:")

    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "no key in PORTAL_ENCRYPTION_KEYS opens" in response.json()["keys"]


@pytest.mark.django_db
def test_a_wrong_signing_key_makes_readyz_fail(client, settings):
    assert client.get("/readyz").status_code == 200
    settings.PORTAL_LICENSE_SIGNING_KEY = _generate_signing_key()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "PORTAL_LICENSE_SIGNING_KEY is not the key" in response.json()["keys"]


@pytest.mark.django_db
def test_check_deploy_reports_wrong_keys(client, settings):
    assert client.get("/readyz").status_code == 200
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SystemCheckError, match="portal.E001"):
        call_command("check", "--deploy", "--fail-level", "ERROR")


@pytest.mark.django_db
def test_rotated_keys_keep_matching_after_the_old_one_is_retired(client, settings):
    old = settings.PORTAL_ENCRYPTION_KEYS
    assert client.get("/readyz").status_code == 200
    new = Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [new, *old]
    assert client.get("/readyz").status_code == 200  # writes the canary again with the newest
    settings.PORTAL_ENCRYPTION_KEYS = [new]
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_migrate_records_the_keys_without_waiting_for_a_probe():
    Installation.objects.all().delete()
    call_command("migrate", verbosity=0, interactive=False)
    installation = Installation.objects.get()
    assert installation.signing_key_fingerprint.startswith("sha256:")
    assert installation.encryption_canary
