"""Secrets at rest: MultiFernet with a version prefix, key rotation, loud configuration errors."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from registries import crypto
from tests.registries.product_helpers import make_registry


def test_it_encrypts_with_a_version_prefix_and_decrypts():
    stored = crypto.encrypt("s3cret")
    assert stored.startswith("fernet1:") and "s3cret" not in stored
    assert crypto.decrypt(stored) == "s3cret"
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_old_keys_still_decrypt_and_rotation_moves_to_the_newest(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [old]
    stored = crypto.encrypt("s3cret")
    settings.PORTAL_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(stored) == "s3cret"
    rotated = crypto.rotate(stored)
    settings.PORTAL_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "s3cret"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored)


def test_keys_may_be_a_comma_separated_string():
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert crypto.parse_keys(f" {a} , {b} ") == [a, b]


@pytest.mark.parametrize("value", ["", "not-a-key", ["short"]])
def test_bad_keys_fail_loudly(value):
    with pytest.raises(ImproperlyConfigured, match="PORTAL_ENCRYPTION_KEYS"):
        crypto.parse_keys(value)


@pytest.mark.django_db
def test_rotate_encryption_keys_reencrypts_every_secret(settings, team, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [old]
    a = make_registry(team, endpoint="a.example.com", secret="secret-a")
    b = make_registry(team, endpoint="b.example.com", secret="secret-b")
    make_registry(team, endpoint="c.example.com", secret="")
    settings.PORTAL_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys")
    assert "Re-encrypted 2 secret(s)" in capsys.readouterr().out
    settings.PORTAL_ENCRYPTION_KEYS = [new]
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.secret, b.secret) == ("secret-a", "secret-b")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM registries_externalregistry")
        raw = " ".join(row[0] for row in cursor.fetchall())
    assert "secret-a" not in raw and "secret-b" not in raw


@pytest.mark.django_db
def test_rotation_changes_nothing_when_a_key_is_missing(settings, team):
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [lost]
    registry = make_registry(team, secret="secret-a")
    before = registry.secret_encrypted
    settings.PORTAL_ENCRYPTION_KEYS = [new]
    with pytest.raises(CommandError, match="Put back the key"):
        call_command("rotate_encryption_keys")
    registry.refresh_from_db()
    assert registry.secret_encrypted == before


@pytest.mark.django_db
def test_a_secret_no_key_opens_fails_validation_with_advice(settings, team):
    from registries.services import registry_validate

    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    registry = make_registry(team, secret="secret-a")
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    registry_validate(registry_id=registry.pk)
    registry.refresh_from_db()
    assert registry.status == "failed" and "type the password again" in registry.status_message
