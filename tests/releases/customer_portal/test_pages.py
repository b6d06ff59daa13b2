"""The customer page /customer/: sign in with the license, history, updates, files, images."""

import io
import tarfile
from datetime import timedelta

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.html import escape

from releases.customer_portal.access import SESSION_KEY
from releases.image_check.models import ImageVerdict, Verdict
from releases.licenses import license_yaml
from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT
from tests.yaml_bombs import alias_bomb, deep_nesting, merge_bomb

HOME = "/customer/"


@pytest.fixture(autouse=True)
def _proxy_host(settings):
    settings.PORTAL_PROXY_HOST = "portal.example.com"


@pytest.fixture
def signed_in(client, customer):
    session = client.session
    session[SESSION_KEY] = customer.license_id
    session.save()
    return client


def promote(customer, alice, label, *, files=None, notes=""):
    release = Release.create_next(app=customer.app, user=alice,
                                  files=files or [("deployment.yaml", NGINX_DEPLOYMENT)])
    return release.promote_to(customer.channel, user=alice, version_label=label, release_notes=notes)


def test_it_asks_for_the_license(client, db):
    response = client.get(HOME)
    assert response.status_code == 200
    assert b"License ID" in response.content and b"license file" in response.content


def test_a_customer_signs_in_with_the_license_id(client, customer):
    response = client.post(HOME, {"license_id": f"  {customer.license_id} "})
    assert response.status_code == 302 and response["Location"] == HOME
    page = client.get(HOME).content.decode()
    assert "Version History" in page and "0.0.1" in page and "Big Bank" in page


def test_a_customer_signs_in_with_the_license_file(client, customer):
    upload = SimpleUploadedFile("license.yaml", license_yaml(customer).encode(), "application/yaml")
    response = client.post(HOME, {"license_file": upload})
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == customer.license_id


def test_a_tampered_license_file_is_refused(client, customer):
    document = yaml.safe_load(license_yaml(customer))
    document["spec"]["channelName"] = "Stable"
    upload = SimpleUploadedFile("license.yaml", yaml.safe_dump(document).encode())
    response = client.post(HOME, {"license_file": upload})
    assert response.status_code == 400
    assert "signature does not match" in response.content.decode()
    assert SESSION_KEY not in client.session


@pytest.mark.parametrize("data, message", [
    ({}, "Enter your license ID or upload your license file."),
    ({"license_id": "nope"}, "Unknown license: check the license ID."),
])
def test_bad_input_says_what_to_fix_and_keeps_what_was_typed(client, customer, data, message):
    response = client.post(HOME, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    if data:
        assert 'value="nope"' in response.content.decode()


def test_failed_sign_ins_are_throttled_per_address_while_a_valid_license_still_works(client, customer, settings):
    settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT = 3
    for _ in range(3):
        assert client.post(HOME, {"license_id": "nope"}).status_code == 400
    refused = client.post(HOME, {"license_id": "nope"})
    assert refused.status_code == 429
    page = refused.content.decode()
    assert "Too many failed attempts with a license ID from this address: try again in 5 minutes." in page
    assert 'value="nope"' in page  # what was typed is kept
    assert 0 < int(refused["Retry-After"]) <= 300
    response = client.post(HOME, {"license_id": customer.license_id})
    assert response.status_code == 302 and client.session[SESSION_KEY] == customer.license_id


def test_archived_and_expired_licenses_cannot_sign_in(client, customer):
    customer.expires_at = timezone.now() - timedelta(days=1)
    customer.save()
    response = client.post(HOME, {"license_id": customer.license_id})
    assert "expired" in response.content.decode()
    customer.expires_at, customer.archived_at = None, timezone.now()
    customer.save()
    response = client.post(HOME, {"license_id": customer.license_id})
    assert "archived" in response.content.decode()


def test_a_license_that_stops_working_signs_the_customer_out(signed_in, customer):
    customer.regenerate_license_id()
    response = signed_in.get(HOME)
    assert b"Unknown license" in response.content and b"Sign in" in response.content
    assert SESSION_KEY not in signed_in.session


def test_sign_out(signed_in):
    signed_in.post("/customer/sign-out/")
    assert SESSION_KEY not in signed_in.session


def test_the_history_shows_the_channel_newest_first_without_demoted(signed_in, customer, alice):
    promote(customer, alice, "0.0.2", notes="Adds TLS.")
    promote(customer, alice, "0.0.3-bad").demote(user=alice)
    page = signed_in.get(HOME).content.decode()
    assert page.index("0.0.2") < page.index("0.0.1")
    assert "Adds TLS." in page and "0.0.3-bad" not in page
    assert "channelSequence=2" in page  # Check for Updates asks for what is newer than the page


def test_check_for_updates_shows_the_new_releases(signed_in, customer, alice):
    response = signed_in.get("/customer/updates/", {"channelSequence": "1"}, HTTP_HX_REQUEST="true")
    assert "You are up to date" in response.content.decode()
    assert b"<html" not in response.content
    promote(customer, alice, "0.0.2", notes="Adds TLS.")
    response = signed_in.get("/customer/updates/", {"channelSequence": "1"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "1 new release" in page and "0.0.2" in page and "/customer/releases/2/" in page
    # Without htmx: a whole page.
    assert b"<html" in signed_in.get("/customer/updates/", {"channelSequence": "1"}).content


def test_view_files_shows_upstream_and_downstream(signed_in, customer):
    customer.app.proxy_public_images = True
    customer.app.save()
    page = signed_in.get("/customer/releases/1/").content.decode()
    for path in ("upstream/deployment.yaml", "base/deployment.yaml", "base/kustomization.yaml",
                 "overlays/midstream/kustomization.yaml", "overlays/midstream/secret.yaml",
                 "overlays/midstream/pullsecrets.yaml"):
        assert path in page
    assert "newName: portal.example.com/proxy/mysampleecrapp/nginx" in page
    assert f"podman login portal.example.com -u {customer.license_id} -p {customer.license_id}" in page
    assert "podman pull portal.example.com/proxy/mysampleecrapp/nginx:latest" in page


def test_public_images_are_shown_as_pulled_directly(signed_in, customer):
    ImageVerdict.objects.create(app=customer.app, reference="docker.io/library/nginx:latest",
                                verdict=Verdict.PUBLIC)
    page = signed_in.get("/customer/releases/1/").content.decode()
    assert "public: pulled directly" in page
    assert "podman login" not in page


def test_the_download_holds_the_whole_tree(signed_in):
    response = signed_in.get("/customer/releases/1/download/")
    assert response["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "mysampleecrapp-1/overlays/midstream/kustomization.yaml" in names
    assert "mysampleecrapp-1/upstream/deployment.yaml" in names


def test_other_channels_and_demoted_releases_are_not_found(signed_in, customer, alice):
    release = Release.create_next(app=customer.app, user=alice, files=[("a.yaml", "kind: ConfigMap\n")])
    release.promote_to(customer.app.channels.get(name="Stable"), user=alice, version_label="1.0.0")
    assert signed_in.get("/customer/releases/2/").status_code == 404
    promote(customer, alice, "0.0.2").demote(user=alice)
    assert signed_in.get("/customer/releases/2/").status_code == 404
    assert signed_in.get("/customer/releases/2/download/").status_code == 404


def test_pages_need_a_signed_in_license(client, customer):
    for url in ("/customer/updates/", "/customer/releases/1/", "/customer/releases/1/download/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == HOME


@pytest.mark.parametrize("content, message", [
    (merge_bomb().encode(), "expands to more than 10,000 nodes (aliases and merge keys counted as copies)"),
    (alias_bomb().encode(), "expands to more than 10,000 nodes (aliases and merge keys counted as copies)"),
    (deep_nesting(2000).encode(), "nested more than 100 levels deep"),
    ("date", "spec.extra: a date is not allowed"),
    ("set", "spec.extra: a set (!!set) is not allowed"),
    ("binary", "spec.extra: binary data (!!binary) is not allowed"),
    ("int-key", "spec.extra: the key 1 is not text"),
    ("huge-int", "spec.extra: an integer beyond 64 bits is not allowed"),
    (b"\xff\xfe not text", "This is not a license file: it is not UTF-8 text."),
], ids=["merge-bomb", "alias-bomb", "deep", "date", "set", "binary", "int-key", "huge-int", "not-utf8"])
def test_a_hostile_license_file_is_refused_with_a_message(client, customer, content, message):
    odd_values = {"date": "2030-01-31", "set": "!!set {a}", "binary": "!!binary aGVsbG8=",
                  "int-key": "{1: one}", "huge-int": "99999999999999999999"}
    if isinstance(content, str):
        content = (license_yaml(customer) + f"  extra: {odd_values[content]}\n").encode()
    upload = SimpleUploadedFile("license.yaml", content, "application/yaml")
    response = client.post(HOME, {"license_id": "typed-id", "license_file": upload})
    assert response.status_code == 400  # the form again, as for every refused sign-in
    page = response.content.decode()
    assert escape(message) in page and 'value="typed-id"' in page
    assert SESSION_KEY not in client.session
