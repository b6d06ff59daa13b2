"""Benchmark the production shape: Caddy with TLS in front of 3 web processes, 2 workers and beat,
on PostgreSQL and Redis, as tests/production/ runs it.

    .venv/bin/python bench/production.py [--rounds 3] [--concurrent 16] [--users 50]

The upstream docker-registry serves HTTPS with the test CA (tests/support/tls.py) and holds
bench/proxy.py's image: two platforms, four 25 MB layers each plus a shared 2 MB layer
(~202 MB). The portal links it over HTTPS (SSL_CERT_FILE names the CA) with a promoted release
pinning the image. Then:

1. Pulls: each round runs N concurrent ``skopeo copy --all`` directly from the registry, then N
   through Caddy and the proxy (TLS verified against the CA both ways); every pull must succeed.
   The ratio is proxy/direct wall time of the round's batch; the median over rounds is reported,
   with the web processes' total RSS before and after.
2. Pages: U logged-in users at once (each its own session through Caddy), each loading the
   release history and the customers page in turn; p50 and p95, errors.
3. Update check: ``/release/<slug>/pending`` with a license, at 1, 2, 4... concurrent clients
   for a few seconds each; requests per second and p95 at each level, and the best level whose
   p95 stays under 100 ms.

The web processes share one blob cache (one host) which Caddy reads: ``--blob-cache`` chooses
``accel`` (the default, as deploy/docs describe it: PORTAL_BLOB_CACHE_X_ACCEL on, Caddy sends
cached blobs), ``on`` (the web processes send cached blobs themselves) or ``off``. The warm-up
pull fills the cache, so the measured batches are repeat pulls; ``--cold`` empties the cache's
blobs before each proxied batch (N customers pulling a release nobody pulled yet). The upstream
registry's served bytes (/proc/<pid>/io wchar) per proxied batch are printed.

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.proxy import pull_batch  # noqa: E402
from tests.production.conftest import production_env  # noqa: E402
from tests.support.caddy import postgres_database, start_caddy  # noqa: E402
from tests.support.images import build_index, cleanup, push  # noqa: E402
from tests.support.processes import PortalStack, process_cpu_seconds  # noqa: E402
from tests.support.registry import start_distribution  # noqa: E402
from tests.support.servers import start_redis, stop_process  # noqa: E402
from tests.support.tls import make_local_ca  # noqa: E402

MB = 1 << 20
USERS = {"mirror": "mirror-secret-pw"}
SLUG = "benchapp"
SKOPEO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")


def skopeo_pull(source: str, creds: str, cert_dir: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--all", "-q", "--src-cert-dir", str(cert_dir),
                    "--src-creds", creds, f"docker://{source}", f"oci:{target}:1.0"],
                   check=True, capture_output=True, timeout=900)
    return time.perf_counter() - started


def batch(n: int, source: str, creds: str, cert_dir: Path, tmp: Path) -> tuple[float, list]:
    """N pulls at once: (wall seconds, failures: the end of each failed skopeo's stderr)."""
    SKOPEO_CACHE.unlink(missing_ok=True)
    wall, failures = pull_batch(n, lambda target: skopeo_pull(source, creds, cert_dir, target),
                                tmp)
    return wall, [e.stderr.decode(errors="replace")[-300:]
                  if isinstance(e, subprocess.CalledProcessError) else repr(e) for e in failures]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pages(stack: PortalStack, base_url: str, verify, users: int, requests_each: int) -> dict:
    paths = [f"/apps/{SLUG}/releases/", "/customers/"]
    with ThreadPoolExecutor(min(users, 16)) as pool:
        sessions = list(pool.map(lambda _: stack.session("alice", base_url=base_url, verify=verify),
                                 range(users)))
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users)

    def user(client: httpx.Client):
        barrier.wait()
        for i in range(requests_each):
            started = time.perf_counter()
            try:
                status = client.get(paths[i % 2]).status_code
            except httpx.TransportError as e:
                status = type(e).__name__
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
                if status != 200:
                    errors.append(str(status))

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(c,)) for c in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for c in sessions:
        c.close()
    return {"n": len(times), "p50": percentile(times, 50), "p95": percentile(times, 95),
            "errors": errors, "rps": len(times) / wall}


def update_check(base_url: str, verify, license_id: str, clients: int, seconds: float) -> dict:
    auth = "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def client():
        with httpx.Client(base_url=base_url, verify=verify, timeout=30) as http:
            while time.perf_counter() < end:
                started = time.perf_counter()
                status = http.get(f"/release/{SLUG}/pending", headers={"Authorization": auth}).status_code
                elapsed = time.perf_counter() - started
                with lock:
                    times.append(elapsed)
                    if status != 200:
                        errors.append(str(status))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "n": len(times), "rps": len(times) / wall,
            "p50": percentile(times, 50), "p95": percentile(times, 95), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--page-requests", type=int, default=20, help="per user")
    parser.add_argument("--check-seconds", type=float, default=5)
    parser.add_argument("--blob-cache", choices=("accel", "on", "off"), default="accel")
    parser.add_argument("--cold", action="store_true",
                        help="empty the blob cache before each proxied batch")
    parser.add_argument("--skip-pages", action="store_true",
                        help="pulls only (no pages, no update check)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-production-"))
    upstream = stack = caddy = redis = drop_database = None
    load_before = os.getloadavg()
    try:
        ca = make_local_ca(tmp / "ca")
        # The bench's own pushes and the portal's link trust the test CA (httpx reads it).
        os.environ["SSL_CERT_FILE"] = str(ca.ca_file)
        upstream = start_distribution(tmp / "upstream", users=USERS, tls=(ca.cert_file, ca.key_file))
        image = build_index(layer_sizes=[25 * MB] * 4, shared_size=2 * MB, on_disk=True, directory=tmp)
        total = sum(b.size for b in image.blobs)
        push(image, upstream.url, "bench/app", "1.0", auth=upstream.auth)
        cleanup(image)

        redis = start_redis(tmp)
        redis_url = f"redis://127.0.0.1:{redis.port}/14"
        database_url, drop_database = postgres_database("portal_bench")
        stack = PortalStack(tmp / "stack", broker_url=redis_url, seed=None, web_count=3, worker_count=2)
        blob_cache = tmp / "blob-cache"
        caddy = start_caddy(tmp / "caddy", ca=ca, upstreams=stack.web_ports,
                            blob_cache_dir=blob_cache)
        stack.extra_env.update(production_env(), **{
            "PORTAL_URL": caddy.url, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "PORTAL_TRUSTED_PROXIES": "127.0.0.1", "SSL_CERT_FILE": str(ca.ca_file),
            "PORTAL_BLOB_CACHE_DIR": str(blob_cache),
            "PORTAL_BLOB_CACHE_X_ACCEL": "true" if args.blob_cache == "accel" else "false",
            **({"PORTAL_BLOB_CACHE_BYTES": "0"} if args.blob_cache == "off" else {}),
        })
        stack.start(timeout=120)
        data = stack.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": upstream.host, "provider": "other", "username": upstream.username,
            "password": upstream.password, "name": "upstream",
        }], apps=[{"slug": SLUG, "pin": True, "releases": [[f"{upstream.host}/bench/app:1.0"]],
                   "customers": [{"name": "Bench"}]}])
        stack.password = "pw-alice-1234"
        lic = data["licenses"]["Bench"]
        direct = (f"{upstream.host}/bench/app:1.0", f"{upstream.username}:{upstream.password}")
        proxied = (f"{caddy.host}/proxy/{SLUG}/upstream/bench/app:1.0", f"{lic}:{lic}")

        # Warm-up, not measured: one pull each way (imports, first connections, the pin).
        for source, creds in (direct, proxied):
            skopeo_pull(source, creds, ca.cert_dir, tmp / "warm")
            shutil.rmtree(tmp / "warm")
        rss_before = stack.web_rss_total_bytes()
        servers = {"registry": [upstream.process.pid], "caddy": [caddy.process.pid],
                   "web": [stack.processes[n].pid for n in stack.web_names]}

        def cpu() -> dict[str, float]:
            return {k: sum(process_cpu_seconds(p) for p in pids) for k, pids in servers.items()}

        def served() -> int:  # bytes the upstream registry wrote to its sockets
            io = Path(f"/proc/{upstream.process.pid}/io").read_text().split()
            return int(io[io.index("wchar:") + 1])

        rounds = []
        cpu_used = {"direct": [], "proxy": []}
        upstream_bytes = []
        for i in range(args.rounds):
            before = cpu()
            d_wall, d_fail = batch(args.concurrent, *direct, ca.cert_dir, tmp)
            if args.cold:
                for entry in (blob_cache / "blobs").glob("*"):
                    entry.unlink()
            middle = cpu()
            sent_before = served()
            p_wall, p_fail = batch(args.concurrent, *proxied, ca.cert_dir, tmp)
            upstream_bytes.append(served() - sent_before)
            after = cpu()
            cpu_used["direct"].append({k: middle[k] - before[k] for k in servers})
            cpu_used["proxy"].append({k: after[k] - middle[k] for k in servers})
            rounds.append((d_wall, d_fail, p_wall, p_fail, stack.web_rss_total_bytes()))
            print(f"round {i + 1}: direct {d_wall:.2f} s ({len(d_fail)} failed), "
                  f"proxy {p_wall:.2f} s ({len(p_fail)} failed)", file=sys.stderr)
        rss_after = stack.web_rss_total_bytes()

        verify = ca.ssl_context()
        if args.skip_pages:
            page, levels = None, []
        else:
            page, levels = run_pages_and_checks(stack, caddy, verify, lic, args)
        load_after = os.getloadavg()
        report(args, image, total, rounds, cpu_used, servers, upstream_bytes, rss_before,
               rss_after, page, levels, load_before, load_after)
    finally:
        cleanup_all(stack, caddy, upstream, redis, drop_database, tmp)


def run_pages_and_checks(stack, caddy, verify, lic, args):
    page = pages(stack, caddy.url, verify, args.users, args.page_requests)
    print(f"pages: {page['n']} requests, p50 {page['p50'] * 1000:.0f} ms", file=sys.stderr)
    levels = []
    for clients in (1, 2, 4, 8, 16):
        level = update_check(caddy.url, verify, lic, clients, args.check_seconds)
        levels.append(level)
        print(f"update check x{clients}: {level['rps']:.1f}/s p95 {level['p95'] * 1000:.1f} ms",
              file=sys.stderr)
    return page, levels


def report(args, image, total, rounds, cpu_used, servers, upstream_bytes, rss_before, rss_after,
           page, levels, load_before, load_after):
    print(f"\nImage: 2 platforms, {len(image.blobs)} blobs, {total / MB:.0f} MB; "
          f"{args.concurrent} concurrent pulls per batch, {args.rounds} rounds, direct then "
          f"proxy in each; blob cache {args.blob_cache}{', emptied before each proxied batch' if args.cold else ''}; "
          f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after "
          f"{load_after[0]:.2f}.\n")
    print("| round | direct (TLS, registry) | through Caddy + proxy (TLS) | ratio | failures |")
    print("|---|---|---|---|---|")
    for i, (d, df, p, pf, _rss) in enumerate(rounds, 1):
        print(f"| {i} | {d:.2f} s | {p:.2f} s | {p / d:.3f} | {len(df)} direct, {len(pf)} proxy |")
    ratios = [p / d for d, _, p, _, _ in rounds]
    print(f"\nmedian per-round ratio proxy/direct: {statistics.median(ratios):.3f}; "
          f"proxy throughput {statistics.median(args.concurrent * total / MB / p for _, _, p, _, _ in rounds):.0f} MB/s together")
    print("upstream registry's bytes served per proxied batch: "
          + ", ".join(f"{b / total:.2f}" for b in upstream_bytes) + " copies of the image")
    print(f"web processes' total RSS (3 processes): {rss_before / MB:.1f} MB after warm-up, "
          + ", ".join(f"{r[4] / MB:.1f}" for r in rounds) + " MB after each round, "
          f"{rss_after / MB:.1f} MB at the end")
    for kind in ("direct", "proxy"):
        print(f"CPU seconds of the servers per {kind} batch (median over rounds): " + ", ".join(
            f"{k} {statistics.median(r[k] for r in cpu_used[kind]):.1f}" for k in servers)
            + " (skopeo's own not counted)")
    for _d, df, _p, pf, _ in rounds:
        for failure in (df + pf)[:2]:
            print(f"  failure: {failure}")
    if page is None:
        return
    print(f"\n{args.users} logged-in users at once, {args.page_requests} requests each "
          f"(release history and customers pages in turn): {page['n']} requests, "
          f"p50 {page['p50'] * 1000:.1f} ms, p95 {page['p95'] * 1000:.1f} ms, "
          f"{page['rps']:.1f} requests/s, {len(page['errors'])} errors"
          + (f" ({', '.join(sorted(set(page['errors'])))})" if page["errors"] else ""))
    print("\n| update check clients | requests/s | p50 | p95 | errors |\n|---|---|---|---|---|")
    for level in levels:
        print(f"| {level['clients']} | {level['rps']:.1f} | {level['p50'] * 1000:.1f} ms | "
              f"{level['p95'] * 1000:.1f} ms | {len(level['errors'])} |")
    under = [lv for lv in levels if lv["p95"] < 0.1 and not lv["errors"]]
    if under:
        best = max(under, key=lambda lv: lv["rps"])
        print(f"\nsustained with p95 under 100 ms: {best['rps']:.1f} requests/s "
              f"({best['clients']} clients, p95 {best['p95'] * 1000:.1f} ms)")
    else:
        print("\nno level kept p95 under 100 ms")


def cleanup_all(stack, caddy, upstream, redis, drop_database, tmp):
    if stack is not None:
        stack.stop()
    if caddy is not None:
        caddy.stop()
    if redis is not None:
        stop_process(redis.process)
    if drop_database is not None:
        drop_database()
    if upstream is not None:
        upstream.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
