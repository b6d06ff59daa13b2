"""The ASGI server under the proxy registry: uvicorn (the Procfile's) against granian.

    PYTHONPATH=<granian's directory> .venv/bin/python bench/servers.py [--rounds 5] [--concurrent 16]

One loopback distribution registry (htpasswd auth) holds the ~202 MB two-platform image of
bench/proxy.py and a small one-layer image. Two portals run at once on their own SQLite files,
seeded alike (a promoted release using both images, pinned as a promotion pins it): one under
the Procfile's uvicorn line, one under granian with the same application, address, one worker
and uvloop (tests/support/proxy_server.py, ``GRANIAN_WEB``). Each round, with the servers'
order swapped every round:

1. per request: 100 GETs of the small image's manifest (by tag) and 100 of its config blob,
   directly and through each portal in turn, in groups of 20 on one keep-alive connection each;
   the median time through a portal minus the median direct is what that portal adds;
2. one pull: ``skopeo copy --all`` of the big image directly, then through each portal
   (skopeo's blob-info cache deleted first), with the web process tree's CPU seconds;
3. a page: 50 GETs of a logged-in page (the apps list) from each portal, median.

Then ``--batches`` rounds of ``--concurrent`` pulls at once through each portal in turn, with
the wall time and CPU seconds. Prints Markdown: every round, and the median of the per-round
ratios granian / uvicorn. The load average is printed at the start of each round: benchmarks of
others may share the machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVERS = ("uvicorn", "granian")
MB = 1 << 20
ALICE = ("alice", "pw-alice-1234")  # tests/support/proxy_server.py seed()


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", data={
        "username": ALICE[0], "password": ALICE[1],
        "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.status_code
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--granian-args", default="", help="more granian options, e.g. '--task-impl rust'")
    args = parser.parse_args()

    from bench.proxy import BENCH_USERS, pull, pull_batch
    from bench.proxy_request import timed
    from tests.support.images import build_index, build_single, cleanup, push
    from tests.support.proxy_server import start_proxy_server
    from tests.support.registry import start_distribution

    tmp = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    upstream, servers = None, {}
    try:
        upstream = start_distribution(tmp / "upstream", users=BENCH_USERS)
        big = build_index(layer_sizes=[25 * MB] * 4, shared_size=2 * MB, on_disk=True, directory=tmp)
        total = sum(b.size for b in big.blobs)
        push(big, upstream.url, "bench/app", "1.0", auth=upstream.auth)
        cleanup(big)
        small = build_single([100_000], seed=3)
        push(small, upstream.url, "bench/small", "1.0", auth=upstream.auth)
        lic = {}
        for name in SERVERS:
            more = tuple(shlex.split(args.granian_args)) if name == "granian" else ()
            servers[name] = start_proxy_server(tmp / name, server=name, args=more)
            data = servers[name].call("tests.support.proxy_server.seed", registries=[{
                "endpoint": upstream.host, "provider": "other", "username": upstream.username,
                "password": upstream.password, "name": "upstream", "insecure": True,
            }], apps=[{"slug": "benchapp", "pin": True,
                       "releases": [[f"{upstream.host}/bench/app:1.0",
                                     f"{upstream.host}/bench/small:1.0"]],
                       "customers": [{"name": "Bench"}]}])
            lic[name] = data["licenses"]["Bench"]

        direct_src, direct_creds = f"{upstream.host}/bench/app:1.0", f"{upstream.username}:{upstream.password}"
        accept = {"Accept": small.media_type}
        paths = {"manifest": "manifests/1.0", "blob": f"blobs/{small.config.digest}"}
        direct = httpx.Client(auth=upstream.auth, timeout=30)
        clients = {n: httpx.Client(auth=(lic[n], lic[n]), timeout=30) for n in SERVERS}
        pages = {n: login(servers[n].url) for n in SERVERS}
        page = pages["uvicorn"].get("/").headers["location"]

        def proxy_url(name: str, what: str, repo: str = "bench/small") -> str:
            return f"{servers[name].url}/v2/proxy/benchapp/upstream/{repo}/{paths[what]}"

        def proxy_src(name: str) -> str:
            return f"{servers[name].host}/proxy/benchapp/upstream/bench/app:1.0"

        # Warm-up, not measured: imports, first connections, the upstream token.
        for name in SERVERS:
            for what in paths:
                timed(clients[name], proxy_url(name, what), 20, headers=accept)
            timed(pages[name], page, 5)
            pull(proxy_src(name), f"{lic[name]}:{lic[name]}", tmp / "warm")
            shutil.rmtree(tmp / "warm")
        pull(direct_src, direct_creds, tmp / "warm")
        shutil.rmtree(tmp / "warm")

        rounds = []
        for i in range(args.rounds):
            order = SERVERS if i % 2 == 0 else SERVERS[::-1]
            row = {"load": load(), "order": order}
            print(f"round {i + 1} ({' then '.join(order)}), load {row['load']}", file=sys.stderr)
            for what in paths:
                samples = {"direct": [], **{n: [] for n in order}}
                cpu = {n: 0.0 for n in order}
                d_url = f"{upstream.url}/v2/bench/small/{paths[what]}"
                for _ in range(args.requests // 20):
                    samples["direct"] += timed(direct, d_url, 20, headers=accept)
                    for n in order:
                        before = servers[n].web_cpu_seconds()
                        samples[n] += timed(clients[n], proxy_url(n, what), 20, headers=accept)
                        cpu[n] += servers[n].web_cpu_seconds() - before
                d = statistics.median(samples["direct"])
                for n in order:
                    row[f"{what} added {n}"] = (statistics.median(samples[n]) - d) * 1000
                    row[f"{what} cpu {n}"] = cpu[n] / len(samples[n]) * 1000
                row[f"{what} direct"] = d * 1000
            row["pull direct"] = pull(direct_src, direct_creds, tmp / "d")
            shutil.rmtree(tmp / "d")
            for n in order:
                before = servers[n].web_cpu_seconds()
                row[f"pull {n}"] = pull(proxy_src(n), f"{lic[n]}:{lic[n]}", tmp / f"pulled-{n}")
                row[f"pull cpu {n}"] = servers[n].web_cpu_seconds() - before
                shutil.rmtree(tmp / f"pulled-{n}")
            for n in order:
                row[f"page {n}"] = statistics.median(timed(pages[n], page, 50)) * 1000
            rounds.append(row)

        def batch(name: str) -> dict:
            before = servers[name].web_cpu_seconds()
            wall, failures = pull_batch(
                args.concurrent, lambda target: pull(proxy_src(name), f"{lic[name]}:{lic[name]}",
                                                     target), tmp)
            cpu = servers[name].web_cpu_seconds() - before
            return {"wall": wall, "cpu": cpu, "failed": len(failures)}

        batches = []
        for i in range(args.batches):
            order = SERVERS if i % 2 == 0 else SERVERS[::-1]
            row = {"load": load(), "order": order}
            print(f"batch {i + 1} ({' then '.join(order)}), load {row['load']}", file=sys.stderr)
            for n in order:
                row[n] = batch(n)
            batches.append(row)
        report(args, rounds, batches, total, page)
    finally:
        for server in servers.values():
            server.stop()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args, rounds: list[dict], batches: list[dict], total: int, page: str) -> None:
    def ratio(key_g: str, key_u: str) -> tuple[list[float], float]:
        values = [r[key_g] / r[key_u] for r in rounds]
        return values, statistics.median(values)

    print(f"\ngranian options beyond tests/support/proxy_server.py's: {args.granian_args or 'none'}.")
    print(f"\n{args.rounds} rounds, servers alternated (order swapped every round); "
          f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) at each round's start: "
          + "; ".join(r["load"] for r in rounds) + ".\n")
    print("| round | manifest added, uvicorn / granian | config blob added, uvicorn / granian | "
          "portal CPU per manifest GET, uvicorn / granian | 202 MB pull: direct / uvicorn / granian | "
          "portal CPU per pull, uvicorn / granian | logged-in page p50, uvicorn / granian |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds, 1):
        print(f"| {i} | {r['manifest added uvicorn']:.2f} / {r['manifest added granian']:.2f} ms "
              f"| {r['blob added uvicorn']:.2f} / {r['blob added granian']:.2f} ms "
              f"| {r['manifest cpu uvicorn']:.2f} / {r['manifest cpu granian']:.2f} ms "
              f"| {r['pull direct']:.2f} / {r['pull uvicorn']:.2f} / {r['pull granian']:.2f} s "
              f"| {r['pull cpu uvicorn']:.2f} / {r['pull cpu granian']:.2f} s "
              f"| {r['page uvicorn']:.2f} / {r['page granian']:.2f} ms |")
    print("\n| granian / uvicorn, per round | ratios | median |\n|---|---|---|")
    for label, g, u in (
        ("added latency, manifest", "manifest added granian", "manifest added uvicorn"),
        ("added latency, config blob", "blob added granian", "blob added uvicorn"),
        ("portal CPU per manifest GET", "manifest cpu granian", "manifest cpu uvicorn"),
        ("portal CPU per blob GET", "blob cpu granian", "blob cpu uvicorn"),
        ("202 MB pull time", "pull granian", "pull uvicorn"),
        ("portal CPU per 202 MB pull", "pull cpu granian", "pull cpu uvicorn"),
        (f"logged-in page ({page}) p50", "page granian", "page uvicorn"),
    ):
        values, median = ratio(g, u)
        print(f"| {label} | {', '.join(f'{v:.2f}' for v in values)} | {median:.2f} |")
    for n in ("uvicorn", "granian"):
        values = [r[f"pull {n}"] / r["pull direct"] for r in rounds]
        print(f"| (pull through {n} / direct) | {', '.join(f'{v:.2f}' for v in values)} | "
              f"{statistics.median(values):.2f} |")
    print(f"\n{args.concurrent} pulls at once ({args.concurrent * total / MB:.0f} MB), "
          "servers alternated:\n")
    print("| batch | load at start | uvicorn wall / CPU | granian wall / CPU | granian / uvicorn wall |"
          "\n|---|---|---|---|---|")
    for i, b in enumerate(batches, 1):
        u, g = b["uvicorn"], b["granian"]
        failed = "".join(f" ({x[n]['failed']} failed under {n})" for x, n in ((b, "uvicorn"), (b, "granian"))
                         if x[n]["failed"])
        print(f"| {i} | {b['load']} | {u['wall']:.2f} s / {u['cpu']:.2f} s | {g['wall']:.2f} s / "
              f"{g['cpu']:.2f} s | {g['wall'] / u['wall']:.2f}{failed} |")
    values = [b["granian"]["wall"] / b["uvicorn"]["wall"] for b in batches]
    print(f"\nmedian granian / uvicorn wall, {args.concurrent} at once: {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
