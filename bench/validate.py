"""Benchmark "Add External Registry" until the status is on the page (goal: median < 2 s).

Everything runs as in production, on loopback: the web server and a Celery worker (separate
processes) over a private redis-server, sharing a SQLite file; moto's server (IAM auth on) for
AWS; Debian's docker-registry as the ECR registry (through PORTAL_REGISTRY_HOST_MAP). Each run
submits the form with a read-only user's keys and a test image, then polls the list fragment
at the interval the page itself asks for (its hx-trigger: 150 ms while a validation is young),
until the row says Connected; then the registry is deleted.

Parts, from the worker's log: queue (form submitted -> task received by the worker), token
exchange (ECR GetAuthorizationToken), STS account check (the two run at once: login is both),
ping (/v2/ with the token), manifest (HEAD of the test image).

Run: `.venv/bin/python bench/validate.py [--runs N]`; writes docs/benchmarks.md's
"Registry validation" section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import boto3  # noqa: E402
import httpx  # noqa: E402

from bench.results import RESULTS, markers, write_block  # noqa: E402
from tests.support.processes import PortalStack  # noqa: E402
from tests.support.registry import (  # noqa: E402
    ECR_HOST,
    ECR_READ_ONLY_POLICY,
    MOTO_TOKEN_PASSWORD,
    REGION,
    push_test_image,
    start_distribution,
)
from tests.support.registry_pages import add_registry, csrf  # noqa: E402
from tests.support.servers import LOOPBACK, free_port, start_redis, stop_process, wait_for_port  # noqa: E402

BEGIN, END = markers("validate.py")
POLL_TRIGGER = re.compile(r'hx-trigger="every (\d+)(ms|s)"')
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")


def start_moto(directory: Path):
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf", "MOTO_CALL_RESET_API": "false"}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
                               stdout=(directory / "moto.log").open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_for_port(LOOPBACK, port, time.monotonic() + 30, process=process)
    url = f"http://{LOOPBACK}:{port}"
    iam = boto3.client("iam", region_name=REGION, endpoint_url=url, aws_access_key_id="setup",
                       aws_secret_access_key="setup")
    iam.create_user(UserName="reader")
    arn = iam.create_policy(PolicyName="reader", PolicyDocument=json.dumps(ECR_READ_ONLY_POLICY))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="reader", PolicyArn=arn)
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    httpx.post(f"{url}/moto-api/reset-auth", content="0").raise_for_status()
    return process, url, key["AccessKeyId"], key["SecretAccessKey"]


def worker_parts(log: str, pk: int) -> dict[str, float]:
    """Task-received time (epoch) and the service's timings for registry ``pk`` from the log."""
    parts: dict[str, float] = {}
    for line in log.splitlines():
        match = LOG_TIME.match(line)
        if "Task registries.tasks.validate_registry" in line and "received" in line and match and "received" not in parts:
            parts["received"] = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        m = re.search(rf"registry {pk}: connected in ([\d.]+) s \((.*)\)", line)
        if m:
            parts["service"] = float(m.group(1))
            for item in m.group(2).split(", "):
                name, value = item.split()
                parts[name] = float(value)
    return parts


def poll_seconds(html: str) -> float:
    """The polling interval the page asks htmx for (the browser waits it before each poll)."""
    value, unit = POLL_TRIGGER.search(html).groups()
    return int(value) / (1000 if unit == "ms" else 1)


def one_run(stack: PortalStack, client: httpx.Client, keys: tuple[str, str]) -> dict[str, float]:
    log_before = len(stack.log("worker"))
    started_wall, started = time.time(), time.perf_counter()
    response = add_registry(client, {"provider": "ecr", "endpoint": ECR_HOST, "username": keys[0],
                                     "password": keys[1], "test_image": "demo-apps/nginx:latest"})
    assert response.status_code == 302, response.text[-1000:]
    client.get(response.headers["location"])  # the list page the browser lands on
    while True:
        fragment = client.get("/registries/", headers={"HX-Request": "true"})
        if 'data-status="connected"' in fragment.text:
            total = time.perf_counter() - started
            break
        if 'data-status="failed"' in fragment.text or time.perf_counter() - started > 60:
            raise RuntimeError(f"validation did not connect: {fragment.text[-1500:]}")
        time.sleep(poll_seconds(fragment.text))
    pk = int(re.search(r'<tr id="registry-(\d+)"', fragment.text).group(1))
    deadline = time.monotonic() + 10
    while "service" not in (parts := worker_parts(stack.log("worker")[log_before:], pk)):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker's log has no timing line")
        time.sleep(0.05)
    result = {"total": total, "queue": parts["received"] - started_wall, **parts}
    client.post(f"/registries/{pk}/delete/", data={"csrfmiddlewaretoken": csrf(client)})
    return result


def write_results(runs: list[dict[str, float]], n: int) -> None:
    def med(key):
        values = [r[key] for r in runs if key in r]
        return statistics.median(values) if values else float("nan")

    total = med("total")
    lines = [
        BEGIN,
        "## Registry validation (bench/validate.py)",
        "",
        "From submitting Add External Registry (Amazon ECR, read-only keys, test image) to the row",
        "showing Connected on the list page, polled at the page's own interval (150 ms while a",
        "validation is young, then backing off). Web server and",
        "Celery worker are separate processes over a private redis-server and a shared SQLite file;",
        "AWS is moto's server with IAM auth, the registry Debian's docker-registry, all on loopback.",
        f"Median of {n} runs after a warm-up run. Target: at most 0.5 s.",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Regenerate with `.venv/bin/python bench/validate.py`.",
        "",
        "| part | median |",
        "| --- | ---: |",
        f"| **form submitted → Connected on the page** | **{total:.2f} s** ({'target met' if total <= 0.5 else 'target NOT met'}) |",
        f"| queue (submit → task received by the worker) | {med('queue') * 1000:.0f} ms |",
        f"| token exchange (ECR GetAuthorizationToken) | {med('token') * 1000:.0f} ms |",
        f"| STS account check (GetCallerIdentity), beside the token exchange | {med('sts') * 1000:.0f} ms |",
        f"| login: both AWS calls, at once | {med('login') * 1000:.0f} ms |",
        f"| ping (/v2/ with the token) | {med('ping') * 1000:.0f} ms |",
        f"| test image manifest (HEAD) | {med('manifest') * 1000:.0f} ms |",
        f"| whole validation in the worker | {med('service') * 1000:.0f} ms |",
        "",
        "The rest of the total is the page's polling interval (on average half of 150 ms) and the",
        "redirect after the form.",
        "",
        "All runs (s): " + ", ".join(f"{r['total']:.2f}" for r in runs),
        END,
    ]
    block = "\n".join(lines)
    write_block(block, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="portal-bench-validate-"))
    processes = []
    stack = None
    try:
        redis = start_redis(directory)
        processes.append(redis.process)
        moto, moto_url, key_id, secret = start_moto(directory)
        processes.append(moto)
        registry = start_distribution(directory / "registry", users={"AWS": MOTO_TOKEN_PASSWORD})
        processes.append(registry.process)
        push_test_image(registry, "demo-apps/nginx", "latest")
        stack = PortalStack(directory, redis.url, seed="team", debug=True, extra_env={
            "LOG_LEVEL": "INFO", "PORTAL_REGISTRY_HOST_MAP": f"{ECR_HOST}={registry.url}",
            "AWS_ENDPOINT_URL_ECR": moto_url, "AWS_ENDPOINT_URL_STS": moto_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }).start()
        client = stack.session("alice")
        one_run(stack, client, (key_id, secret))  # warm-up: imports, first connections
        runs = []
        for i in range(args.runs):
            runs.append(one_run(stack, client, (key_id, secret)))
            print(f"run {i + 1}: {runs[-1]['total']:.3f} s", json.dumps(runs[-1]), flush=True)
        write_results(runs, args.runs)
        print(f"median {statistics.median(r['total'] for r in runs):.2f} s -> {RESULTS}")
    finally:
        if stack is not None:
            stack.stop()
        for process in processes:
            stop_process(process)


if __name__ == "__main__":
    main()
