"""ExternalRegistry's single-row transitions."""

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from registries.models import QUEUED_MESSAGE, ExternalRegistry, Status
from tests.registries.product_helpers import make_registry

pytestmark = pytest.mark.django_db


def test_the_secret_is_stored_encrypted(team):
    registry = make_registry(team, secret="plain-secret")
    raw = ExternalRegistry.objects.values_list("secret_encrypted", flat=True).get()
    assert raw.startswith("fernet1:") and "plain-secret" not in raw
    assert ExternalRegistry.objects.get(pk=registry.pk).secret == "plain-secret"


def test_one_endpoint_per_team(team):
    make_registry(team, endpoint="a.example.com")
    with pytest.raises(IntegrityError):
        make_registry(team, endpoint="a.example.com")


def test_broker_refusal_turns_a_validating_row_pending(team):
    registry = make_registry(team)
    registry.mark_validating()
    assert registry.mark_pending()
    registry.refresh_from_db()
    assert (registry.status, registry.status_message) == (Status.PENDING, QUEUED_MESSAGE)


def test_the_sweep_claims_pending_and_lost_rows_once(team):
    pending = make_registry(team, endpoint="a.example.com", status=Status.PENDING)
    lost = make_registry(team, endpoint="b.example.com", status=Status.VALIDATING,
                         queued_at=timezone.now() - timedelta(hours=1))
    fresh = make_registry(team, endpoint="c.example.com")
    fresh.mark_validating()
    assert set(ExternalRegistry.needing_queue().values_list("pk", flat=True)) == {pending.pk, lost.pk}
    assert ExternalRegistry.claim_for_queue(pending.pk)
    assert not ExternalRegistry.claim_for_queue(pending.pk)
    assert not ExternalRegistry.claim_for_queue(fresh.pk)


def test_a_periodic_check_never_overrides_a_users_validation(team):
    registry = make_registry(team, status=Status.CONNECTED)
    revision = registry.revision
    ExternalRegistry.objects.filter(pk=registry.pk).update(status=Status.VALIDATING)
    assert not registry.mark_result(ok=False, message="down", revision=revision, periodic=True)


def test_only_a_connected_registry_turns_unhealthy(team):
    registry = make_registry(team, status=Status.FAILED)
    registry.mark_result(ok=False, message="bad", revision=registry.revision, periodic=True)
    assert registry.status == Status.FAILED
    registry = make_registry(team, endpoint="b.example.com", status=Status.CONNECTED)
    registry.mark_result(ok=False, message="bad", revision=registry.revision, periodic=True)
    assert registry.status == Status.UNHEALTHY
