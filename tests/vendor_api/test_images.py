"""A release's image checks through the vendor API, against a loopback docker-registry linked to the team.

The check runs the worker's task code in-process (Celery eager mode) when it is queued.
"""

import pytest

from portal.models import Role
from registries.models import ExternalRegistry, Provider
from releases.image_check.models import ImageVerdict
from releases.models import App, Release
from tests.conftest import NGINX_SERVICE
from tests.registries.product_helpers import celery_conf
from tests.support.registry import push_test_image
from tests.vendor_api.conftest import make_token
from vendor_api import registries as api_registries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _private_registries(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True


def deployment(image: str) -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n"
            f"      containers:\n        - name: app\n          image: {image}\n")


@pytest.fixture
def release(team, alice, distribution_registry):
    """A release of a new app using one private image of the linked registry and one it cannot pull."""
    push_test_image(distribution_registry, "demo-apps/app", "1.0")
    row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=distribution_registry.host,
                           name="loopback", username=distribution_registry.username, insecure=True)
    row.secret = distribution_registry.password
    row.save()
    app = App.create_with_channels(team=team, name="Checked", slug="checked")
    host = distribution_registry.host
    return Release.create_next(app=app, user=alice, files=[
        ("deployment.yaml", deployment(f"{host}/demo-apps/app:1.0")),
        ("other.yaml", deployment(f"{host}/demo-apps/missing:1.0").replace("name: app\n", "name: other\n", 1)),
        ("service.yaml", NGINX_SERVICE)])


def test_a_recheck_waits_for_the_verdicts(api, alice, release, distribution_registry):
    token = make_token(alice, role=Role.ADMIN)
    path = f"/app/checked/release/{release.sequence}/image-checks"
    with celery_conf(task_always_eager=True):
        response = api.post(path, token)
    assert response.status_code == 200, response.content
    body = response.json()
    verdicts = {i["image"]: i for i in body["images"]}
    host = distribution_registry.host
    assert verdicts[f"{host}/demo-apps/app:1.0"]["verdict"] == "private"
    assert verdicts[f"{host}/demo-apps/app:1.0"]["digest"].startswith("sha256:")
    assert verdicts[f"{host}/demo-apps/missing:1.0"]["verdict"] == "unlinked"
    assert verdicts[f"{host}/demo-apps/missing:1.0"]["fails"] is True
    assert body["pending"] is False and body["failing"] == 1
    again = api.get(path, token).json()
    assert again["images"] == body["images"]


def test_a_slow_check_answers_202_with_the_url_to_poll(api, alice, release, monkeypatch):
    monkeypatch.setattr(api_registries, "WAIT_SECONDS", 0.3)
    token = make_token(alice, role=Role.ADMIN)
    # No worker takes the task (an in-memory broker nobody reads): the verdicts stay Checking.
    with celery_conf(task_always_eager=False, broker_url="memory://"):
        response = api.post(f"/app/checked/release/{release.sequence}/image-checks", token)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["pending"] is True and body["pollUrl"] == f"/vendor/v3/app/checked/release/{release.sequence}/image-checks"
    assert {i["verdict"] for i in body["images"]} == {"checking"}


def test_support_reads_checks_but_cannot_start_one(api, sam, mallory, release):
    ImageVerdict.objects.all().delete()
    support = make_token(sam, role=Role.SUPPORT)
    path = f"/app/checked/release/{release.sequence}/image-checks"
    assert api.post(path, support).status_code == 403
    with celery_conf(task_always_eager=False, broker_url="memory://"):
        assert api.get(path, support).status_code == 200
    assert api.get(path, make_token(mallory, role=Role.ADMIN)).status_code == 404
    assert api.get("/app/checked/release/99/image-checks", support).status_code == 404
