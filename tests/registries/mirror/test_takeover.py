"""A worker killed while blobs are uploading: the worker taking over closes the upload sessions
the dead one left open in the target registry, and the progress the page shows never goes back.

The same stack as test_worker_crash.py: real Redis, two docker-registry servers, two real
Celery workers sharing one SQLite file, a proxy that holds blob downloads so the kill lands while
uploads are open.
"""

import json
import os
import signal
import subprocess
import threading

import httpx
import pytest

from registries.mirror.copy import PARALLEL, SMALL_LANE
from tests.registries.mirror.test_worker_crash import (
    SlowBlobs,
    crash_env,
    create_mirror_job,
    job_row,
    start_worker,
    wait_for,
)
from tests.support.images import build_index, push

KB = 1 << 10
IN_FLIGHT = PARALLEL + SMALL_LANE  # blobs in flight at once (this image's blobs are all small)


def open_sessions(registry, repository: str) -> list[str]:
    """The upload sessions the registry holds open for ``repository``: in its storage, those with
    a start time (canceling one deletes it with the data; hash states stay behind)."""
    uploads = (registry.root / "data" / "docker" / "registry" / "v2" / "repositories"
               / repository / "_uploads")
    return sorted(p.parent.name for p in uploads.glob("*/startedat"))


class Poller(threading.Thread):
    """Reads the job's progress as the page would, every 50 ms, until stopped."""

    def __init__(self, db, pk):
        super().__init__(daemon=True)
        self.db, self.pk, self.values, self.done = db, pk, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                row = job_row(self.db, self.pk)
            except Exception:  # noqa: BLE001 - the database is busy: read again
                row = None
            if row:
                self.values.append((row["blobs_done"], row["bytes_done"], row["status"]))
            self.done.wait(0.05)


@pytest.mark.slow
def test_a_takeover_closes_the_dead_workers_uploads_and_progress_never_goes_back(
        tmp_path, redis_server, source_registry, target_registry):
    image = build_index(layer_sizes=[400 * KB, 300 * KB], shared_size=200 * KB)
    push(image, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    db = tmp_path / "portal.sqlite3"
    env = crash_env(tmp_path, redis_server.url, 6)
    repository = "demo-apps/app"
    with SlowBlobs(source_registry.url, count=len(image.blobs)) as proxy:
        pk = create_mirror_job(env, proxy, source_registry, target_registry)
        logs = []

        def start(name):
            return start_worker(tmp_path, env, name, logs)

        poller = Poller(db, pk)
        poller.start()
        first = start("worker1")
        second = None
        try:
            # Two blobs done, every blob in flight has its session open in the target.
            def uploading():
                row = job_row(db, pk)
                in_flight = min(IN_FLIGHT, row["blobs_total"] - row["blobs_done"])
                return (row["blobs_done"] >= 2 and in_flight > 0
                        and len(open_sessions(target_registry, repository)) == in_flight)

            wait_for(uploading, 60, "the first worker to have uploads open")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            left_open = open_sessions(target_registry, repository)
            recorded = json.loads(job_row(db, pk).get("open_uploads") or "[]")
            assert left_open and job_row(db, pk)["status"] == "running"
            second = start("worker2")
            row = wait_for(lambda: (r := job_row(db, pk))["status"] in ("succeeded", "failed")
                           and r, 120, "the redelivered task to finish")
        finally:
            poller.done.set()
            for p in (first, second):
                if p and p.poll() is None:
                    p.terminate()
                    threading.Timer(10, lambda p=p: p.poll() is None and p.kill()).start()
                    p.wait()
        output = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
    poller.join()
    assert row["status"] == "succeeded", (row["error"], output)
    assert row["result_digest"] == image.digest and row["attempts"] == 2

    # The dead worker's sessions are gone from the registry, each canceled by the takeover.
    assert open_sessions(target_registry, repository) == []
    assert len(recorded) == len(left_open)
    for location in recorded:
        assert "pusher-secret-pw" not in location and "Bearer" not in location
        answer = httpx.get(f"{target_registry.url}/v2/{location}", auth=target_registry.auth)
        assert answer.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in answer.text
    log = json.loads(row["log"])
    assert any("upload(s) the interrupted attempt left open" in line.get("event", "")
               for line in log)

    # What the page showed never went back.
    values = [(blobs, size) for blobs, size, _ in poller.values]
    assert any(status == "running" for *_, status in poller.values)
    for before, after in zip(values, values[1:], strict=False):
        assert after[0] >= before[0] and after[1] >= before[1], (before, after)

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{target_registry.username}:{target_registry.password}",
         f"docker://{target_registry.host}/{repository}:1.0"], capture_output=True, check=True)
    assert raw.stdout == image.content
    for child in image.images:
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
             f"{target_registry.username}:{target_registry.password}",
             f"docker://{target_registry.host}/{repository}@{child.digest}"],
            capture_output=True, check=True)
        assert raw.stdout == child.content
