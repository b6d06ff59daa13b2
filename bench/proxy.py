"""Benchmark the proxy registry.

    .venv/bin/python bench/proxy.py [--rounds 5] [--concurrent 8] [--blob-cache on|off]

A two-platform image (four 25 MB layers per platform plus one shared 2 MB layer, ~202 MB) is
pushed to a loopback distribution registry (htpasswd auth). The portal runs under uvicorn as
`make run` serves it (tests/support/proxy_server.py), with that registry linked under the Name
``upstream`` and a promoted release using the image, pinned by digest as a promotion pins it
(the license may pull exactly its manifest tree). Each round pulls the image with
`skopeo copy --all` into a fresh local OCI directory, alternately directly from the registry and
through the proxy with a license (skopeo's blob-info cache deleted first). Then N pulls through
the proxy run at once, twice. The uvicorn process's RSS is sampled throughout. Prints Markdown.

The portal's blob cache (PORTAL_BLOB_CACHE_BYTES) is on by default, as in production: the
warm-up pull fills it, so the measured proxy rounds are repeat pulls served from disk; it is
emptied before the first concurrent batch (a cold cache: N customers pulling a new release at
once) and left full for the second. ``--blob-cache off`` runs the portal with the cache off.
The upstream's bytes are the docker-registry process's written bytes (/proc/<pid>/io wchar:
socket writes, so every byte it served), and the portal's CPU is its web process's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_USERS = {"mirror": "mirror-secret-pw"}  # the upstream registries' one user
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1 << 20
SKOPEO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")


def pull(source: str, creds: str, target: Path) -> float:
    SKOPEO_CACHE.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--all", "-q", "--src-tls-verify=false", "--src-creds",
                    creds, f"docker://{source}", f"oci:{target}:1.0"], check=True)
    return time.perf_counter() - started


class RssSampler:
    """Peak RSS of a process, sampled every 50 ms while running."""

    def __init__(self, server):
        self.server, self.peak, self._stop = server, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.web_rss_bytes() // 1024)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--blob-cache", choices=("on", "off"), default="on")
    args = parser.parse_args()
    load_at_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    from tests.support.images import build_index, cleanup, push
    from tests.support.proxy_server import start_proxy_server
    from tests.support.registry import start_distribution

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    upstream = server = None
    try:
        upstream = start_distribution(tmp / "upstream", users=BENCH_USERS)
        image = build_index(layer_sizes=[25 * MB] * 4, shared_size=2 * MB, on_disk=True,
                            directory=tmp)
        total = sum(b.size for b in image.blobs)
        push(image, upstream.url, "bench/app", "1.0", auth=upstream.auth)
        cleanup(image)
        extra = {} if args.blob_cache == "on" else {"PORTAL_BLOB_CACHE_BYTES": "0"}
        server = start_proxy_server(tmp / "portal", extra=extra)
        cache_dir = tmp / "portal" / "var" / "blob-cache"

        def upstream_bytes() -> int:
            for line in Path(f"/proc/{upstream.process.pid}/io").read_text().splitlines():
                if line.startswith("wchar:"):
                    return int(line.split()[1])
            return 0
        data = server.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": upstream.host, "provider": "other", "username": upstream.username,
            "password": upstream.password, "name": "upstream", "insecure": True,
        }], apps=[{"slug": "benchapp", "pin": True,
                   "releases": [[f"{upstream.host}/bench/app:1.0"]],
                   "customers": [{"name": "Bench"}]}])
        lic = data["licenses"]["Bench"]
        direct_src = f"{upstream.host}/bench/app:1.0"
        proxy_src = f"{server.host}/proxy/benchapp/upstream/bench/app:1.0"
        direct_creds = f"{upstream.username}:{upstream.password}"
        proxy_creds = f"{lic}:{lic}"

        # One warm-up pull each (imports, first connections), not measured.
        for src, creds in ((direct_src, direct_creds), (proxy_src, proxy_creds)):
            pull(src, creds, tmp / "warm")
            shutil.rmtree(tmp / "warm")
        rss_start = server.web_rss_bytes() // 1024
        times = {"direct": [], "proxy": []}
        rss_after = []
        proxy_cpu, proxy_upstream = [], []
        for i in range(args.rounds):
            for kind, src, creds in (("direct", direct_src, direct_creds),
                                     ("proxy", proxy_src, proxy_creds)):
                target = tmp / f"{kind}-{i}"
                cpu, sent = server.web_cpu_seconds(), upstream_bytes()
                seconds = pull(src, creds, target)
                if kind == "proxy":
                    proxy_cpu.append(server.web_cpu_seconds() - cpu)
                    proxy_upstream.append(upstream_bytes() - sent)
                shutil.rmtree(target)
                times[kind].append(seconds)
                print(f"round {i + 1} {kind}: {seconds:.2f} s", file=sys.stderr)
            rss_after.append(server.web_rss_bytes() // 1024)

        def batch():
            """N pulls through the proxy at once: (wall seconds, failures, peak RSS, RSS after,
            upstream bytes, portal CPU seconds)."""
            results: list[float | BaseException] = [None] * args.concurrent
            sent, cpu = upstream_bytes(), server.web_cpu_seconds()

            def one(i):
                try:
                    results[i] = pull(proxy_src, proxy_creds, tmp / f"c{i}")
                except BaseException as e:  # noqa: BLE001 - reported below
                    results[i] = e

            with RssSampler(server) as sampler:
                started = time.perf_counter()
                threads = [threading.Thread(target=one, args=(i,)) for i in range(args.concurrent)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - started
            for i in range(args.concurrent):
                shutil.rmtree(tmp / f"c{i}", ignore_errors=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            return (wall, failures, sampler.peak, server.web_rss_bytes() // 1024,
                    upstream_bytes() - sent, server.web_cpu_seconds() - cpu)

        # Two batches: if the RSS left after the first is a leak, the second adds to it; if it is
        # the allocator keeping freed memory for reuse, the second reuses it and stays level.
        for entry in (cache_dir / "blobs").glob("*"):  # batch 1 starts cold
            entry.unlink()
        wall, failures, peak, rss_end, up1, cpu1 = batch()
        wall2, failures2, peak2, rss_end2, up2, cpu2 = batch()

        d, p = statistics.median(times["direct"]), statistics.median(times["proxy"])
        ratios = [pp / dd for pp, dd in zip(times["proxy"], times["direct"], strict=True)]
        print(f"\nImage: 2 platforms, {len(image.blobs)} blobs, {total / MB:.0f} MB; "
              f"{args.rounds} rounds, alternating; {os.cpu_count()} CPUs; blob cache "
              f"{args.blob_cache}; load average at start {load_at_start}.\n")
        print("| | direct | through the proxy |\n|---|---|---|")
        print(f"| median time | {d:.2f} s | {p:.2f} s |")
        print("| all rounds | " + ", ".join(f"{t:.2f}" for t in times["direct"]) + " | "
              + ", ".join(f"{t:.2f}" for t in times["proxy"]) + " |")
        print(f"\nmedian of per-round ratios proxy/direct: {statistics.median(ratios):.2f} "
              f"(ratio of medians {p / d:.2f})")
        print("proxy rounds: portal CPU per pull " + ", ".join(f"{c:.2f}" for c in proxy_cpu)
              + " s; upstream MB per pull " + ", ".join(f"{b / MB:.1f}" for b in proxy_upstream))
        for n, (w, fails, up, cpu) in enumerate(((wall, failures, up1, cpu1),
                                                 (wall2, failures2, up2, cpu2)), 1):
            print(f"{args.concurrent} concurrent pulls through the proxy, batch {n}: "
                  f"{args.concurrent - len(fails)} succeeded, {len(fails)} failed, "
                  f"{w:.2f} s wall ({args.concurrent * total / MB / w:.0f} MB/s together); "
                  f"upstream sent {up / MB:.1f} MB ({up / total:.2f} image copies); "
                  f"portal CPU {cpu:.2f} s")
            for f in fails[:3]:
                print(f"  failure: {f}")
        print(f"uvicorn RSS: {rss_start / 1024:.0f} MB after warm-up; after each round "
              + ", ".join(f"{r / 1024:.0f}" for r in rss_after)
              + f" MB; concurrent batch 1: peak {peak / 1024:.0f} MB, {rss_end / 1024:.0f} MB "
              f"after; batch 2: peak {peak2 / 1024:.0f} MB, {rss_end2 / 1024:.0f} MB after")
    finally:
        if server is not None:
            server.stop()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
