"""Pipelines in parallel, and a response lost on the way: the sequences stay gapless and a retried
create makes one release."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cli.dropping_proxy import DroppingProxy
from tests.cli.manifests import write_release
from tests.support.servers import LOOPBACK

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.slow]

CREATES = 100
PROCESSES = 8

STATE = """
import json
from releases.models import Promotion, Release
releases = sorted(Release.objects.filter(app__slug="mysampleecrapp").values_list("sequence", flat=True))
promotions = list(Promotion.objects.filter(channel__app__slug="mysampleecrapp", channel__slug="unstable")
                  .values_list("release__sequence", "channel_sequence"))
print("STATE=" + json.dumps({"releases": releases, "promotions": promotions}))
"""


def state(stack) -> dict:
    out = stack.shell(STATE)
    return json.loads(next(x for x in out.splitlines() if x.startswith("STATE=")).removeprefix("STATE="))


def test_parallel_pipelines_get_distinct_gapless_sequences(run_cli, cli_stack, admin_token, tmp_path):
    manifests = write_release(tmp_path / "manifests", "nginx:1.27")
    before = state(cli_stack)

    def create(n: int):
        # docker.io is out of reach here, so the image check fails the public image: promote anyway.
        return run_cli("release", "create", "--yaml-dir", str(manifests), "--promote", "Unstable",
                       "--version", f"2.0.{n}", "--allow-failing-images", "--output", "json",
                       token=admin_token)

    with ThreadPoolExecutor(PROCESSES) as pool:
        results = list(pool.map(create, range(CREATES)))

    failures = [r for r in results if r.returncode]
    assert not failures, failures[0].stderr
    sequences = [json.loads(r.stdout)["release"]["sequence"] for r in results]
    assert len(set(sequences)) == CREATES
    first = max(before["releases"]) + 1
    assert sorted(sequences) == list(range(first, first + CREATES))

    after = state(cli_stack)
    assert sorted(after["releases"]) == sorted(before["releases"] + sequences)
    new = [channel_seq for release_seq, channel_seq in after["promotions"] if release_seq in set(sequences)]
    start = max((c for _, c in before["promotions"]), default=0) + 1
    assert sorted(new) == list(range(start, start + CREATES))


def test_a_create_retried_after_a_dropped_response_makes_one_release(run_cli, cli_stack, admin_token,
                                                                     tmp_path):
    manifests = write_release(tmp_path / "manifests", "nginx:1.27")
    proxy = DroppingProxy((LOOPBACK, cli_stack.port), re.compile(rb"^POST /vendor/v3/app/[^/]+/release$")).start()
    try:
        before = state(cli_stack)
        result = run_cli("release", "create", "--yaml-dir", str(manifests), "--output", "json",
                         token=admin_token, url=proxy.url)
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr
    assert len(proxy.dropped) == 1  # the first answer was lost, so the CLI did retry
    sequence = json.loads(result.stdout)["release"]["sequence"]
    after = state(cli_stack)
    assert sorted(after["releases"]) == sorted(before["releases"] + [sequence])
