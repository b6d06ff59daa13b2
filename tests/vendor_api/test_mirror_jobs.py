"""Mirror jobs through the vendor API, copying between loopback docker-registries; skopeo reads the result.

The copy runs the worker's task code in-process (Celery eager mode) when the job commits.
"""

import hashlib
import json
import logging
import subprocess

import pytest

from portal.models import AuditEvent, Role
from registries.mirror.models import MirrorJob
from registries.models import ExternalRegistry, Provider
from tests.registries.product_helpers import celery_conf
from tests.support.images import build_single, push
from tests.support.servers import require_binary
from tests.vendor_api.conftest import make_token

KB = 1 << 10
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _private_registries(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True


def link(team, registry):
    row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=registry.host, name=f"r{registry.port}",
                           username=registry.username, insecure=True)
    row.secret = registry.password
    row.save()
    return row


def test_a_mirror_job_copies_and_reports_its_progress(api, alice, team, source_registry, target_registry, caplog):
    caplog.set_level(logging.DEBUG)
    image = build_single([200 * KB, 100 * KB])
    push(image, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    link(team, source_registry)
    target = link(team, target_registry)
    token = make_token(alice, role=Role.ADMIN)
    with celery_conf(task_always_eager=True):
        response = api.post("/mirror_job", token, {"source": f"{source_registry.host}/library/app:1.0",
                                                   "registry": target.endpoint, "prefix": "demo-apps",
                                                   "pushUsername": target_registry.username,
                                                   "pushPassword": target_registry.password})
    assert response.status_code == 201, response.content
    job = response.json()["mirror_job"]
    assert job["target"] == f"{target_registry.host}/demo-apps/app:1.0"
    polled = api.get(job["pollUrl"].removeprefix("/vendor/v3"), token).json()["mirror_job"]
    assert polled["state"] == "succeeded", polled
    assert polled["percent"] == 100 and polled["bytesTotal"] > 300 * KB and polled["bytesDone"] == polled["bytesTotal"]
    assert polled["digest"] == image.digest
    skopeo = require_binary("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", "--creds",
                          f"{target_registry.username}:{target_registry.password}",
                          f"docker://{target_registry.host}/demo-apps/app:1.0"], capture_output=True, check=True)
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == image.digest
    listed = api.get("/mirror_jobs?status=succeeded", token).json()
    assert listed["totalCount"] == 1 and listed["mirror_jobs"][0]["id"] == job["id"]
    everything = response.content.decode() + json.dumps(listed) + caplog.text + json.dumps(
        [e.detail for e in AuditEvent.objects.all()])
    assert target_registry.password not in everything and source_registry.password not in everything


def test_it_refuses_with_the_forms_texts(api, alice, team, target_registry):
    target = link(team, target_registry)
    token = make_token(alice, role=Role.ADMIN)
    response = api.post("/mirror_job", token, {"source": "nginx", "registry": target.endpoint,
                                               "targetRepository": "Not/Valid", "pushUsername": "only-user"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["targetRepository"][0].startswith("A repository is lowercase letters")
    assert api.post("/mirror_job", token, {"source": "nginx", "registry": "nowhere.example.com"}).status_code == 404
    assert not MirrorJob.objects.exists()


def test_support_reads_jobs_but_cannot_start_one(api, alice, sam, mallory, team, target_registry):
    target = link(team, target_registry)
    job = MirrorJob.objects.create(team=team, registry=target, source_reference="docker.io/library/nginx:latest",
                                   target_repository="demo-apps/nginx", target_tag="latest")
    support = make_token(sam, role=Role.SUPPORT)
    assert api.post("/mirror_job", support, {"source": "nginx", "registry": target.endpoint}).status_code == 403
    assert api.get(f"/mirror_job/{job.pk}", support).json()["mirror_job"]["state"] == "queued"
    assert api.get(f"/mirror_job/{job.pk}", make_token(mallory, role=Role.ADMIN)).status_code == 404
