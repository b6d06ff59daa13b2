"""Benchmark the vendor API through the server the Procfile runs (uvicorn, worker, beat).

- ``release create`` of a 20-file release (Replicated's ``spec_gzip``, as the CLI sends it):
  p50 and p95 of the client-side time, keep-alive connection (target: p95 at most 150 ms).
- The list routes at 5,000 releases and 2,000 customers: their SQL query count next to the
  count at 200 releases and 100 customers (it must not grow with the data; every page measured
  holds rows at both sizes), and their p50/p95 through the server.

Run: `.venv/bin/python bench/api.py [--creates N] [--rounds N]` on an otherwise idle machine; it
writes its section of docs/benchmarks.md. The database: a scratch database ``portal_bench_api``
in the test PostgreSQL cluster (var/test-database-url, as scripts/start-postgres.sh writes it),
dropped and made again; with ``--sqlite``, a SQLite file in a temporary directory. The broker is
a private redis-server. The per-token rate limit is raised for the run (it would refuse the
bench's own burst of calls).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.results import markers, write_block  # noqa: E402
from tests.support.manifests import deployment_yaml  # noqa: E402
from tests.support.processes import PortalStack  # noqa: E402
from tests.support.servers import start_redis, stop_process  # noqa: E402

FILES = 20
RELEASES = 5_000
CUSTOMERS = 2_000
SMALL = (200, 100)  # releases, customers: the size the query counts are compared with
TARGET_P95 = 0.150  # seconds
DATABASE = "portal_bench_api"
BEGIN, END = markers("api.py")


def spec_gzip(n: int) -> str:
    """A 20-file release: a deployment, a service, 18 ConfigMaps; ``n`` makes each one differ."""
    files = [{"name": "deployment.yaml", "path": "deployment.yaml",
              "content": deployment_yaml("web", f"nginx:1.{n % 30}")},
             {"name": "service.yaml", "path": "service.yaml",
              "content": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
                         "  selector:\n    app: web\n  ports:\n    - port: 80\n"}]
    for i in range(FILES - 2):
        files.append({"name": f"settings-{i}.yaml", "path": f"config/settings-{i}.yaml",
                      "content": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i}\n"
                                 f"data:\n  build: \"{n}\"\n  level: \"{i}\"\n"})
    return base64.b64encode(gzip.compress(json.dumps(files).encode())).decode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def scratch_database() -> str:
    base = (BASE_DIR / "var" / "test-database-url").read_text().strip()
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')
    return base.rsplit("/", 1)[0] + "/" + DATABASE


def timed(client: httpx.Client, method: str, path: str, expect: int, **kwargs) -> float:
    start = time.perf_counter()
    response = client.request(method, path, **kwargs)
    elapsed = time.perf_counter() - start
    if response.status_code != expect:
        raise SystemExit(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30, help="GETs of each list route")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="portal-bench-api-"))
    (directory / "redis").mkdir()
    redis = start_redis(directory / "redis")
    env = {"PORTAL_API_RATE_LIMIT": "1000000", "LOG_LEVEL": "WARNING"}
    if not args.sqlite:
        env["DATABASE_URL"] = scratch_database()
    stack = PortalStack(directory / "portal", redis.url, seed="demo", extra_env=env)
    try:
        stack.start(timeout=240)
        token = stack.manage("create_api_token", "--team", "Demo", "--role", "Admin", "--name", "bench").strip()
        client = httpx.Client(base_url=stack.url + "/vendor/v3", headers={"Authorization": token}, timeout=60)
        app = client.get("/apps").json()["apps"][0]["id"]

        bodies = [spec_gzip(n) for n in range(args.creates + 5)]
        for body in bodies[:5]:  # warm-up: connections, code paths
            timed(client, "POST", f"/app/{app}/release", 201, json={"spec_gzip": body})
        creates = [timed(client, "POST", f"/app/{app}/release", 201, json={"spec_gzip": body})
                   for body in bodies[5:]]
        print(f"release create ({FILES} files): p50 {statistics.median(creates) * 1000:.1f} ms, "
              f"p95 {percentile(creates, 0.95) * 1000:.1f} ms over {len(creates)}")

        stack.call("bench.api_inside.seed_lists", app=app, releases=SMALL[0], customers=SMALL[1])
        small = stack.call("bench.api_inside.query_counts", token=token, app=app)
        sizes = stack.call("bench.api_inside.seed_lists", app=app, releases=RELEASES, customers=CUSTOMERS)
        large = stack.call("bench.api_inside.query_counts", token=token, app=app)
        paths = stack.call("bench.api_inside.list_paths", app=app)
        lists = {}
        for name, path in paths.items():
            path = path.removeprefix("/vendor/v3")
            timed(client, "GET", path, 200)
            lists[name] = [timed(client, "GET", path, 200) for _ in range(args.rounds)]
            print(f"{name:24} p50 {statistics.median(lists[name]) * 1000:7.1f} ms  "
                  f"p95 {percentile(lists[name], 0.95) * 1000:7.1f} ms  queries {small[name]} -> {large[name]}")
        database = "SQLite" if args.sqlite else "PostgreSQL"
        block = write_results(creates, lists, small, large, sizes, database, args.rounds)
        print(block)
    finally:
        stack.stop()
        stop_process(redis.process)


def write_results(creates, lists, small, large, sizes, database, rounds) -> str:
    p95 = percentile(creates, 0.95)
    lines = [
        BEGIN,
        "## Vendor API (bench/api.py)",
        "",
        "Through the server the `Procfile` runs (uvicorn, the Celery worker and beat, a private Redis), "
        f"on {database}, with one keep-alive httpx client and an Admin service-account token. "
        f"`release create` sends a {FILES}-file release as Replicated's `spec_gzip` (each file checked "
        f"by the editor's form, the image checks queued): {len(creates)} creates after 5 warm-ups. "
        f"Then the demo app gets {sizes['releases']:,} releases and {sizes['customers']:,} customers "
        f"and each list route is requested {rounds} times; its SQL queries are counted (Django's test "
        "client in a process of the stack, same token and URLs) at that size and at "
        f"{SMALL[0]} releases and {SMALL[1]} customers.",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.",
        "",
        "| call | p50 | p95 | target |",
        "| --- | ---: | ---: | --- |",
        f"| `POST /vendor/v3/app/{{app}}/release` ({FILES} files) | {statistics.median(creates) * 1000:.1f} ms | "
        f"{p95 * 1000:.1f} ms | p95 ≤ {TARGET_P95 * 1000:.0f} ms: {'met' if p95 <= TARGET_P95 else '**missed**'} |",
        "",
        f"| list route | queries ({SMALL[0]} releases, {SMALL[1]} customers) | queries ({sizes['releases']:,} releases, "
        f"{sizes['customers']:,} customers) | p50 | p95 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, times in lists.items():
        lines.append(f"| {name} | {small[name]} | {large[name]} | {statistics.median(times) * 1000:.1f} ms | "
                     f"{percentile(times, 0.95) * 1000:.1f} ms |")
    same = all(small[n] == large[n] for n in lists)
    lines += ["", "Query counts " + ("are the same at both sizes." if same else "**grow with the data**."), "", END]
    block = "\n".join(lines)
    write_block(block, BEGIN, END)
    return block


if __name__ == "__main__":
    main()
