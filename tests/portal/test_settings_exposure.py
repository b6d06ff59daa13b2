"""A portal bound to every address is a production portal: DEBUG off, PORTAL_URL required.

The settings are imported in a child process with HOST=0.0.0.0 (nothing binds it), and
``manage.py runportal --check`` must refuse to start without PORTAL_URL or with DEBUG=true.
"""

import socket
from contextlib import contextmanager

from tests.portal.test_settings import manage, setting


@contextmanager
def held_port():
    """A port listened on at 127.0.0.1, so 0.0.0.0 cannot be bound on it by anyone.

    Should the refusal come too late, runportal finds the port in use and stops there:
    nothing ever listens on every address during the test.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


def test_debug_is_off_unless_asked_for(tmp_path):
    result = setting(tmp_path, "settings.DEBUG", HOST="0.0.0.0", PORTAL_URL="https://portal.example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_debug_is_off_on_loopback_too(tmp_path):
    result = setting(tmp_path, "settings.DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_runportal_on_every_address_requires_portal_url(tmp_path):
    with held_port() as port:
        result = manage(tmp_path, "runportal", "--check", "--no-seed", "--timeout", "5", HOST="0.0.0.0", PORT=port)
    assert result.returncode != 0
    assert "PORTAL_URL" in result.stdout + result.stderr
    assert "is in use" not in result.stderr, "runportal got as far as binding the port"


def test_runportal_on_every_address_refuses_debug(tmp_path):
    with held_port() as port:
        result = manage(tmp_path, "runportal", "--check", "--no-seed", "--timeout", "5",
                        HOST="0.0.0.0", PORT=port, DEBUG="true", PORTAL_URL="https://portal.example.com")
    assert result.returncode != 0
    assert "DEBUG" in result.stdout + result.stderr
    assert "is in use" not in result.stderr, "runportal got as far as binding the port"
