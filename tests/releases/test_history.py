"""Release history per app and per channel (paginated, constant queries) and per-file diffs."""

import pytest

from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE
from releases.diff import diff_files
from releases.models import Release
from tests.conftest import login

ECR_IMAGE = "4999999999999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx"


def add_releases(app, user, count, *, promote=True):
    unstable = app.channels.get(slug="unstable")
    for i in range(count):
        release = Release.create_next(app=app, user=user, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
        if promote:
            release.promote_to(unstable, user=user, version_label=f"1.{i}.0", release_notes=f"Notes {i}")


def test_the_app_history_lists_sequence_channel_sequence_label_notes_who_and_when(client, sam, sample_app, bob):
    add_releases(sample_app, bob, 1)
    content = login(client, sam).get("/apps/mysampleecrapp/releases/").content.decode()
    assert "Release 2" in content and "Release 1" in content
    assert "Unstable #2 · 1.0.0" in content and "Unstable #1 · 0.0.1" in content
    assert "Notes 0" in content and "bob" in content and "alice" in content
    assert content.index("Release 2") < content.index("Release 1")


def test_the_channel_history_lists_its_promotions_newest_first(client, sam, sample_app, bob):
    add_releases(sample_app, bob, 2)
    content = login(client, sam).get("/apps/mysampleecrapp/channels/unstable/").content.decode()
    assert content.index("1.1.0") < content.index("1.0.0") < content.index("0.0.1")
    assert "Notes 1" in content
    assert b"Nothing promoted" not in client.get("/apps/mysampleecrapp/channels/unstable/").content
    assert b"No release has been promoted to Beta" in client.get("/apps/mysampleecrapp/channels/beta/").content


def test_history_pages_hold_25_releases(client, alice, sample_app):
    add_releases(sample_app, alice, 29, promote=False)
    login(client, alice)
    first = client.get("/apps/mysampleecrapp/releases/").content.decode()
    assert "Release 30<" in first and "Release 6<" in first and "Release 5<" not in first
    assert "Page 1 of 2" in first
    second = client.get("/apps/mysampleecrapp/releases/", {"page": 2}).content.decode()
    assert "Release 5<" in second and "Release 1<" in second


@pytest.mark.postgres  # also run in make test's PostgreSQL pass: query counts depend on the database
@pytest.mark.parametrize("url", ["/apps/mysampleecrapp/releases/", "/apps/mysampleecrapp/channels/unstable/",
                                 "/apps/mysampleecrapp/", "/apps/"])
def test_history_and_overview_queries_do_not_grow_with_the_data(client, alice, sample_app, url,
                                                                django_assert_max_num_queries):
    login(client, alice)
    add_releases(sample_app, alice, 5)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    add_releases(sample_app, alice, 45)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(url).status_code == 200


def test_the_diff_shows_the_walkthroughs_one_line_image_change(client, sam, sample_app, alice):
    Release.create_next(app=sample_app, user=alice, files=[
        ("deployment.yaml", NGINX_DEPLOYMENT.replace("image: nginx", f"image: {ECR_IMAGE}")),
        ("service.yaml", NGINX_SERVICE)])
    content = login(client, sam).get("/apps/mysampleecrapp/releases/2/diff/").content.decode()
    assert "Release 1 → 2" in content and "1 file changed since release 1" in content
    assert '<div class="line del">-          image: nginx</div>' in content
    assert f'<div class="line add">+          image: {ECR_IMAGE}</div>' in content
    assert "+1 −1" in content
    assert content.count('class="line add"') == 1 and content.count('class="line del"') == 1


def test_the_first_release_diffs_against_nothing(client, sam, sample_app):
    content = login(client, sam).get("/apps/mysampleecrapp/releases/1/diff/").content.decode()
    assert "first release" in content and "Added" in content


def test_diff_files_reports_added_deleted_changed_and_unchanged():
    diffs = {d.name: d for d in diff_files({"a.yaml": "x\n", "b.yaml": "y\n", "c.yaml": "z\n"},
                                           {"a.yaml": "x\n", "b.yaml": "y2\n", "d.yaml": "w\n"})}
    assert {n: d.status for n, d in diffs.items()} == {
        "a.yaml": "unchanged", "b.yaml": "changed", "d.yaml": "added", "c.yaml": "deleted"}
    assert [(line.kind, line.text) for line in diffs["b.yaml"].lines] == [
        ("hunk", "@@ -1 +1 @@"), ("del", "-y"), ("add", "+y2")]
    assert diffs["a.yaml"].lines == []


def test_history_rows_escape_what_users_typed_and_link_edit_only_for_the_newest_draft(client, bob, sam, sample_app):
    add_releases(sample_app, bob, 1)
    Release.objects.filter(app=sample_app, sequence=2).first().promotions.update(
        release_notes="<script>alert(1)</script> " + "x" * 200, is_required=True)
    Release.create_next(app=sample_app, user=bob, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
    content = login(client, bob).get("/apps/mysampleecrapp/releases/").content.decode()
    assert "<script>alert(1)" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "x" * 200 not in content and "x…" in content  # truncated to 140 characters as before
    assert '<a href="/apps/mysampleecrapp/releases/3/">Release 3</a> <span class="badge warn">Draft</span>' in content
    assert '<a href="/apps/mysampleecrapp/releases/3/edit/">Edit</a>' in content
    assert '<a href="/apps/mysampleecrapp/releases/2/diff/">Diff</a>' in content
    assert '<span class="badge warn">Required</span>' in content and "Not promoted" in content
    assert '<time class="small muted" datetime="' in content
    # Support reads the same rows without the Edit link.
    assert "/releases/3/edit/" not in login(client, sam).get("/apps/mysampleecrapp/releases/").content.decode()
