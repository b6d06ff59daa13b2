"""The diff page's bounded work, and "Download files (.tar.gz)" of any release for the team."""

import difflib
import gzip
import io
import random
import tarfile
import time

import pytest

from releases.diff import MAX_SHOWN_LINES, WORK_PER_FILE, WORK_PER_PAGE, DiffBudget, diff_files
from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT, NGINX_SERVICE, login

FALLBACK = "This file is too large to show as a diff here"


def every_other_line_changed(lines: int) -> tuple[str, str]:
    """The worst case for difflib: thousands of one-line matching blocks."""
    old = "".join(f"  key{i}: value-{i}\n" for i in range(lines))
    new = "".join(f"  key{i}: value-{i}\n" if i % 2 else f"  key{i}: changed-{i}\n" for i in range(lines))
    return old, new


@pytest.mark.parametrize("seed", range(30))
def test_diff_lines_are_what_difflib_unified_diff_writes(seed):
    rng = random.Random(seed)
    words = [f"line {i}" for i in range(rng.choice([3, 12, 40]))]
    old = "\n".join(rng.choice(words) for _ in range(rng.randint(0, 300)))
    new = "\n".join(rng.choice(words) for _ in range(rng.randint(0, 300)))
    expected = list(difflib.unified_diff(old.splitlines(), new.splitlines(), fromfile="a/f", tofile="b/f",
                                         lineterm="", n=3))[2:]
    diff, = diff_files({"f": old}, {"f": new})
    assert [line.text for line in diff.lines] == expected
    assert diff.added == sum(1 for x in expected if x.startswith("+"))
    assert diff.removed == sum(1 for x in expected if x.startswith("-"))
    assert not diff.too_large


def test_two_60000_line_files_fall_back_within_the_work_budget():
    old, new = every_other_line_changed(60_000)
    budget = DiffBudget()
    started = time.process_time()
    diff, = diff_files({"big.yaml": old}, {"big.yaml": new}, budget=budget)
    assert time.process_time() - started < 3  # coarse: the budget is what bounds it
    assert diff.too_large and diff.lines == [] and diff.added is None
    assert budget.spent <= WORK_PER_FILE


def test_a_small_file_after_too_large_ones_still_gets_its_diff():
    old, new = every_other_line_changed(20_000)
    names = [f"big-{i}.yaml" for i in range(6)]
    budget = DiffBudget()
    diffs = diff_files({**dict.fromkeys(names, old), "small.yaml": "a: 1\n"},
                       {**dict.fromkeys(names, new), "small.yaml": "a: 2\n"}, budget=budget)
    assert [d.too_large for d in diffs] == [True] * 6 + [False]
    assert [line.text for line in diffs[-1].lines] == ["@@ -1 +1 @@", "-a: 1", "+a: 2"]
    assert budget.spent <= WORK_PER_PAGE


def test_a_diff_too_long_to_read_falls_back_with_its_counts():
    added = "".join(f"line {i}\n" for i in range(MAX_SHOWN_LINES + 1))
    diff, = diff_files({}, {"crds.yaml": added})
    assert diff.too_large and diff.lines == [] and (diff.added, diff.removed) == (MAX_SHOWN_LINES + 1, 0)


def test_the_diff_page_of_two_60000_line_releases_links_both_downloads(client, sam, sample_app, alice):
    old, new = every_other_line_changed(60_000)
    Release.create_next(app=sample_app, user=alice, files=[("big.yaml", old)])
    Release.create_next(app=sample_app, user=alice, files=[("big.yaml", new), ("service.yaml", NGINX_SERVICE)])
    login(client, sam)
    started = time.process_time()
    content = client.get("/apps/mysampleecrapp/releases/3/diff/").content.decode()
    assert time.process_time() - started < 3  # coarse: 48 s before the budget
    assert f"{FALLBACK}: download both releases' files" in content
    assert 'href="/apps/mysampleecrapp/releases/2/download/"' in content
    assert 'href="/apps/mysampleecrapp/releases/3/download/"' in content
    assert '<div class="line add">+apiVersion: v1</div>' in content  # service.yaml (added) still shown


def test_typical_diffs_do_not_offer_the_fallback(client, sam, sample_app, alice):
    Release.create_next(app=sample_app, user=alice, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
    content = login(client, sam).get("/apps/mysampleecrapp/releases/2/diff/").content.decode()
    assert FALLBACK not in content and '<div class="line del">' in content


# --- Download files (.tar.gz) -----------------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "bob", "sam"])
def test_every_role_of_the_team_downloads_a_releases_files(client, sample_app, alice, persona, request):
    Release.create_next(app=sample_app, user=alice, files=[("service.yaml", NGINX_SERVICE),
                                                           ("base/deployment.yaml", NGINX_DEPLOYMENT)])
    release = sample_app.releases.get(sequence=2)
    response = login(client, request.getfixturevalue(persona)).get("/apps/mysampleecrapp/releases/2/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="mysampleecrapp-release-2.tar.gz"'
    mtime = int(release.updated_at.timestamp())
    assert int.from_bytes(response.content[4:8], "little") == mtime  # the gzip header's
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["mysampleecrapp-release-2/base/deployment.yaml",
                                             "mysampleecrapp-release-2/service.yaml"]
        assert {m.mtime for m in members} == {mtime} and all(m.isfile() for m in members)
        assert {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in members} == {
            "service.yaml": NGINX_SERVICE, "base/deployment.yaml": NGINX_DEPLOYMENT}


def test_the_same_release_downloads_as_the_same_bytes(client, sam, sample_app):
    login(client, sam)
    first = client.get("/apps/mysampleecrapp/releases/1/download/").content
    assert client.get("/apps/mysampleecrapp/releases/1/download/").content == first
    assert gzip.decompress(first)


def test_another_team_gets_404_for_a_download(client, mallory, sample_app):
    assert login(client, mallory).get("/apps/mysampleecrapp/releases/1/download/").status_code == 404


def test_the_release_page_links_its_download(client, sam, sample_app):
    content = login(client, sam).get("/apps/mysampleecrapp/releases/1/").content.decode()
    assert 'href="/apps/mysampleecrapp/releases/1/download/"' in content
    assert "Download files (.tar.gz)" in content


def test_a_download_needs_signing_in(client, sample_app):
    response = client.get("/apps/mysampleecrapp/releases/1/download/")
    assert response.status_code == 302 and "/login/" in response["Location"]
