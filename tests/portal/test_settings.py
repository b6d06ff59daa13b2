"""Settings from the environment: defaults, loud failures, the deploy check, SQLite under load.

Settings are read once per process, so each case runs manage.py in a subprocess with its own
environment and an empty var/ directory.
"""

import os
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

BASE_DIR = Path(__file__).resolve().parents[2]
# Variables of this test process that would leak into the child's settings.
CLEARED = {
    "DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL",
    "PORTAL_URL", "HOST", "PORT", "CELERY_BROKER_URL", "PORTAL_SQLITE_PATH", "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def manage(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    child_env.update(PORTAL_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="portal.settings")
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=child_env,
        capture_output=True, text=True, timeout=120,
    )


def setting(tmp_path, expression: str, **env) -> subprocess.CompletedProcess:
    """Start Django in a child process and print repr((expression))."""
    code = f"import django; django.setup(); from django.conf import settings; print(repr(({expression})))"
    return run_python(tmp_path, code, **env)


def run_python(tmp_path, code: str, **env) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    child_env.update(PORTAL_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="portal.settings")
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=child_env, capture_output=True, text=True, timeout=180
    )


def test_development_defaults_work_with_no_environment(tmp_path):
    result = setting(tmp_path, "settings.DEBUG, settings.PORTAL_URL, settings.DATABASES['default']['ENGINE']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(True, 'http://127.0.0.1:8000', 'django.db.backends.sqlite3')"
    secret_file = tmp_path / "var" / "secret_key"
    assert secret_file.stat().st_mode & 0o077 == 0
    # The generated key is kept: a second start reads the same one.
    first = secret_file.read_text()
    assert setting(tmp_path, "1").returncode == 0
    assert secret_file.read_text() == first


def test_portal_url_follows_host_and_port(tmp_path):
    result = setting(tmp_path, "settings.PORTAL_URL", HOST="0.0.0.0", PORT="9000")
    assert result.stdout.strip() == "'http://0.0.0.0:9000'"


def test_database_url_selects_postgresql(tmp_path):
    result = setting(
        tmp_path, "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME']",
        DATABASE_URL="postgres://u:p@db.example:5432/portal",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('django.db.backends.postgresql', 'portal')"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEBUG": "maybe"}, "DEBUG must be true or false"),
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"PORT": "0"}, "PORT must be at least 1"),
        ({"PORTAL_URL": "portal.example.com"}, "PORTAL_URL must be an http(s) URL"),
        ({"PORTAL_URL": "ftp://portal.example.com"}, "PORTAL_URL must be an http(s) URL"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
        ({"SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE: cannot read"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
    ],
)
def test_it_fails_loudly_on_bad_values(tmp_path, env, message):
    result = setting(tmp_path, "1", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_without_debug_a_missing_secret_key_stops_start_up(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false", ALLOWED_HOSTS="portal.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is false" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_the_deploy_check_passes_without_warnings_for_an_https_portal(tmp_path):
    # Development secrets other than SECRET_KEY (signing keys...) come from var/ as in an
    # install that keeps var/ on a volume; a run with DEBUG on generates them.
    assert manage(tmp_path, "check").returncode == 0
    result = manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="portal.example.com",
        PORTAL_URL="https://portal.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_https_settings_follow_the_scheme_of_portal_url(tmp_path):
    expression = "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT"
    assert setting(tmp_path, expression).stdout.strip() == "(False, False, False)"
    https = setting(tmp_path, expression, PORTAL_URL="https://portal.example.com")
    assert https.stdout.strip() == "(True, True, True)"


def test_healthz_answers_through_the_middleware(client, db):
    response = client.get(reverse("portal-healthz"))
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["X-Frame-Options"] == "DENY"


CONCURRENT_WRITERS = """
import threading

import django
from django.core.management import call_command
from django.db import connections, transaction

django.setup()
call_command("migrate", verbosity=0)
from portal.models import Team

errors = []
start = threading.Barrier(8)


def writer(n):
    try:
        start.wait()
        for i in range(25):
            # Read, then write, in one transaction: the pattern that deadlocks without
            # BEGIN IMMEDIATE and fails at once without a busy timeout.
            with transaction.atomic():
                Team.objects.filter(name__startswith="team").count()
                Team.objects.create(name=f"team {n}-{i}")
    except Exception as e:
        errors.append(repr(e))
    finally:
        connections.close_all()


threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors or "no errors", Team.objects.count())
"""


def test_sqlite_concurrent_writers_do_not_hit_database_is_locked(tmp_path):
    result = run_python(tmp_path, CONCURRENT_WRITERS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no errors 200"
    with sqlite3.connect(tmp_path / "var" / "portal.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_readme_documents_every_environment_variable_of_the_settings():
    source = (BASE_DIR / "portal" / "settings.py").read_text()
    names = set(re.findall(r'(?:envbool|envint|envsecret|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', source))
    readme = (BASE_DIR / "README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert missing == [], f"add these to the configuration table of README.md: {missing}"


@pytest.mark.postgres
def test_the_tests_run_on_the_database_that_database_url_names(db):
    from django.db import connection

    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
