"""The fixed cost of one proxied request: where the milliseconds go.

    .venv/bin/python bench/proxy_request.py [--requests 200]

A loopback distribution registry (htpasswd auth) holds a small image; the portal runs under
uvicorn as `make run` serves it (tests/support/proxy_server.py), SQLite. Two measurements:

1. End to end: ``--requests`` sequential GETs of the manifest (by tag) and of the small config
   blob, directly from the registry and through the proxy (one keep-alive connection each).
   Median and 90th percentile in milliseconds; the difference is what the proxy adds per request.
2. The parts of one request, timed in a process of its own on the portal's database
   (``breakdown`` below, run through ``manage.py shell``): the license check, what the license
   may pull (the pins of its channel's releases; the allow-list of releases without pins), the
   registry resolution, the upstream client, the upstream Authorization header, the pull-log
   INSERT, and the cost of one hop to a thread and back from the event loop. "authorize() as a
   whole" is a cold decision, "cached_access" a cached one.

The release is pinned as a promotion pins it (tests/releases/proxy/pins.py) when the code has
pins, so the decision measured is the pinned one: no release file read, no network call.

Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH_USERS = {"mirror": "mirror-secret-pw"}  # the upstream registries' one user
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ms(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.9)] * 1000


def timed(client: httpx.Client, url: str, n: int, **kwargs) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, **kwargs)
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code, response.text[:200])
    return out


def breakdown(*, license_id: str, slug: str, name: str, reference: str, digest: str,
              n: int = 100) -> dict:
    """Median seconds of each part of one proxied request (runs inside manage.py shell)."""
    import asyncio
    import base64

    from asgiref.sync import sync_to_async
    from django.db import connection

    from portal import throttle
    from registries.credentials import registry_pull_client
    from releases.customer_portal.access import check_basic_auth
    from releases.downstream import proxied_repositories
    from releases.entitlements import upstream as entitlements_upstream
    from releases.proxy import access as proxy_access
    from releases.proxy import decisions, pull_log
    from releases.proxy.models import PullEvent

    header = "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()
    check = check_basic_auth(header, app_slug=slug)
    assert check.ok, check.error
    app = check.customer.app
    access = decisions.authorize(header=header, address="10.0.0.1", app_slug=slug, name=name)
    assert isinstance(access, proxy_access.Access), access
    access.client.auth_headers(access.repository)  # challenge and token, once
    team_registries, available = proxy_access._registries(app)
    _, registry = entitlements_upstream.resolve(app, name, team_registries)
    parts = {
        "throttle check (cache)": lambda: throttle.is_throttled("10.0.0.1"),
        "license check (check_basic_auth)": lambda: check_basic_auth(header, app_slug=slug),
        "registries (the team's and the app's, one query)": lambda: proxy_access._registries(app),
        "allow-list built on a cache miss (proxied_repositories)": lambda: proxied_repositories(
            app, registries=available),
        "registry resolution (resolve)": lambda: entitlements_upstream.resolve(app, name, team_registries),
        "upstream client (registry_pull_client)": lambda: registry_pull_client(
            registry=registry, endpoint=registry.endpoint),
        "upstream Authorization header (cached token)": lambda: access.client.auth_headers(
            access.repository),
        "authorize() as a whole": lambda: decisions.authorize(
            header=header, address="10.0.0.1", app_slug=slug, name=name),
    }
    if hasattr(proxy_access, "_allow_list"):  # before pins
        parts["allow-list (cache key: 2 aggregates)"] = lambda: proxy_access._allow_list(
            app, team_registries, available)
    else:
        from releases.entitlements.selectors import entitlement

        upstream, _ = entitlements_upstream.resolve(app, name, team_registries)
        parts["entitlement: pins of one repository (selector)"] = lambda: entitlement(
            check.customer, domain=upstream.domain, path=upstream.path).repository(
            upstream.domain, upstream.path)
        parts["the reference checked against the pins (manifest_target)"] = (
            lambda: proxy_access.manifest_target(access, reference))
    row = {"access": access, "reference": digest, "kind": "blob", "method": "GET", "status": 200,
           "size": 1}
    if hasattr(pull_log, "pull_log_writer"):
        parts["pull-log INSERT, one row (direct)"] = lambda: pull_log.pull_event(**row).save()
        parts["pull-log row queued (log_pull, the request's share)"] = lambda: pull_log.log_pull(**row)
    else:
        parts["pull-log INSERT (log_pull)"] = lambda: pull_log.log_pull(**row)
    if hasattr(decisions, "cached_access"):
        parts["upstream Authorization header in the loop (cached_auth_headers)"] = (
            lambda: access.client.cached_auth_headers(access.repository))
        parts["authorization cache hit (cached_access)"] = lambda: decisions.cached_access(
            header=header, app_slug=slug, name=name)
    out = {}
    for label, fn in parts.items():
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        out[label] = statistics.median(samples)
    if hasattr(pull_log, "pull_log_writer"):
        pull_log.pull_log_writer.flush()
    PullEvent.objects.filter(customer=check.customer, bytes=1, reference=digest).delete()

    async def hops():
        loop_samples = {"sync_to_async (thread-sensitive)": [], "asyncio.to_thread": []}
        for _ in range(n):
            started = time.perf_counter()
            await sync_to_async(lambda: None)()
            loop_samples["sync_to_async (thread-sensitive)"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.to_thread(lambda: None)
            loop_samples["asyncio.to_thread"].append(time.perf_counter() - started)
        return {f"one thread hop: {k}": statistics.median(v) for k, v in loop_samples.items()}

    out.update(asyncio.run(hops()))
    connection.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from tests.support.images import build_single, push
    from tests.support.proxy_server import start_proxy_server
    from tests.support.registry import start_distribution

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-request-"))
    upstream = server = None
    try:
        upstream = start_distribution(tmp / "upstream", users=BENCH_USERS)
        image = build_single([100_000], seed=3)
        push(image, upstream.url, "bench/app", "1.0", auth=upstream.auth)
        server = start_proxy_server(tmp / "portal")
        data = server.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": upstream.host, "provider": "other", "username": upstream.username,
            "password": upstream.password, "name": "upstream", "insecure": True,
        }], apps=[{"slug": "benchapp", "releases": [[f"{upstream.host}/bench/app:1.0"]],
                   "customers": [{"name": "Bench"}]}])
        lic = data["licenses"]["Bench"]
        if (ROOT / "releases" / "entitlements" / "selectors.py").exists():
            server.call("tests.releases.proxy.pins.pin", app="benchapp", sequence=1,
                        image=f"{upstream.host}/bench/app:1.0")
        config = image.config.digest
        accept = {"Accept": image.media_type}
        rows = []
        with httpx.Client(auth=upstream.auth, timeout=30) as direct, \
                httpx.Client(auth=(lic, lic), timeout=30) as proxied:
            for label, path in (("manifest (tag)", "manifests/1.0"), ("config blob", f"blobs/{config}")):
                d_url = f"{upstream.url}/v2/bench/app/{path}"
                p_url = f"{server.url}/v2/proxy/benchapp/upstream/bench/app/{path}"
                timed(direct, d_url, 20, headers=accept)  # warm-up
                timed(proxied, p_url, 20, headers=accept)
                d, p = [], []
                for _ in range(args.requests // 20):  # alternate in groups of 20
                    d += timed(direct, d_url, 20, headers=accept)
                    p += timed(proxied, p_url, 20, headers=accept)
                rows.append((label, _ms(d), _ms(p)))
        print(f"\n{args.requests} sequential GETs each, alternating in groups of 20.\n")
        print("| request | direct median / p90 | through the proxy median / p90 | added (median) |")
        print("|---|---|---|---|")
        for label, (dm, d90), (pm, p90) in rows:
            print(f"| {label} | {dm:.2f} / {d90:.2f} ms | {pm:.2f} / {p90:.2f} ms | "
                  f"{pm - dm:.2f} ms |")
        kwargs = json.dumps(json.dumps({"license_id": lic, "slug": "benchapp",
                                        "name": "upstream/bench/app", "reference": "1.0",
                                        "digest": config}))
        code = ("import json; from bench.proxy_request import breakdown as f; "
                f"print('RESULT=' + json.dumps(f(**json.loads({kwargs}))))")
        out = server.shell(code)
        parts = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT="))
                           .removeprefix("RESULT="))
        print("\n| part of one request (own process, same database) | median |\n|---|---|")
        for label, seconds in parts.items():
            print(f"| {label} | {seconds * 1000:.3f} ms |")
    finally:
        if server is not None:
            server.stop()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
