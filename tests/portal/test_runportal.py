"""`make run` = `manage.py runportal`: migrate, demo data, a broker, web + worker + beat.

Each case runs the real command in a subprocess with its own var/ and port, in --check mode:
it starts everything, waits until web answers /healthz and the worker and beat are up, stops.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.servers import free_port, require_binary

pytestmark = pytest.mark.slow
redis_server = servers.redis_server  # the session fixture

BASE_DIR = Path(__file__).resolve().parents[2]
CLEARED = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PORTAL_URL", "HOST", "PORT",
           "PORTAL_SQLITE_PATH", "DJANGO_ALLOW_ASYNC_UNSAFE", "PORTAL_ADMIN_PASSWORD", "DEBUG",
           "PORTAL_ENV", "PORTAL_TRUSTED_PROXIES", "ALLOWED_HOSTS", "PORTAL_PROXY_HOST"}


def runportal(tmp_path, *args, path=None, **env) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    child_env.update({"PORTAL_VAR_DIR": str(tmp_path / "var"), "PORT": str(free_port()), **env})
    if path is not None:
        child_env["PATH"] = path
    return subprocess.run(
        [sys.executable, "manage.py", "runportal", "--check", *args], cwd=BASE_DIR, env=child_env,
        capture_output=True, text=True, timeout=240,
    )


def test_it_runs_everything_with_no_redis_at_all(tmp_path):
    # No REDIS_URL and a PATH without redis-server: Kombu's filesystem transport takes over.
    result = runportal(tmp_path, path=str(Path(sys.executable).parent))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Broker: Kombu's filesystem transport" in output
    assert "Check passed" in output
    assert "The portal: http://127.0.0.1:" in output
    password = (tmp_path / "var" / "admin_password").read_text().strip()
    assert f"Admin login: admin / {password}" in output
    assert list((tmp_path / "var").glob("celerybeat-schedule*"))


def test_it_starts_a_private_redis_when_the_program_exists(tmp_path):
    require_binary("redis-server")
    result = runportal(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Broker: private redis-server on 127.0.0.1:" in output
    assert "Check passed" in output
    # The private redis is stopped with the rest.
    port = int(output.split("Broker: private redis-server on 127.0.0.1:")[1].split(" ")[0])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_it_uses_redis_url_when_set(tmp_path, redis_server):
    result = runportal(tmp_path, "--no-seed", REDIS_URL=redis_server.url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Broker: REDIS_URL." in output
    assert "Admin login" not in output


def test_it_says_which_port_to_use_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runportal(tmp_path, PORT=str(port))
    assert result.returncode != 0
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert f"make run PORT={port + 1}" in result.stderr


# Nothing binds 0.0.0.0 in these two: each refusal comes before any socket.
def test_on_a_public_host_it_requires_portal_url(tmp_path):
    result = runportal(tmp_path, HOST="0.0.0.0")
    assert result.returncode != 0
    assert "Configuration error: PORTAL_URL must be set when HOST (0.0.0.0) is not a loopback" in result.stderr
    assert "Traceback" not in result.stderr


def test_on_a_public_host_it_refuses_debug(tmp_path):
    result = runportal(tmp_path, HOST="0.0.0.0", PORTAL_URL="http://portal.example.com:8000", DEBUG="true")
    assert result.returncode != 0
    assert "DEBUG=true is only allowed on a loopback HOST; unset DEBUG to serve on 0.0.0.0." in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "portal.sqlite3").exists()  # refused before migrating


def test_with_debug_off_it_serves_loopback_names_static_files_and_friendly_errors(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(PORTAL_VAR_DIR=str(tmp_path / "var"), PORT=str(port), PYTHONUNBUFFERED="1",
               PATH=str(Path(sys.executable).parent))
    log = (tmp_path / "run.log").open("w+")
    process = subprocess.Popen([sys.executable, "manage.py", "runportal", "--no-seed"], cwd=BASE_DIR,
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.2)
        status, page = get(f"http://localhost:{port}/accounts/login/")
        assert status == 200 and "Log in" in page
        status, css = get(f"http://localhost:{port}/static/portal/portal.css")
        assert status == 200 and "{" in css
        status, page = get(f"http://127.0.0.1:{port}/no/such/page")
        assert status == 404 and "Not found" in page and "Traceback" not in page
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


@pytest.mark.parametrize("how", ["ctrl-c to the group", "sigterm to runportal"])
def test_stopping_it_stops_web_worker_beat_and_redis(tmp_path, how):
    require_binary("redis-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(PORTAL_VAR_DIR=str(tmp_path / "var"), PORT=str(port), PYTHONUNBUFFERED="1")
    log = (tmp_path / "run.log").open("w+")
    # Its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to the group.
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runportal"], cwd=BASE_DIR, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.read() == b"ok\n"
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.2)
        if how == "ctrl-c to the group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = (tmp_path / "run.log").read_text()
    assert "Stopped." in output
    deadline = time.monotonic() + 15
    while True:  # every process of the group is gone (honcho, uvicorn, celery and its pool)
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes left running after Ctrl-C:\n" + output
        time.sleep(0.1)
    redis_port = int(output.split("Broker: private redis-server on 127.0.0.1:")[1].split(" ")[0])
    for p in (port, redis_port):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", p), timeout=1):
            pass
