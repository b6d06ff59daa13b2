"""Release editor: drafts edited in place, frozen once promoted, files added/renamed/deleted,
YAML checked live (htmx) and on save, and nothing the user typed is ever lost."""

import pytest
from django.utils.html import escape

from portal.models import AuditEvent
from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE
from releases.models import Release
from tests.conftest import login
from tests.yaml_bombs import alias_bomb, deep_nesting

ECR_IMAGE = "4999999999999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx"
ECR_DEPLOYMENT = NGINX_DEPLOYMENT.replace("image: nginx", f"image: {ECR_IMAGE}")


@pytest.fixture
def draft(sample_app, bob):
    """Release 2, a draft with release 1's files."""
    return Release.create_next(app=sample_app, user=bob,
                               files=[("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)])


def edit_url(sequence=2):
    return f"/apps/mysampleecrapp/releases/{sequence}/edit/"


def test_create_new_release_copies_the_promoted_releases_files_into_the_next_sequence(client, bob, sample_app):
    response = login(client, bob).post("/apps/mysampleecrapp/releases/new/")
    assert response.status_code == 302 and response["Location"] == edit_url(2)
    release = sample_app.releases.get(sequence=2)
    assert release.is_draft
    assert [(f.name, f.content) for f in release.files.all()] == [
        ("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)]
    assert AuditEvent.objects.filter(action="create", object_type="release").exists()


def test_create_new_release_reuses_an_existing_draft(client, bob, draft):
    response = login(client, bob).post("/apps/mysampleecrapp/releases/new/")
    assert response["Location"] == edit_url(2)
    assert draft.app.releases.count() == 2


def test_the_first_release_of_a_new_app_starts_from_the_default_files(client, bob, team):
    login(client, bob).post("/apps/new/", {"name": "Fresh"})
    client.post("/apps/fresh/releases/new/")
    release = Release.objects.get(app__slug="fresh")
    assert release.sequence == 1 and release.files.get(name="deployment.yaml").content == NGINX_DEPLOYMENT


def test_the_editor_opens_deployment_yaml_in_a_labelled_monospace_textarea(client, bob, draft):
    content = login(client, bob).get(edit_url()).content.decode()
    assert '<label for="id_content">' in content and 'class="code"' in content
    assert "image: nginx" in content
    assert 'hx-post="/apps/mysampleecrapp/releases/2/validate/"' in content
    assert 'hx-trigger="keyup changed delay:500ms"' in content
    assert "<code>nginx</code>" in content  # the images the release uses


def test_saving_the_walkthroughs_image_change_updates_the_draft_in_place(client, bob, draft):
    response = login(client, bob).post(edit_url(), {
        "original_name": "deployment.yaml", "name": "deployment.yaml", "content": ECR_DEPLOYMENT.replace("\n", "\r\n")})
    assert response.status_code == 302 and response["Location"] == edit_url() + "?file=deployment.yaml"
    assert draft.files.get(name="deployment.yaml").content == ECR_DEPLOYMENT
    assert draft.app.releases.count() == 2  # in place, no new release
    event = AuditEvent.objects.get(action="update", object_type="releasefile")
    assert event.detail == {"release": 2, "file": "deployment.yaml"}
    assert ECR_IMAGE in client.get(response["Location"]).content.decode()


def test_bad_yaml_is_not_saved_and_everything_typed_is_kept(client, bob, draft):
    typed = NGINX_DEPLOYMENT.replace("          image: nginx\n", "          imag: nginx\n") + "# my note <b>\n"
    response = login(client, bob).post(edit_url(), {
        "original_name": "deployment.yaml", "name": "renamed.yaml", "content": typed})
    content = response.content.decode()
    assert response.status_code == 400
    assert "Line 17, column 11" in content and "Container “nginx” needs an “image”." in content
    assert "# my note &lt;b&gt;" in content and "imag: nginx" in content
    assert 'value="renamed.yaml"' in content
    assert draft.files.get(name="deployment.yaml").content == NGINX_DEPLOYMENT


def test_a_syntax_error_names_its_line_and_column(client, bob, draft):
    response = login(client, bob).post(edit_url(), {
        "original_name": "service.yaml", "name": "service.yaml", "content": "a: b\n  c: d\n"})
    assert "Line 2, column 4" in response.content.decode()


def test_the_live_check_answers_htmx_with_the_problems_and_images(client, bob, draft):
    response = login(client, bob).post(
        "/apps/mysampleecrapp/releases/2/validate/",
        {"original_name": "deployment.yaml", "name": "deployment.yaml", "content": ECR_DEPLOYMENT},
        HTTP_HX_REQUEST="true",
    )
    content = response.content.decode()
    assert "<html" not in content and 'id="yaml-check"' in content
    assert "YAML OK" in content and ECR_IMAGE in content
    bad = client.post("/apps/mysampleecrapp/releases/2/validate/",
                      {"original_name": "deployment.yaml", "name": "deployment.yaml", "content": "kind: Pod\n"},
                      HTTP_HX_REQUEST="true").content.decode()
    assert "needs “apiVersion”" in bad and "needs “metadata” with a “name”" in bad


def test_the_check_without_javascript_renders_the_whole_editor_with_the_typed_text(client, bob, draft):
    response = login(client, bob).post("/apps/mysampleecrapp/releases/2/validate/",
                                       {"original_name": "deployment.yaml", "name": "deployment.yaml",
                                        "content": "kind: Pod\n"})
    content = response.content.decode()
    assert "<html" in content and "kind: Pod" in content and "needs “apiVersion”" in content
    assert draft.files.get(name="deployment.yaml").content == NGINX_DEPLOYMENT


def test_it_adds_a_file(client, bob, draft):
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nginx-config\ndata:\n  a: b\n"
    response = login(client, bob).post(edit_url(), {"original_name": "", "name": "k8s/configmap.yaml",
                                                    "content": configmap})
    assert response.status_code == 302
    assert [f.name for f in draft.files.all()] == ["deployment.yaml", "service.yaml", "k8s/configmap.yaml"]
    assert AuditEvent.objects.filter(action="create", object_type="releasefile").exists()


def test_it_renames_a_file(client, bob, draft):
    login(client, bob).post(edit_url(), {"original_name": "service.yaml", "name": "svc.yml",
                                         "content": NGINX_SERVICE})
    assert sorted(draft.files.values_list("name", flat=True)) == ["deployment.yaml", "svc.yml"]
    assert AuditEvent.objects.get(object_type="releasefile").detail["renamed_from"] == "service.yaml"


@pytest.mark.parametrize(
    ("name", "message"),
    [("service.yaml", "already has a file named service.yaml"), ("../etc.yaml", "relative name"),
     ("notes.txt", "ending in .yaml"), ("", "required")],
)
def test_it_rejects_bad_or_duplicate_file_names(client, bob, draft, name, message):
    response = login(client, bob).post(edit_url(), {"original_name": "", "name": name, "content": NGINX_SERVICE})
    assert response.status_code == 400 and message in response.content.decode()
    assert draft.files.count() == 2


def test_it_deletes_a_file(client, bob, draft):
    response = login(client, bob).post("/apps/mysampleecrapp/releases/2/files/delete/", {"name": "service.yaml"})
    assert response.status_code == 302
    assert list(draft.files.values_list("name", flat=True)) == ["deployment.yaml"]
    assert AuditEvent.objects.filter(action="delete", object_type="releasefile").exists()


def test_a_promoted_release_is_frozen(client, bob, sample_app):
    login(client, bob)
    response = client.get(edit_url(1))
    assert response.status_code == 302 and response["Location"] == "/apps/mysampleecrapp/releases/1/"
    client.post(edit_url(1), {"original_name": "deployment.yaml", "name": "deployment.yaml", "content": ECR_DEPLOYMENT})
    client.post("/apps/mysampleecrapp/releases/1/files/delete/", {"name": "service.yaml"})
    release = sample_app.releases.get(sequence=1)
    assert release.files.get(name="deployment.yaml").content == NGINX_DEPLOYMENT
    assert release.files.count() == 2


def test_an_older_draft_is_frozen_once_a_newer_release_exists(client, bob, draft):
    Release.create_next(app=draft.app, user=bob, files=[])
    assert login(client, bob).get(edit_url(2)).status_code == 302


def test_a_save_after_a_promotion_is_refused_and_says_so(client, bob, draft):
    login(client, bob).get(edit_url())
    draft.promote_to(draft.app.channels.get(slug="beta"), user=bob, version_label="0.0.2")
    response = client.post(edit_url(), {"original_name": "deployment.yaml", "name": "deployment.yaml",
                                        "content": ECR_DEPLOYMENT}, follow=True)
    assert "frozen" in response.content.decode() or "promoted" in response.content.decode()
    assert draft.files.get(name="deployment.yaml").content == NGINX_DEPLOYMENT


def test_the_release_page_shows_files_and_images(client, sam, sample_app):
    content = login(client, sam).get("/apps/mysampleecrapp/releases/1/").content.decode()
    assert "deployment.yaml" in content and "service.yaml" in content
    assert "<code>nginx</code>" in content and "Deployment/nginx" in content
    assert "Create new release" not in content


@pytest.mark.parametrize("text, message", [
    (deep_nesting(2000), "nested more than 100 levels deep"),
    (alias_bomb(), "expands to more than 1,000,000 nodes"),
], ids=["deep", "alias-bomb"])
def test_deep_nesting_and_bombs_are_one_problem_live_and_on_save(client, bob, draft, text, message):
    typed = {"original_name": "service.yaml", "name": "service.yaml", "content": text}
    live = login(client, bob).post("/apps/mysampleecrapp/releases/2/validate/", typed, HTTP_HX_REQUEST="true")
    assert live.status_code == 400
    assert message in live.content.decode() and "1 problem to fix" in live.content.decode()
    saved = client.post(edit_url(), typed)
    assert saved.status_code == 400
    assert message in saved.content.decode() and escape(text[:200]) in saved.content.decode()
    assert draft.files.get(name="service.yaml").content == NGINX_SERVICE


def test_the_editor_lists_fifty_problems_and_counts_them_all(client, bob, draft):
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: many}\ndata:\n" + "  k: v\n" * 121
    response = login(client, bob).post(edit_url(), {"original_name": "service.yaml", "name": "service.yaml",
                                                    "content": text})
    content = response.content.decode()
    assert "120 problems to fix" in content and "The YAML has 120 problems" in content
    assert content.count("Duplicate key") == 50 and "…and 70 more problems." in content
