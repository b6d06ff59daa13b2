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
warm-up pull fills it, so the measured proxy rounds are repeat pulls served from disk
(``--blob-cache cold`` empties it before each proxied round: every round is a first pull, the
bytes stream from upstream while the cache fills); it is
emptied before the first concurrent batch (a cold cache: N customers pulling a new release at
once) and left full for the second; then the same N pulls run straight from the registry, the
batches' yardstick. ``--blob-cache off`` runs the portal with the cache off.
The upstream's bytes are the docker-registry process's written bytes (/proc/<pid>/io wchar:
socket writes, so every byte it served), and the portal's CPU is its web process's.

    .venv/bin/python bench/proxy.py --redirect [--rounds 5] [--base ../base14]

Blob redirects passed on (releases/proxy/redirects.py). AWS is unreachable here, so the upstream
is an ECR stand-in: moto's server for the registry token, and at the ECR host name (the host
map) tests/support/faults.py's ``RedirectingRegistry`` in front of the docker-registry, which
answers blob GETs with a 307 to an S3-style signed address on a second loopback server. The
portal links it as an ECR registry with "Let customers download layers directly from AWS S3"
on. Each round pulls the same image directly from the stand-in, through the proxy, and (with
``--base``, a checkout of the code before, e.g. main's) through a second portal run from that
checkout, which follows the redirects and streams the layers; order rotated per round. Prints
the per-round ratios, their medians, and the portal's CPU seconds per pull.
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


def pull_batch(n: int, pull_one, tmp: Path) -> tuple[float, list[BaseException]]:
    """``n`` pulls at once, ``pull_one(target)`` each into a directory of its own under ``tmp``
    (removed after): (wall seconds, what the failed ones raised)."""
    failures: list[BaseException] = []

    def one(i):
        target = tmp / f"batch-{i}"
        try:
            pull_one(target)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            failures.append(e)
        finally:
            shutil.rmtree(target, ignore_errors=True)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures


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
    parser.add_argument("--blob-cache", choices=("on", "off", "cold"), default="on",
                        help="cold: on, but emptied before each proxied round (first pulls)")
    parser.add_argument("--redirect", action="store_true",
                        help="an upstream that redirects blobs, with the pass-through on")
    parser.add_argument("--requests", type=int, default=200,
                        help="with --redirect: single blob requests timed after the pulls")
    parser.add_argument("--base", type=Path, default=None,
                        help="with --redirect: also pull through a portal run from this checkout")
    args = parser.parse_args()
    if args.redirect:
        redirect_main(args)
        return
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
        extra = {"PORTAL_BLOB_CACHE_BYTES": "0"} if args.blob_cache == "off" else {}
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

        def empty_cache() -> None:
            for entry in (cache_dir / "blobs").glob("*"):
                entry.unlink()

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
                if kind == "proxy" and args.blob_cache == "cold":
                    empty_cache()
                cpu, sent = server.web_cpu_seconds(), upstream_bytes()
                seconds = pull(src, creds, target)
                if kind == "proxy":
                    proxy_cpu.append(server.web_cpu_seconds() - cpu)
                    proxy_upstream.append(upstream_bytes() - sent)
                shutil.rmtree(target)
                times[kind].append(seconds)
                print(f"round {i + 1} {kind}: {seconds:.2f} s", file=sys.stderr)
            rss_after.append(server.web_rss_bytes() // 1024)

        def batch(src=proxy_src, creds=proxy_creds):
            """N pulls at once, through the proxy unless told: (wall seconds, failures, peak RSS,
            RSS after, upstream bytes, portal CPU seconds)."""
            sent, cpu = upstream_bytes(), server.web_cpu_seconds()
            with RssSampler(server) as sampler:
                wall, failures = pull_batch(args.concurrent,
                                            lambda target: pull(src, creds, target), tmp)
            return (wall, failures, sampler.peak, server.web_rss_bytes() // 1024,
                    upstream_bytes() - sent, server.web_cpu_seconds() - cpu)

        # Two batches: if the RSS left after the first is a leak, the second adds to it; if it is
        # the allocator keeping freed memory for reuse, the second reuses it and stays level.
        empty_cache()  # batch 1 starts cold
        wall, failures, peak, rss_end, up1, cpu1 = batch()
        wall2, failures2, peak2, rss_end2, up2, cpu2 = batch()
        # The same N pulls straight from the registry: what the batches compare with.
        direct_wall, direct_failures, *_ = batch(direct_src, direct_creds)

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
                  f"{w:.2f} s wall ({args.concurrent * total / MB / w:.0f} MB/s together, "
                  f"{w / direct_wall:.2f}x the direct batch); "
                  f"upstream sent {up / MB:.1f} MB ({up / total:.2f} image copies); "
                  f"portal CPU {cpu:.2f} s")
            for f in fails[:3]:
                print(f"  failure: {f}")
        print(f"{args.concurrent} concurrent pulls straight from the registry: "
              f"{args.concurrent - len(direct_failures)} succeeded, {len(direct_failures)} failed, "
              f"{direct_wall:.2f} s wall")
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


def print_redirect_latency(args, image, standin, servers, auth) -> None:
    """One blob GET answered by a redirect (not followed), alternated: what each pull's blob
    requests cost on top of a direct pull, without S3's transfer."""
    import httpx

    from tests.support.registry import ECR_HOST

    digest = max(image.blobs, key=lambda b: b.size).digest
    urls = {"direct": (f"http://{standin.host}/v2/bench/app/blobs/{digest}", auth)}
    for name, server in servers.items():
        if name == "new":  # the code before follows the redirect: nothing comparable
            lic = server.data["licenses"]["Bench"]
            urls[name] = (f"{server.url}/v2/proxy/benchapp/{ECR_HOST}/bench/app/blobs/{digest}",
                          (lic, lic))
    ms: dict[str, list[float]] = {n: [] for n in urls}
    loads = [os.getloadavg()[0]]
    with httpx.Client(timeout=30) as client:
        for i in range(args.requests):
            for name, (url, creds) in (list(urls.items()) if i % 2 else list(urls.items())[::-1]):
                started = time.perf_counter()
                response = client.get(url, auth=creds)
                ms[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 307, response.status_code
    loads.append(os.getloadavg()[0])
    print(f"\nOne blob GET answered 307 (not followed), {args.requests} each, alternated "
          f"(load {loads[0]:.2f} → {loads[1]:.2f}): "
          + "; ".join(f"{n} median {statistics.median(v):.1f} ms" for n, v in ms.items())
          + (f"; added by the proxy {statistics.median(ms['new']) - statistics.median(ms['direct']):.1f} ms"
             if "new" in ms else ""))


def redirect_main(args) -> None:
    from tests.support import processes
    from tests.support.faults import RedirectingRegistry
    from tests.support.images import build_index, cleanup, push
    from tests.support.proxy_server import start_proxy_server
    from tests.support.registry import ECR_HOST, MOTO_TOKEN_PASSWORD, start_distribution
    from tests.support.servers import LOOPBACK, free_port, stop_process, wait_for_port

    tmp = Path(tempfile.mkdtemp(prefix="bench-redirect-"))
    started: list = []
    moto = None
    try:
        port = free_port()
        # IAM auth off: any keys get moto's ECR token (AWS:<account>-auth-token).
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p",
                                 str(port)], stdout=(tmp / "moto.log").open("wb"),
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf"})
        wait_for_port(LOOPBACK, port, time.monotonic() + 30, process=moto)
        moto_url = f"http://{LOOPBACK}:{port}"
        auth = ("AWS", MOTO_TOKEN_PASSWORD)
        upstream = start_distribution(tmp / "upstream", users=dict([auth]))
        started.append(upstream)
        image = build_index(layer_sizes=[25 * MB] * 4, shared_size=2 * MB, on_disk=True,
                            directory=tmp)
        total = sum(b.size for b in image.blobs)
        push(image, upstream.url, "bench/app", "1.0", auth=auth)
        cleanup(image)
        standin = RedirectingRegistry(upstream.url, auth).start()
        started.append(standin)
        env = {"AWS_ENDPOINT_URL_ECR": moto_url, "AWS_ENDPOINT_URL_STS": moto_url,
               "AWS_ENDPOINT_URL_IAM": moto_url, "AWS_EC2_METADATA_DISABLED": "true",
               "PORTAL_REGISTRY_HOST_MAP": f"{ECR_HOST}=http://{standin.host}"}
        seed = {"registries": [{"endpoint": ECR_HOST, "provider": "ecr", "username": "AKIABENCH",
                                "password": "bench-secret", "direct_downloads": True}],
                "apps": [{"slug": "benchapp", "pin": True,
                          "releases": [[f"{ECR_HOST}/bench/app:1.0"]],
                          "customers": [{"name": "Bench"}]}]}
        servers = {}
        servers["new"] = start_proxy_server(tmp / "portal", extra=env)
        started.append(servers["new"])
        if args.base is not None:
            # The same stack run from the other checkout (its code, its Procfile, its seed).
            root = processes.ROOT
            processes.ROOT = args.base.resolve()
            try:
                servers["old"] = start_proxy_server(tmp / "portal-old", extra=env)
                started.append(servers["old"])
                servers["old"].data = servers["old"].call("tests.support.proxy_server.seed", **seed)
            finally:
                processes.ROOT = root
        servers["new"].data = servers["new"].call("tests.support.proxy_server.seed", **seed)
        sources = {"direct": (f"{standin.host}/bench/app:1.0", ":".join(auth))}
        for name, server in servers.items():
            lic = server.data["licenses"]["Bench"]
            sources[name] = (f"{server.host}/proxy/benchapp/{ECR_HOST}/bench/app:1.0",
                             f"{lic}:{lic}")
        for src, creds in sources.values():  # warm-up, not measured
            pull(src, creds, tmp / "warm")
            shutil.rmtree(tmp / "warm")
        names = list(sources)
        times: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in servers}
        loads = []
        for i in range(args.rounds):
            loads.append(os.getloadavg()[0])
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                before = servers[name].web_cpu_seconds() if name in servers else 0.0
                target = tmp / f"{name}-{i}"
                times[name].append(pull(*sources[name], target))
                shutil.rmtree(target)
                if name in servers:
                    cpu[name].append(servers[name].web_cpu_seconds() - before)
            print(f"round {i + 1} (load {loads[-1]:.2f}): " + ", ".join(
                f"{n} {times[n][-1]:.2f} s" for n in names), file=sys.stderr)
        print(f"\nImage: 2 platforms, {len(image.blobs)} blobs, {total / MB:.0f} MB; "
              f"{args.rounds} rounds, order rotated each round; {os.cpu_count()} CPUs; "
              "load average (1 min) at each round's start: "
              + ", ".join(f"{x:.2f}" for x in loads) + ".\n")
        labels = {"direct": "direct from the stand-in", "new": "proxy, pass-through on",
                  "old": "proxy, code before (follows, streams)"}
        print("| round | " + " | ".join(labels[n] for n in names) + " | "
              + " | ".join(f"{n} / direct" for n in servers)
              + (" | new / old |" if "old" in servers else " |"))
        print("|---" * (1 + len(names) + len(servers) + ("old" in servers)) + "|")
        ratios: dict[str, list[float]] = {n: [] for n in servers}
        ratios["new/old"] = []
        for i in range(args.rounds):
            cells = [f"{times[n][i]:.2f} s" for n in names]
            for n in servers:
                ratios[n].append(times[n][i] / times["direct"][i])
                cells.append(f"{ratios[n][-1]:.3f}")
            if "old" in servers:
                ratios["new/old"].append(times["new"][i] / times["old"][i])
                cells.append(f"{ratios['new/old'][-1]:.3f}")
            print(f"| {i + 1} | " + " | ".join(cells) + " |")
        print()
        for n in servers:
            print(f"median of per-round ratios {n}/direct: {statistics.median(ratios[n]):.3f}; "
                  f"portal CPU per pull: median {statistics.median(cpu[n]):.3f} s "
                  f"({', '.join(f'{c:.2f}' for c in cpu[n])})")
        if "old" in servers:
            print(f"median of per-round ratios new/old: {statistics.median(ratios['new/old']):.3f}")
        print(f"redirects answered by the stand-in: {standin.redirects}; blobs its S3 served: "
              f"{standin.storage.served}")
        print_redirect_latency(args, image, standin, servers, auth)
    finally:
        for thing in reversed(started):
            thing.stop()
        if moto is not None:
            stop_process(moto)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
