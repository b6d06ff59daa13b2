"""The secrets a user types never come back: not in any page, log record or audit entry.

One flow through every registries page (add, validate, fail, edit, test, delete, as admin,
developer and support) with real servers; everything produced is collected and searched.
"""

import json
import logging

import pytest

from portal.models import AuditEvent
from portal.observability.logs import JsonFormatter
from registries.models import ExternalRegistry
from tests.conftest import login
from tests.registries.product_helpers import celery_conf
from tests.support.registry import ECR_HOST, push_test_image

# transaction=True: on_commit callbacks (the queued validations) run at each commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    def __init__(self, client):
        self.client, self.pages = client, []

    def get(self, url, **kw):
        return self._keep(self.client.get(url, **kw))

    def post(self, url, data, **kw):
        return self._keep(self.client.post(url, data, **kw))

    def _keep(self, response):
        self.pages.append(response.content.decode())
        if response.status_code == 302:
            self.get(response.url)
        return response


def test_secrets_never_appear_in_pages_logs_or_audit(client, alice, bob, sam, ecr_env, aws_users, settings,
                                                      distribution_registry, caplog):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    push_test_image(ecr_env, "demo-apps/nginx", "latest")
    basic = distribution_registry
    secrets = {
        aws_users.reader.secret_access_key, aws_users.wrong_secret.secret_access_key,
        aws_users.registry_password, basic.password, "wrong-basic-password-77",
    }
    caplog.set_level(logging.DEBUG)
    r = Recorder(client)
    with celery_conf(task_always_eager=True):
        login(client, alice)
        r.get("/registries/add/")
        r.post("/registries/add/", {"provider": "ecr", "endpoint": ECR_HOST,
                                    "username": aws_users.reader.access_key_id,
                                    "password": aws_users.reader.secret_access_key,
                                    "test_image": "demo-apps/nginx:latest"})
        ecr = ExternalRegistry.objects.get(endpoint=ECR_HOST)
        assert ecr.status == "connected", ecr.status_message
        # A rejected form (bad name) with a secret typed in.
        r.post("/registries/add/", {"provider": "other", "endpoint": basic.host, "name": "Bad Name",
                                    "username": basic.username, "password": basic.password, "insecure": "on"})
        r.post("/registries/add/", {"provider": "other", "endpoint": basic.host, "name": "local",
                                    "username": basic.username, "password": "wrong-basic-password-77",
                                    "insecure": "on"})
        local = ExternalRegistry.objects.get(name="local")
        assert local.status == "failed"
        r.post(f"/registries/{local.pk}/edit/", {"provider": "other", "endpoint": basic.host, "name": "local",
                                                 "username": basic.username, "password": basic.password,
                                                 "insecure": "on"})
        local.refresh_from_db()
        assert local.status == "connected", local.status_message
        # The wrong ECR secret fails with its reason.
        r.post(f"/registries/{ecr.pk}/edit/", {"provider": "ecr", "endpoint": ECR_HOST,
                                               "username": aws_users.wrong_secret.access_key_id,
                                               "password": aws_users.wrong_secret.secret_access_key})
        ecr.refresh_from_db()
        assert "Secret Access Key is wrong" in ecr.status_message
        for pk in (ecr.pk, local.pk):
            for suffix in ("", "edit/", "test/", "delete/"):
                r.get(f"/registries/{pk}/{suffix}")
            r.get(f"/registries/{pk}/", HTTP_HX_REQUEST="true")
            r.post(f"/registries/{pk}/test/", {"image": "demo-apps/nginx:latest"})
        r.get("/registries/")
        r.get("/registries/", HTTP_HX_REQUEST="true")
        for user in (bob, sam):
            login(client, user)
            r.get("/registries/")
            for pk in (ecr.pk, local.pk):
                r.get(f"/registries/{pk}/")
        login(client, alice)
        r.post(f"/registries/{local.pk}/delete/", {})

    logs = [record.getMessage() for record in caplog.records]
    logs += [repr(record.args) for record in caplog.records if record.args]
    logs += [str(record.exc_info) for record in caplog.records if record.exc_info]
    # The request lines too, as PORTAL_LOG_FORMAT=json writes them (their fields included).
    # The sweep must see the tasks' lines too: capture that stops at the first queued task
    # (Celery's Django fixup re-applying LOGGING) would make it pass blind.
    assert {"portal.requests", "portal.tasks", "registries.services"} <= {
        record.name for record in caplog.records}
    logs += [JsonFormatter().format(record) for record in caplog.records]
    audit = [json.dumps(e.detail) + e.object_repr for e in AuditEvent.objects.all()]
    messages = [f"{x.status_message} {x.warning}" for x in ExternalRegistry.objects.all()]
    assert len(r.pages) > 30 and len(audit) >= 6 and logs
    everything = {"page": r.pages, "log": logs, "audit": audit, "status message": messages}
    for where, texts in everything.items():
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"a secret appeared in a {where}"
