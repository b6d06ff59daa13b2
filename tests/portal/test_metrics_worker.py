"""The worker's own metrics port (``PORTAL_WORKER_METRICS_PORT``): a Celery worker as the
Procfile runs it, on a real Redis broker, runs a task and serves its sample."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import PortalStack
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

TASK = "registries.tasks.sweep_pending"  # beat's cheap sweep: no registry needed


def task_runs(url: str) -> float:
    text = httpx.get(url, timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "portal_task_runs_total"
               and sample.labels.get("task") == TASK and sample.labels.get("outcome") == "success")


def test_a_worker_serves_its_task_metrics_on_its_own_port(tmp_path, redis_server):
    port = free_port()
    stack = PortalStack(tmp_path / "stack", names=("worker",), seed=None,
                        broker_url=redis_server.url.rsplit("/", 1)[0] + "/10",
                        extra_env={"PORTAL_WORKER_METRICS_PORT": str(port),
                                   "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")})
    (tmp_path / "metrics").mkdir()
    stack.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while True:  # the port opens once the worker has started
            try:
                before = task_runs(url)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, stack.log("worker")[-2000:]
                time.sleep(0.2)
        stack.shell(f"from portal.publish import publish; assert publish({TASK!r})")
        deadline = time.monotonic() + 60
        while task_runs(url) < before + 1:
            assert time.monotonic() < deadline, stack.log("worker")[-2000:]
            time.sleep(0.2)
    finally:
        stack.stop()
