# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py and image_check/test_check.py)
"""Promoting a release whose images customers will fail to pull takes an explicit confirmation.

The walkthrough's step 3 and 4: alice points deployment.yaml at the private ECR image and
promotes. Without the ECR registry linked the image check says "private and not linked", and
the promote page lists the image and wants "Promote anyway"; with it linked, it promotes as usual.
"""

from __future__ import annotations

import pytest

from portal.models import AuditEvent
from releases.image_check import services
from releases.models import Promotion, Release
from tests.conftest import NGINX_DEPLOYMENT, login
from tests.releases.image_check.test_check import (  # noqa: F401 (fixtures)
    hosts,
    linked,
    private_image,
    public_registry,
)

PROMOTE = "/apps/mysampleecrapp/releases/2/promote/"
ANYWAY = "Promote anyway: customers will fail to pull these images"


@pytest.fixture
def ecr_release(sample_app, alice, private_image, hosts):
    """Release 2: release 1's files with deployment.yaml pulling the private ECR image."""
    files = [(f.name, f.content) for f in sample_app.releases.get(sequence=1).files.all()]
    files = [(name, content.replace("image: nginx\n", f"image: {private_image}\n"))
             for name, content in files]
    assert any(private_image in content for _, content in files), NGINX_DEPLOYMENT
    release = Release.create_next(app=sample_app, user=alice, files=files)
    services.release_check_images(release_id=release.pk)
    return release


def form_data(app, **extra):
    return {"channels": app.channels.get(slug="unstable").pk, "version_label": "0.0.2",
            "release_notes": "Pull nginx from our ECR repository", **extra}


def test_without_the_registry_linked_the_page_lists_the_image_and_asks_to_confirm(
        client, alice, ecr_release, private_image):
    page = login(client, alice).get(PROMOTE)
    assert page.status_code == 200
    assert "Customers will fail to pull 1 image of this release" in page.text
    assert f"<code>{private_image}</code>" in page.text
    assert ANYWAY in page.text and 'name="promote_anyway"' in page.text


def test_without_the_checkbox_it_refuses_and_keeps_what_was_typed(client, alice, ecr_release):
    response = login(client, alice).post(PROMOTE, form_data(ecr_release.app))
    assert response.status_code == 400
    assert 'Tick "Promote anyway"' in response.text.replace("&quot;", '"')
    assert 'value="0.0.2"' in response.text and "Pull nginx from our ECR repository" in response.text
    assert not Promotion.objects.filter(release=ecr_release).exists()


def test_with_the_checkbox_it_promotes_and_audits_the_failing_images(client, alice, ecr_release,
                                                                     private_image):
    response = login(client, alice).post(PROMOTE, form_data(ecr_release.app, promote_anyway="on"))
    assert response.status_code == 302
    promotion = Promotion.objects.get(release=ecr_release, channel__slug="unstable")
    assert promotion.version_label == "0.0.2"
    event = AuditEvent.objects.get(action="promote")
    assert event.detail["failing_images"] == [private_image]


def test_with_the_ecr_registry_linked_no_confirmation_is_needed(client, alice, linked, ecr_release):
    page = login(client, alice).get(PROMOTE)
    assert ANYWAY not in page.text and "will fail to pull" not in page.text
    response = client.post(PROMOTE, form_data(ecr_release.app))
    assert response.status_code == 302
    assert Promotion.objects.filter(release=ecr_release, channel__slug="unstable").exists()
    assert "failing_images" not in AuditEvent.objects.get(action="promote").detail


def test_a_developer_must_confirm_too_and_support_cannot_promote(client, bob, sam, ecr_release):
    assert login(client, bob).post(PROMOTE, form_data(ecr_release.app)).status_code == 400
    assert not Promotion.objects.filter(release=ecr_release).exists()
    assert login(client, sam).post(PROMOTE, form_data(ecr_release.app,
                                                      promote_anyway="on")).status_code == 403
    assert not Promotion.objects.filter(release=ecr_release).exists()
