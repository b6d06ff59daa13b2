"""Measure what hostile input costs the web process: CPU time and memory growth per case.

Starts the portal as the Procfile runs it (tests/support/processes.py, over a private
redis-server), sends each case of the hostile-input suite N times, and reads the web process's
CPU time (utime + stime) and resident memory from /proc before and after. Goal per case: at most
0.1 s of CPU and 20 MB. A request that gets no answer within --timeout seconds is recorded as
such (the web process is then restarted) and the case is not repeated.

Run: `make bench` (or `.venv/bin/python bench/hostile.py [--rounds N] [--timeout S]`). Writes the
"Hostile input" section of docs/benchmarks.md.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import httpx  # noqa: E402

from bench.results import markers, write_block  # noqa: E402
from tests.hostile.conftest import raw_request  # noqa: E402
from tests.hostile.payloads import RELEASE_YAML, STATIC_TRAVERSALS, license_yaml_cases  # noqa: E402
from tests.support.processes import PortalStack  # noqa: E402
from tests.support.servers import start_redis, stop_process  # noqa: E402

BEGIN, END = markers("hostile.py")
CPU_GOAL, RSS_GOAL = 0.1, 20 * 2**20
TIMEOUT = 60.0  # --timeout


def cases(stack, sessions):
    """(name, function sending one request) for each measured case."""
    license_cases = {c[0]: c[1] for c in license_yaml_cases(stack.data["license_id"])}
    release_cases = {c[0]: c[1] for c in RELEASE_YAML}
    slug, draft = stack.data["app_slug"], stack.data["draft_sequence"]
    dev = sessions["Developer"]

    def upload(text):
        def send():
            with stack.client(timeout=TIMEOUT) as client:
                client.get("/customer/")
                return client.post("/customer/", data={"csrfmiddlewaretoken": client.cookies["csrftoken"]},
                                   files={"license_file": ("x.yaml", text.encode(), "application/yaml")}).status_code
        return send

    def live_check(text):
        return lambda: dev.post(f"/apps/{slug}/releases/{draft}/validate/", headers={"HX-Request": "true"},
                                data={"original_name": "", "name": "bench.yaml", "content": text}).status_code

    def raw(data):
        return lambda: raw_request(stack, data).status

    def head(path, *headers):
        return b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers,
                             b"Connection: close", b"", b""])

    license_id = stack.data["license_id"]
    return [
        ("license upload: merge-key bomb (7 levels)", upload(license_cases["merge-bomb-7"])),
        ("license upload: alias bomb", upload(license_cases["alias-bomb"])),
        ("license upload: 2,000-deep flow nesting", upload(license_cases["deep-flow"])),
        ("license upload: date in spec", upload(license_cases["date"])),
        ("live YAML check: merge-key bomb (7 levels)", live_check(release_cases["merge-bomb-7"])),
        ("live YAML check: 2,000-deep block nesting", live_check(release_cases["deep-block"])),
        # The worst a text can do without being refused: aliases expanding to just under the budget.
        ("license upload: merge keys just under its 10,000-node budget", upload(under_budget(3))),
        ("live YAML check: merge keys just under the 100,000-node merge budget", live_check(under_budget(49))),
        ("1 MB header value", raw(head("/customer/", b"X-Hostile: " + b"a" * 2**20))),
        ("200 header fields", raw(head("/customer/", *[f"X-H-{i}: {i}".encode() for i in range(200)]))),
        ("/v2/ manifest, odd host, valid license", lambda: stack.client(timeout=TIMEOUT).get(
            f"/v2/proxy/{slug}/0177.0.0.1:5302/nginx/manifests/latest", auth=(license_id, license_id)).status_code),
        ("/static/ traversal", raw(head(STATIC_TRAVERSALS[0]))),
        ("login with a 100 KB password", lambda: login_100k(stack)),
    ]


def under_budget(merges: int) -> str:
    """A 1,000-key anchored mapping merged into ``merges`` mappings: about 2,000 × (merges + 1)
    nodes, each merge flattened into a real copy when constructed (the costly kind of alias)."""
    keys = ", ".join(f"k{n}: {n}" for n in range(1000))
    return (f"kind: List\nbase: &b {{{keys}}}\nmore:\n"
            + "".join(f"- {{<<: *b, n: {n}}}\n" for n in range(merges)))


def login_100k(stack):
    with stack.client(timeout=TIMEOUT) as client:
        client.get("/accounts/login/")
        return client.post("/accounts/login/", data={
            "username": "bench", "password": "p" * 100_000,
            "csrfmiddlewaretoken": client.cookies["csrftoken"]}).status_code


def measure(stack, send, rounds):
    """(statuses, CPU seconds per request, RSS growth in bytes over all rounds, timed out)."""
    statuses, cpu = [], []
    rss_start = stack.web_rss_bytes()
    for _ in range(rounds):
        before = stack.web_cpu_seconds()
        try:
            statuses.append(send())
        except (httpx.TimeoutException, TimeoutError):
            spent = stack.web_cpu_seconds() - before
            grown = stack.web_rss_bytes() - rss_start
            stack.restart_web()
            return statuses + ["no answer"], [spent], grown, True
        cpu.append(stack.web_cpu_seconds() - before)
    return statuses, cpu, stack.web_rss_bytes() - rss_start, False


def write_results(rows, rounds, timeout):
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        BEGIN,
        "## Hostile input (bench/hostile.py)",
        "",
        "CPU time (utime + stime from /proc) and resident-memory growth of the web process per "
        "hostile case, against the portal as the Procfile runs it (uvicorn, worker and beat, "
        f"SQLite). Each case is sent {rounds} times; CPU is the mean per request, memory the growth "
        f"over all rounds. A request with no answer within {timeout:g} s is shown as such (CPU "
        "measured until then; the web process is restarted). Goal per case: at most "
        f"{CPU_GOAL:g} s of CPU and {RSS_GOAL // 2**20} MB.",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at the end, "
        f"from branch `{branch()}`. Regenerate with `make bench`.",
        "",
        "| case | answers | CPU per request | memory growth | within goal? |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for name, statuses, cpu, grown, timed_out in rows:
        mean = sum(cpu) / len(cpu) if cpu else 0.0
        cpu_text = f"≥ {mean:.3f} s" if timed_out else f"{mean:.3f} s"
        met = "yes" if not timed_out and mean <= CPU_GOAL and grown <= RSS_GOAL else "**no**"
        answers = ", ".join(str(s) for s in dict.fromkeys(statuses))
        lines.append(f"| {name} | {answers} | {cpu_text} | {grown / 2**20:.1f} MB | {met} |")
    lines += ["", END]
    block = "\n".join(lines)
    write_block(block, BEGIN, END)
    print(block)


def branch() -> str:
    head = (BASE_DIR / ".git").read_text().strip() if (BASE_DIR / ".git").is_file() else ""
    git_dir = Path(head.removeprefix("gitdir: ")) if head.startswith("gitdir: ") else BASE_DIR / ".git"
    ref = (git_dir / "HEAD").read_text().strip()
    return ref.removeprefix("ref: refs/heads/")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    global TIMEOUT
    TIMEOUT = args.timeout
    directory = Path(tempfile.mkdtemp(prefix="portal-bench-hostile-"))
    (directory / "redis").mkdir()
    redis = start_redis(directory / "redis")
    stack = PortalStack(directory / "stack", redis.url,
                        extra_env={"PORTAL_PROXY_AUTH_FAILURE_LIMIT": "1000000", "LOG_LEVEL": "WARNING"})
    try:
        stack.start()
        sessions = {role: stack.session(role) for role in ("Developer",)}
        for client in sessions.values():
            client.timeout = httpx.Timeout(args.timeout)
        rows = []
        for name, send in cases(stack, sessions):
            started = time.monotonic()
            statuses, cpu, grown, timed_out = measure(stack, send, args.rounds)
            rows.append((name, statuses, cpu, grown, timed_out))
            print(f"{name}: {statuses} {sum(cpu) / max(len(cpu), 1):.3f} s CPU, "
                  f"{grown / 2**20:.1f} MB ({time.monotonic() - started:.0f} s)", flush=True)
        write_results(rows, args.rounds, args.timeout)
    finally:
        stack.stop()
        stop_process(redis.process)


if __name__ == "__main__":
    main()
