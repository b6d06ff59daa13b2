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
    "DJANGO_ALLOW_ASYNC_UNSAFE", "PORTAL_ENV", "PORTAL_TRUSTED_PROXIES", "PORTAL_PROXY_HOST",
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
    assert result.stdout.strip() == "(False, 'http://127.0.0.1:8000', 'django.db.backends.sqlite3')"
    secret_file = tmp_path / "var" / "secret_key"
    assert secret_file.stat().st_mode & 0o077 == 0
    # The generated key is kept: a second start reads the same one.
    first = secret_file.read_text()
    assert setting(tmp_path, "1").returncode == 0
    assert secret_file.read_text() == first


def test_portal_url_follows_a_loopback_host_and_port(tmp_path):
    result = setting(tmp_path, "settings.PORTAL_URL", HOST="127.0.0.1", PORT="9000")
    assert result.stdout.strip() == "'http://127.0.0.1:9000'"


def test_a_loopback_portal_answers_to_every_loopback_name(tmp_path):
    result = setting(tmp_path, "sorted(settings.ALLOWED_HOSTS)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['127.0.0.1', '[::1]', 'localhost']"
    proxy = setting(tmp_path, "settings.ALLOWED_HOSTS", PORTAL_URL="https://portal.example.com",
                    PORTAL_PROXY_HOST="registry.example.com:5000")
    assert proxy.stdout.strip() == "['portal.example.com', 'registry.example.com']"


def test_on_a_public_address_debug_is_off_and_portal_url_is_required(tmp_path):
    # Nothing binds 0.0.0.0 here: only the settings are imported.
    result = setting(tmp_path, "settings.DEBUG", HOST="0.0.0.0")
    assert result.returncode != 0
    assert "PORTAL_URL must be set when HOST (0.0.0.0) is not a loopback address" in result.stderr
    given = setting(tmp_path, "settings.DEBUG, settings.PORTAL_URL, settings.ALLOWED_HOSTS, "
                    "settings.PORTAL_PROXY_HOST", HOST="0.0.0.0", PORTAL_URL="http://portal.example.com:8000")
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == (
        "(False, 'http://portal.example.com:8000', ['portal.example.com'], 'portal.example.com:8000')")
    unreachable = setting(tmp_path, "1", HOST="0.0.0.0", PORTAL_URL="http://0.0.0.0:8000")
    assert "PORTAL_URL must name a host people can reach" in unreachable.stderr


def test_development_secrets_are_generated_whatever_debug_says(tmp_path):
    result = setting(tmp_path, "settings.DEBUG, settings.PORTAL_ENV", DEBUG="false")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(False, 'development')"
    assert (tmp_path / "var" / "secret_key").exists()
    assert (tmp_path / "var" / "encryption_keys").exists()


def test_trusted_proxies_drive_the_forwarded_proto_header(tmp_path):
    expression = "settings.PORTAL_TRUSTED_PROXIES, settings.SECURE_PROXY_SSL_HEADER"
    assert setting(tmp_path, expression).stdout.strip() == "([], None)"
    trusted = setting(tmp_path, expression, PORTAL_TRUSTED_PROXIES="10.0.0.1, 192.168.0.0/16")
    assert trusted.stdout.strip() == "(['10.0.0.1', '192.168.0.0/16'], ('HTTP_X_FORWARDED_PROTO', 'https'))"


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
        ({"PORTAL_ENV": "staging"}, "PORTAL_ENV must be development or production"),
        ({"PORTAL_TRUSTED_PROXIES": "proxy.example.com"}, "PORTAL_TRUSTED_PROXIES: 'proxy.example.com' is not"),
    ],
)
def test_it_fails_loudly_on_bad_values(tmp_path, env, message):
    result = setting(tmp_path, "1", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_in_production_a_missing_secret_key_stops_start_up(tmp_path):
    result = manage(tmp_path, "check", PORTAL_ENV="production", ALLOWED_HOSTS="portal.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when PORTAL_ENV is production" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_the_deploy_check_passes_without_warnings_for_an_https_portal(tmp_path):
    # Secrets other than SECRET_KEY (signing keys...) come from var/ as in an install that
    # keeps var/ on a volume; a development run generates them.
    assert manage(tmp_path, "check").returncode == 0
    result = manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING",
        PORTAL_ENV="production", SECRET_KEY=secrets.token_urlsafe(50),
        PORTAL_URL="https://portal.example.com", PORTAL_TRUSTED_PROXIES="10.0.0.1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_https_settings_follow_the_scheme_of_portal_url(tmp_path):
    expression = "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT"
    assert setting(tmp_path, expression).stdout.strip() == "(False, False, False)"
    https = setting(tmp_path, expression, PORTAL_URL="https://portal.example.com")
    assert https.stdout.strip() == "(True, True, True)"


# Made at run time: the DEBUG page also shows the source lines around each frame.
PASSWORDS = {name: f"{name}-{secrets.token_hex(6)}" for name in ("db", "broker", "cache", "meta", "local")}


def _fail_with_a_connection_string_in_a_variable():
    connection_string = f"amqp://guest:{PASSWORDS['local']}@queue:5672//"  # noqa: F841 (a frame variable)
    raise RuntimeError("boom")


def _technical_500_page(request) -> str:
    from django.views.debug import technical_500_response

    try:
        _fail_with_a_connection_string_in_a_variable()
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def test_no_error_page_shows_a_connection_string_password(rf, settings):
    """The DEBUG page lists settings and request META: passwords inside URLs stay hidden."""
    settings.DATABASE_URL = f"postgres://portal:{PASSWORDS['db']}@db.example.com:5432/portal"
    settings.CELERY_BROKER_URL = f"redis://:{PASSWORDS['broker']}@redis.example.com:6379/0"
    settings.PORTAL_EXTRA_CACHES = {"default": {"LOCATION": [f"redis://u:{PASSWORDS['cache']}@cache:6379"]}}
    # Under a WSGI server META holds the environment.
    page = _technical_500_page(rf.get("/boom", REDIS_URL=f"rediss://:{PASSWORDS['meta']}@redis.example.com"))
    assert "redis.example.com" in page and "db.example.com" in page  # the rest still shows
    for password in PASSWORDS.values():
        assert password not in page
    assert "redis://:********************@redis.example.com" in page


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
