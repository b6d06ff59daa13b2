"""A real Celery worker killed with SIGKILL mid-copy; the redelivered task finishes.

Everything runs in subprocesses sharing one SQLite file (the worker must see the rows): real
Redis, two real registries, a proxy that slows blob downloads so the kill lands mid-copy.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.faults import Proxy
from tests.support.images import build_index, push

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable
KB = 1 << 10


class SlowBlobs(Proxy):
    """The first `count` blob downloads take 0.8 s, 1.6 s, 2.4 s …: blobs finish one by one."""

    def __init__(self, upstream, count):
        super().__init__(upstream)
        self.count, self.seen = count, 0

    def intercept(self, handler, body):
        if handler.command == "GET" and "/blobs/sha256:" in handler.path:
            with self.lock:
                self.seen += 1
                n = self.seen
            if n <= self.count:
                time.sleep(0.8 * n)
        return False


SETUP = """
from django.contrib.auth import get_user_model
from portal.models import Membership, Role, Team
from registries.mirror import services as mirror_services
from registries.models import ExternalRegistry, Provider
team = Team.objects.create(name="Acme")
alice = get_user_model().objects.create_user("alice", "a@example.com", "pw")
Membership.objects.create(user=alice, team=team, role=Role.ADMIN)
def link(host, user, pw):
    r = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=host, username=user, insecure=True)
    r.secret = pw
    r.save()
    return r
source = link({source!r}, {su!r}, {sp!r})
target = link({target!r}, {tu!r}, {tp!r})
job = mirror_services.mirror_create(team=team, registry=target, source={ref!r},
    target_repository="demo-apps/app", target_tag="1.0", user=alice)
print(job.pk)
"""


def job_row(db: Path, pk: int) -> dict:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("select * from registries_mirrorjob where id = ?", (pk,)).fetchone()
        return dict(row)


def wait_for(predicate, deadline: float, what: str):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def crash_env(tmp_path: Path, redis_url: str, db_number: int) -> dict[str, str]:
    """The environment of the portal's processes in these tests: one SQLite file, a Redis
    database of the test's own, redelivery after 6 s with Kombu looking every second (the
    production path, faster), a 4 s mirror lease."""
    return {**os.environ, "PORTAL_VAR_DIR": str(tmp_path / "var"),
            "PORTAL_SQLITE_PATH": str(tmp_path / "portal.sqlite3"), "DATABASE_URL": "",
            "CELERY_BROKER_URL": redis_url.replace("/0", f"/{db_number}"),
            "PORTAL_TASK_VISIBILITY_TIMEOUT": "6", "PORTAL_TASK_RESTORE_SECONDS": "1",
            "PORTAL_MIRROR_LEASE_SECONDS": "4",
            "PORTAL_ALLOW_PRIVATE_REGISTRIES": "true", "CELERY_TASK_ALWAYS_EAGER": "false",
            "DJANGO_SETTINGS_MODULE": "portal.settings"}


def create_mirror_job(env: dict[str, str], proxy, source_registry, target_registry) -> int:
    """Migrate, link both registries and queue a mirror job of ``library/app:1.0`` read through
    ``proxy``: its primary key."""
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    code = SETUP.format(source=proxy.host, su=source_registry.username,
                        sp=source_registry.password, target=target_registry.host,
                        tu=target_registry.username, tp=target_registry.password,
                        ref=f"{proxy.host}/library/app:1.0")
    return int(subprocess.run([*manage, "shell", "-c", code], env=env, cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip().splitlines()[-1])


def start_worker(tmp_path: Path, env: dict[str, str], name: str, logs: list[Path]) -> subprocess.Popen:
    """One Celery worker (solo pool: one task at a time) logging to ``<name>.log``."""
    command = [PYTHON, "-m", "celery", "-A", "portal", "worker", "--pool=solo",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]
    log_path = tmp_path / f"{name}.log"
    logs.append(log_path)
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log_path.open("wb"),
                            stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_worker_killed_mid_copy_is_redelivered_and_the_copy_finishes(
        tmp_path, redis_server, source_registry, target_registry):  # noqa: F811
    image = build_index(layer_sizes=[400 * KB, 300 * KB], shared_size=200 * KB)
    push(image, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    db = tmp_path / "portal.sqlite3"
    env = crash_env(tmp_path, redis_server.url, 5)
    with SlowBlobs(source_registry.url, count=len(image.blobs)) as proxy:
        pk = create_mirror_job(env, proxy, source_registry, target_registry)
        logs = []

        def start(name):
            return start_worker(tmp_path, env, name, logs)

        first = start("worker1")
        second = None
        try:
            row = wait_for(lambda: (r := job_row(db, pk))["blobs_done"] >= 2 and r, 60,
                           "the first worker to copy two blobs")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            row = job_row(db, pk)
            assert row["status"] == "running" and row["blobs_done"] < row["blobs_total"]
            second = start("worker2")
            row = wait_for(lambda: (r := job_row(db, pk))["status"] in ("succeeded", "failed")
                           and r, 120, "the redelivered task to finish")
        finally:
            for p in (first, second):
                if p and p.poll() is None:
                    p.terminate()
                    threading.Timer(10, lambda p=p: p.poll() is None and p.kill()).start()
                    p.wait()
        output = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
    assert row["status"] == "succeeded", (row["error"], output)
    assert row["result_digest"] == image.digest and row["attempts"] == 2
    log = json.loads(row["log"])
    assert any("Resumed" in line.get("event", "") for line in log)
    actions = [line["action"] for line in log if "digest" in line]
    assert actions.count("present") >= 2  # copied by the killed worker, skipped by the second
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{target_registry.username}:{target_registry.password}",
         f"docker://{target_registry.host}/demo-apps/app:1.0"], capture_output=True, check=True)
    assert raw.stdout == image.content
