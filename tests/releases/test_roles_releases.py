"""Every role against every page of the release side.

Support reads and changes nothing (403 on edit pages and POSTs, no buttons); Developers and
Admins edit and promote; another team's user gets 404 for every object; anonymous users are
sent to the login page.
"""

import pytest

from releases.models import Promotion, Release
from tests.conftest import login

READ_PAGES = [
    "/apps/",
    "/apps/mysampleecrapp/",
    "/apps/mysampleecrapp/releases/",
    "/apps/mysampleecrapp/channels/unstable/",
    "/apps/mysampleecrapp/releases/1/",
    "/apps/mysampleecrapp/releases/1/diff/",
]
OBJECT_READ_PAGES = READ_PAGES[1:]
EDIT_PAGES = [  # GET pages for editors only
    "/apps/new/",
    "/apps/mysampleecrapp/edit/",
    "/apps/mysampleecrapp/releases/2/edit/",
    "/apps/mysampleecrapp/releases/1/promote/",
]
POSTS = [  # (url, data)
    ("/apps/mysampleecrapp/releases/new/", {}),
    ("/apps/mysampleecrapp/releases/2/edit/", {"original_name": "deployment.yaml", "name": "deployment.yaml",
                                              "content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}),
    ("/apps/mysampleecrapp/releases/2/validate/", {"name": "a.yaml", "content": "a: b"}),
    ("/apps/mysampleecrapp/releases/2/files/delete/", {"name": "service.yaml"}),
    ("/apps/mysampleecrapp/releases/1/promote/", {"version_label": "9.9.9"}),
    ("/apps/mysampleecrapp/promotions/{promotion}/demote/", {}),
    ("/apps/mysampleecrapp/channels/new/", {"name": "Nightly"}),
    ("/apps/mysampleecrapp/channels/beta/archive/", {}),
    ("/apps/mysampleecrapp/edit/", {"name": "Renamed", "slug": "mysampleecrapp"}),
    ("/apps/mysampleecrapp/archive/", {}),
]
OBJECT_POSTS = POSTS


@pytest.fixture
def setup(sample_app, alice):
    """Release 1 promoted (sample_app) and release 2 a draft with the same files."""
    files = [(f.name, f.content) for f in sample_app.releases.get(sequence=1).files.all()]
    Release.create_next(app=sample_app, user=alice, files=files)
    return {"promotion": Promotion.objects.get().pk}


def _url(url, setup):
    return url.format(**setup)


@pytest.mark.parametrize("persona", ["alice", "bob", "sam"])
@pytest.mark.parametrize("url", READ_PAGES)
def test_everyone_on_the_team_reads(client, request, setup, persona, url):
    assert login(client, request.getfixturevalue(persona)).get(url).status_code == 200


@pytest.mark.parametrize(("persona", "status"), [("alice", 200), ("bob", 200), ("sam", 403)])
@pytest.mark.parametrize("url", EDIT_PAGES)
def test_only_developers_and_admins_open_edit_pages(client, request, setup, persona, status, url):
    assert login(client, request.getfixturevalue(persona)).get(url).status_code == status


@pytest.mark.parametrize(("url", "data"), POSTS)
@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_developers_and_admins_may_post(client, request, setup, persona, url, data):
    response = login(client, request.getfixturevalue(persona)).post(_url(url, setup), data)
    assert response.status_code in (200, 302, 400)


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_support_changes_nothing(client, sam, setup, sample_app, url, data):
    before = (Release.objects.count(), Promotion.objects.filter(demoted_at__isnull=True).count(),
              sample_app.channels.filter(archived_at__isnull=True).count())
    assert login(client, sam).post(_url(url, setup), data).status_code == 403
    sample_app.refresh_from_db()
    assert not sample_app.is_archived
    assert before == (Release.objects.count(), Promotion.objects.filter(demoted_at__isnull=True).count(),
                      sample_app.channels.filter(archived_at__isnull=True).count())


@pytest.mark.parametrize("url", [*OBJECT_READ_PAGES, *EDIT_PAGES[1:]])
def test_another_team_gets_404_for_every_object_page(client, mallory, setup, url):
    assert login(client, mallory).get(url).status_code == 404


@pytest.mark.parametrize(("url", "data"), [p for p in OBJECT_POSTS])
def test_another_team_gets_404_for_every_change(client, mallory, setup, url, data):
    assert login(client, mallory).post(_url(url, setup), data).status_code == 404


@pytest.mark.parametrize("url", [*READ_PAGES, *EDIT_PAGES])
def test_anonymous_users_are_sent_to_log_in(client, setup, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", READ_PAGES)
def test_support_sees_no_change_buttons(client, sam, setup, url):
    content = login(client, sam).get(url).content.decode()
    for text in ("Create app", "Create new release", "Edit release", "/promote/\"", "/edit/\"", "Demote", "Archive",
                 "Add channel", 'method="post" action="/apps'):
        assert text not in content, (url, text)


@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_editors_see_the_buttons(client, request, setup, persona):
    login(client, request.getfixturevalue(persona))
    assert "Edit release 2" in client.get("/apps/mysampleecrapp/").content.decode()
    assert "Create new release from this one" in client.get("/apps/mysampleecrapp/releases/1/").content.decode()
    assert "Demote" in client.get("/apps/mysampleecrapp/channels/unstable/").content.decode()
