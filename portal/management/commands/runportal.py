"""Run the whole portal on this machine: what `make run` calls.

Migrates, loads the demo data, picks a broker and starts web (uvicorn), the Celery worker and
beat together through honcho (Procfile). Ctrl-C stops them all.

The broker: REDIS_URL when set; otherwise a private redis-server on a free port (its files in
var/redis) when the program exists; otherwise Kombu's filesystem transport (var/queue), so the
portal runs with no Redis at all.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.settings import is_loopback

LOOPBACK = "127.0.0.1"
# Lines in honcho's output that show each process is up.
READY_PATTERNS = {
    "web": re.compile(r"^web\.1\s.*Uvicorn running on"),
    "worker": re.compile(r"^worker\.1\s.*ready\.?\s*$"),
    "beat": re.compile(r"^beat\.1\s.*beat: Starting"),
}


class Stop(Exception):
    """SIGTERM arrived: stop everything as for Ctrl-C."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop(process: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fresh_metrics_dir(var_dir: Path) -> Path:
    """The directory web, worker and beat write their metrics to (summed by /metrics), emptied:
    a previous run's files would otherwise be summed in (PROMETHEUS_MULTIPROC_DIR wins)."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or var_dir / "metrics")
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
    return directory


class Command(BaseCommand):
    help = "Migrate, load the demo data and run web, worker and beat (Ctrl-C stops them all)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--broker", choices=["auto", "redis", "filesystem"], default="auto",
            help="auto: REDIS_URL, else a private redis-server, else the filesystem transport.",
        )
        parser.add_argument("--no-seed", action="store_true", help="Do not load the demo data.")
        parser.add_argument(
            "--check", action="store_true",
            help="Start everything, wait until web, worker and beat are up, then stop (exit 0).",
        )
        parser.add_argument("--timeout", type=float, default=90, help="Seconds --check waits.")

    def handle(self, *args, broker, no_seed, check, timeout, **options):
        host, port = settings.HOST, settings.PORT
        # Settings already refuse a public HOST without PORTAL_URL. DEBUG pages show settings,
        # source and request data to whoever triggers an error: only this machine may see them.
        if settings.DEBUG and not is_loopback(host):
            raise CommandError(f"DEBUG=true is only allowed on a loopback HOST; unset DEBUG to serve on {host}.")
        if not port_is_free(host, port):
            raise CommandError(f"{host}:{port} is in use. Stop what uses it, or pick another port: make run PORT={port + 1}")
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)

        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        login = ""
        redis = None
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            broker_url, redis = self.pick_broker(broker, var_dir)
            env = self.child_env(broker_url, var_dir)
            if not no_seed:
                # In a child with the chosen broker, so the work the demo release queues (its
                # image check) reaches the worker instead of this process's default broker.
                seeded = subprocess.run(
                    [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "seed_demo"],
                    env=env, capture_output=True, text=True,
                )
                self.stdout.write(seeded.stdout.rstrip("\n"))
                if seeded.returncode != 0:
                    raise CommandError(f"Loading the demo data failed:\n{seeded.stderr[-2000:]}")
                login = next((line for line in seeded.stdout.splitlines() if line.startswith("Admin login")), "")
            self.stdout.write(self.style.SUCCESS(f"\nThe portal: {env['PORTAL_URL']}/") + "  (Ctrl-C stops it)")
            if login:
                self.stdout.write(login)
            return self.run_honcho(env, check=check, timeout=timeout)
        except KeyboardInterrupt:
            self.stdout.write("\nStopped.")
        except Stop:
            self.stdout.write("\nStopped (SIGTERM).")
        finally:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            stop(redis)

    def _on_sigterm(self, signum, frame):
        raise Stop()

    def pick_broker(self, choice: str, var_dir: Path) -> tuple[str, subprocess.Popen | None]:
        redis_url = os.environ.get("REDIS_URL", "").strip()
        if choice in ("auto", "redis") and redis_url:
            self.stdout.write("Broker: REDIS_URL.")
            return redis_url, None
        binary = shutil.which("redis-server")
        if choice in ("auto", "redis") and binary:
            return self.start_redis(binary, var_dir)
        if choice == "redis":
            raise CommandError("--broker redis needs REDIS_URL or the redis-server program (apt-get install redis-server)")
        self.stdout.write(f"Broker: Kombu's filesystem transport in {var_dir / 'queue'} (no Redis found).")
        return "filesystem://", None

    def start_redis(self, binary: str, var_dir: Path) -> tuple[str, subprocess.Popen]:
        directory = var_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # Its own session: Ctrl-C reaches honcho's processes first; redis is stopped last.
        process = subprocess.Popen(
            [binary, "--bind", LOOPBACK, "--port", str(port), "--dir", str(directory),
             "--appendonly", "no", "--save", "60 1", "--logfile", str(directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise CommandError(f"redis-server did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
        self.stdout.write(f"Broker: private redis-server on {LOOPBACK}:{port} (files in {directory}).")
        return f"redis://{LOOPBACK}:{port}/0", process

    def child_env(self, broker_url: str, var_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            PATH=bin_dir + os.pathsep + env.get("PATH", ""),
            HOST=settings.HOST,
            # honcho gives every process its own PORT; web reads WEB_PORT, the rest PORTAL_URL.
            WEB_PORT=str(settings.PORT),
            PORTAL_URL=settings.PORTAL_URL,
            PORTAL_VAR_DIR=str(var_dir),
            CELERY_BROKER_URL=broker_url,
            DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "portal.settings"),
            PYTHONUNBUFFERED="1",
            PROMETHEUS_MULTIPROC_DIR=str(fresh_metrics_dir(var_dir)),
        )
        return env

    def run_honcho(self, env: dict[str, str], *, check: bool, timeout: float) -> None:
        base_dir = Path(settings.BASE_DIR)
        command = [sys.executable, "-m", "honcho", "start", "--no-colour",
                   "-f", str(base_dir / "Procfile"), "-d", str(base_dir)]
        if not check:
            # In the foreground: honcho shares the terminal, so Ctrl-C reaches it and its children
            # directly. A signal sent to this process alone is passed on; honcho ignores repeats.
            honcho = subprocess.Popen(command, env=env, cwd=base_dir)
            stopping = []

            def pass_on(signum, frame):
                stopping.append(signum)
                if honcho.poll() is None:
                    honcho.send_signal(signum)

            previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                returncode = honcho.wait()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if stopping or returncode in (130, 143, -signal.SIGINT, -signal.SIGTERM):
                self.stdout.write("\nStopped.")
                return
            if returncode:
                raise CommandError(f"honcho exited with {returncode}")
            return

        honcho = subprocess.Popen(command, env=env, cwd=base_dir, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        seen = {name: threading.Event() for name in READY_PATTERNS}

        def relay():
            for line in honcho.stdout:
                self.stdout.write(line.rstrip("\n"))
                # honcho prefixes "HH:MM:SS name.1 | "; drop the time to match the name.
                body = line.split(" ", 1)[-1]
                for name, pattern in READY_PATTERNS.items():
                    if pattern.search(body.replace(" | ", " ", 1)):
                        seen[name].set()

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            while not all(e.is_set() for e in seen.values()):
                if honcho.poll() is not None:
                    raise CommandError(f"honcho exited with {honcho.returncode} before the portal was up")
                if time.monotonic() > deadline:
                    missing = ", ".join(n for n, e in seen.items() if not e.is_set())
                    raise CommandError(f"not up after {timeout:.0f} s: {missing}")
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://{LOOPBACK if env['HOST'] in ('0.0.0.0', '') else env['HOST']}:{env['WEB_PORT']}/healthz", timeout=10) as r:
                body = r.read().decode().strip()
            self.stdout.write(self.style.SUCCESS(f"Check passed: web answers /healthz with {body!r}; worker and beat are up."))
        finally:
            stop(honcho, signal.SIGTERM)
            reader.join(timeout=5)
