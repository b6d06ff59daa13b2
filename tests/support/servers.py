"""Real servers for tests, on loopback and free ports, started by fixtures and stopped at the end.

Helpers other test modules import:

- ``free_port()``: a TCP port nobody listens on (bind to port 0, read it back).
- ``wait_for_port(host, port, deadline)``: poll until something accepts connections.
- ``require_binary(name)``: the path of a program; skip the test when it is missing, but fail
  it when ``CI=true`` (CI must never pass by skipping).
- ``require_server(reason)``: the same rule for a server that cannot be reached.
- ``poll(fn, until=..., seconds=...)``: call ``fn`` until ``until(value)`` holds or the
  deadline passes; returns the last value (the caller asserts on it).

Fixtures (registered for the whole suite by the top conftest.py):

- ``redis_server``: a private ``redis-server`` for the session; its URL is ``redis_server.url``.
"""

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def require_server(reason: str) -> None:
    """Skip (locally) or fail (under CI=true) because a server the test needs is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing server fails the test)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Return the full path of program ``name``; skip locally or fail under CI when missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        require_server(f"{name} is not installed (make test installs it through apt)")
    return path


def poll(fn, *, until, seconds: float = 15.0, every: float = 0.1):
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, deadline: float, *, process: subprocess.Popen | None = None) -> None:
    """Poll until ``host:port`` accepts a connection; ``deadline`` is a ``time.monotonic()`` value.

    When ``process`` is given and exits first, fail at once with its output instead of waiting.
    """
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate ``process`` and wait for it; kill it when it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@dataclass
class RedisServer:
    host: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def start_redis(directory: Path, *, port: int | None = None, timeout: float = 15) -> RedisServer:
    """Start ``redis-server`` on ``port`` (default: a free loopback port) with its files in
    ``directory``."""
    binary = require_binary("redis-server")
    port = port or free_port()
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            binary, "--bind", LOOPBACK, "--port", str(port), "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    server = RedisServer(LOOPBACK, port, process)
    deadline = time.monotonic() + timeout
    try:
        wait_for_port(LOOPBACK, port, deadline, process=process)
        # Redis accepts connections a moment before it answers (while loading).
        while not server.ping():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {port} does not answer PING")
            time.sleep(0.05)
    except Exception:
        stop_process(process)
        output = log.read_text() if log.exists() else ""
        raise RuntimeError(f"redis-server did not start: {output[-2000:]}") from None
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A private redis-server for the test session."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_process(server.process)
