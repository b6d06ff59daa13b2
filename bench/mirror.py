"""Benchmark the portal's copier against `skopeo copy --all`.

    .venv/bin/python bench/mirror.py [--rounds 5] [--big-layer-mb 1024]
        [--layers 4 --layer-kb 25600 --platforms 2]

A two-platform image (four 25 MB layers per platform plus one shared 2 MB layer, ~202 MB) is
pushed to a loopback distribution registry; each round copies it into a freshly started, empty
registry, alternately with the portal's copier (a child process: its peak RSS is measured) and
with skopeo (its blob-info cache deleted first, so it cannot mount from memory). Then: a repeat
copy of an image already present, a copy into a new repository of the same registry (mount),
and the peak memory with a single large layer. Prints a Markdown table. ``--layers``,
``--layer-kb`` and ``--platforms`` change the image: ``--layers 20 --layer-kb 1024`` gives 40
small layers; ``--platforms 1 --layers 1 --layer-kb 1048576`` one 1 GB layer (no shared layer).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_USERS = {"mirror": "mirror-secret-pw"}  # the upstream registries' one user
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["PORTAL_ALLOW_PRIVATE_REGISTRIES"] = "true"

MB = 1 << 20
SKOPEO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")


def child_copy(args) -> None:
    """In a fresh process: copy once and report seconds and RSS growth as JSON."""
    import django

    django.setup()
    from registries.mirror import copy
    from registries.oci.client import RegistryClient

    src = RegistryClient(args.src, username=args.user, password=args.password, insecure=True,
                         timeout=60)
    dst = RegistryClient(args.dst, username=args.user, password=args.password, insecure=True,
                         timeout=60)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    # As a mirror job's first delivery copies (registries/mirror/services.py).
    result = copy.copy(src, args.src_repo, args.tag, dst, args.dst_repo, args.tag,
                       fresh_start=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rss_base_mb": base / 1024, "rss_peak_mb": peak / 1024,
                      "added_mb": (peak - base) / 1024, "digest": result.digest,
                      "skipped": result.skipped, "bytes_copied": result.bytes_copied,
                      "actions": sorted({b.action for b in result.blobs})}))


def portal_copy(src, dst, src_repo, dst_repo, tag, registry) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--src", src, "--dst", dst, "--src-repo", src_repo,
         "--dst-repo", dst_repo, "--tag", tag, "--user", registry.username,
         "--password", registry.password], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def skopeo_copy(src, dst, repo, tag, registry) -> dict:
    SKOPEO_CACHE.unlink(missing_ok=True)
    creds = f"{registry.username}:{registry.password}"
    cmd = ["skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
           "--dest-tls-verify=false", "--src-creds", creds, "--dest-creds", creds, "-q",
           f"docker://{src}/{repo}:{tag}", f"docker://{dst}/{repo}:{tag}"]
    started = time.perf_counter()
    process = subprocess.Popen(cmd)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise RuntimeError(f"skopeo failed: {status}")
    return {"seconds": seconds, "rss_peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-layer-mb", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4, help="layers per platform")
    parser.add_argument("--layer-kb", type=int, default=25 * 1024)
    parser.add_argument("--platforms", type=int, choices=(1, 2), default=2)
    parser.add_argument("--child", action="store_true")
    for name in ("src", "dst", "src-repo", "dst-repo", "tag", "user", "password"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    if args.child:
        return child_copy(args)

    from tests.support.images import build_index, build_single, cleanup, push
    from tests.support.registry import start_distribution

    tmp = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    started = []

    def registry():
        r = start_distribution(tmp / f"r{len(started)}", users=BENCH_USERS)
        started.append(r)
        return r

    try:
        source = registry()
        layer_sizes = [args.layer_kb * 1024] * args.layers
        if args.platforms == 1:
            image = build_single(layer_sizes, on_disk=True, directory=tmp)
        else:
            image = build_index(layer_sizes=layer_sizes, shared_size=2 * MB, on_disk=True,
                                directory=tmp)
        total = sum(b.size for b in image.blobs)
        push(image, source.url, "bench/app", "1.0", auth=source.auth)
        rows = {"portal": [], "skopeo": []}
        for i in range(args.rounds):
            for tool in ("portal", "skopeo"):
                target = registry()
                if tool == "portal":
                    r = portal_copy(source.host, target.host, "bench/app", "bench/app", "1.0",
                                    source)
                    assert r["digest"] == image.digest
                else:
                    r = skopeo_copy(source.host, target.host, "bench/app", "1.0", source)
                rows[tool].append(r)
                print(f"round {i + 1} {tool}: {r['seconds']:.2f} s", file=sys.stderr)
                target.stop()
        # repeat copy, and mount into a new repository of the same registry
        target = registry()
        portal_copy(source.host, target.host, "bench/app", "bench/app", "1.0", source)
        repeat = portal_copy(source.host, target.host, "bench/app", "bench/app", "1.0", source)
        mount = portal_copy(source.host, source.host, "bench/app", "other/app", "1.0", source)
        cleanup(image)
        big = None
        if args.big_layer_mb:
            single = build_single([args.big_layer_mb * MB], on_disk=True, directory=tmp, seed=9)
            push(single, source.url, "bench/big", "1.0", auth=source.auth)
            big = portal_copy(source.host, target.host, "bench/big", "bench/big", "1.0", source)
            cleanup(single)

        def med(tool, key):
            return statistics.median(r[key] for r in rows[tool])

        p, s = med("portal", "seconds"), med("skopeo", "seconds")
        print(f"\nImage: {args.platforms} platform(s), {len(image.blobs)} blobs, "
              f"{total / MB:.0f} MB; "
              f"{args.rounds} rounds each, fresh target registry per round; {os.cpu_count()} CPUs.\n")
        print("| | portal | skopeo copy --all |\n|---|---|---|")
        print(f"| median time | {p:.2f} s | {s:.2f} s |")
        print("| all rounds | " + ", ".join(f"{r['seconds']:.2f}" for r in rows["portal"])
              + " | " + ", ".join(f"{r['seconds']:.2f}" for r in rows["skopeo"]) + " |")
        print(f"| peak RSS (median) | {med('portal', 'rss_peak_mb'):.0f} MB "
              f"(+{med('portal', 'added_mb'):.0f} MB by the copy) | "
              f"{med('skopeo', 'rss_peak_mb'):.0f} MB |")
        print(f"\nmedian time ratio portal/skopeo: {p / s:.2f}")
        print(f"repeat copy (already present): {repeat['seconds']:.3f} s, skipped={repeat['skipped']}")
        print(f"copy into a new repository of the same registry: {mount['seconds']:.3f} s, "
              f"actions={mount['actions']}, layer bytes moved={mount['bytes_copied']}")
        if big:
            print(f"single {args.big_layer_mb} MB layer: {big['seconds']:.2f} s, "
                  f"+{big['added_mb']:.0f} MB peak RSS (peak {big['rss_peak_mb']:.0f} MB)")
    finally:
        for r in started:
            r.stop()
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
