"""The proxy registry's per-request shortcuts: the decision cache and the pull-log writer.

The end-to-end behaviour (skopeo through uvicorn, every row logged) is in test_proxy.py; these
check the rules the shortcuts must not bend: a regenerated, archived or expired license, an app
archived, a registry unlinked stop being served at once (in this process) or within the TTL, and
every queued pull-log row is written.
"""

from __future__ import annotations

import base64
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from registries.models import ExternalRegistry
from releases.proxy import decisions, pull_log
from releases.proxy.access import Access, Refusal
from releases.proxy.models import PullEvent

NAME = "registry.example.com/team/app"


def header_for(license_id: str) -> str:
    return "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()


@pytest.fixture
def registry(team, sample_app):
    registry = ExternalRegistry(team=team, endpoint="registry.example.com", provider="other",
                                username="u")
    registry.secret = "pw"
    registry.save()
    registry.apps.add(sample_app)
    return registry


@pytest.fixture
def remembered(customer, registry):
    """An allowed decision as ``authorize`` stores it; returns the header."""
    header = header_for(customer.license_id)
    access = Access(customer=customer, app=customer.app, client=None,
                    repository="team/app", image=NAME, name=NAME, registry_id=registry.pk)
    decisions._remember(header=header, app_slug=customer.app.slug, name=NAME, access=access,
                        version=decisions._decisions_version)
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is access
    return header


def cached(header, customer):
    return decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME)


def test_the_cache_serves_only_the_same_credentials_app_and_name(customer, remembered):
    assert decisions.cached_access(header=header_for("x" * 40), app_slug=customer.app.slug,
                                   name=NAME) is None
    assert decisions.cached_access(header=remembered, app_slug="otherapp", name=NAME) is None
    assert decisions.cached_access(header=remembered, app_slug=customer.app.slug,
                                   name="registry.example.com/team/secret") is None


def test_a_regenerated_license_is_not_served_from_the_cache(customer, remembered):
    customer.regenerate_license_id()
    assert cached(remembered, customer) is None


def test_an_archived_license_is_not_served_from_the_cache(customer, remembered):
    customer.archived_at = timezone.now()
    customer.save()
    assert cached(remembered, customer) is None


def test_an_archived_app_is_not_served_from_the_cache(customer, remembered):
    app = customer.app
    app.archived_at = timezone.now()
    app.save()
    assert cached(remembered, customer) is None


def test_an_unlinked_registry_is_not_served_from_the_cache(customer, registry, remembered):
    registry.apps.remove(customer.app)
    assert cached(remembered, customer) is None


def test_a_license_that_expires_meanwhile_is_not_served(customer, remembered):
    customer.expires_at = timezone.now() - timedelta(seconds=1)  # in memory: no save, no signal
    assert cached(remembered, customer) is None


def test_a_decision_lives_at_most_the_ttl(customer, remembered, monkeypatch):
    later = decisions.time.monotonic() + decisions.ACCESS_CACHE_SECONDS + 0.01
    monkeypatch.setattr(decisions.time, "monotonic", lambda: later)
    assert cached(remembered, customer) is None


def test_a_decision_computed_before_a_change_is_never_served(customer, registry):
    header = header_for(customer.license_id)
    version = decisions._decisions_version  # authorize() reads the version before the database
    customer.archived_at = timezone.now()
    customer.save()  # the change lands while that request is still deciding
    access = Access(customer=customer, app=customer.app, client=None,
                    repository="team/app", image=NAME, name=NAME, registry_id=registry.pk)
    decisions._remember(header=header, app_slug=customer.app.slug, name=NAME, access=access,
                        version=version)
    assert cached(header, customer) is None


def test_refusals_are_not_cached(customer, registry):
    header = header_for("0" * 40)
    refusal = decisions.authorize(header=header, address="10.0.0.1", app_slug=customer.app.slug,
                                  name=NAME)
    assert isinstance(refusal, Refusal) and refusal.status == 401
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is None


@pytest.mark.django_db(transaction=True)
def test_every_row_queued_from_many_threads_is_written(customer, registry):
    access = Access(customer=customer, app=customer.app, client=None,
                    repository="team/app", image=NAME, name=NAME, registry_id=registry.pk)
    writer = pull_log.PullLogWriter()

    def pull(i):
        for n in range(50):
            writer.put(pull_log.pull_event(access=access, reference=f"sha256:{i:02d}{n:062d}",
                                           kind="blob", method="GET", status=200, size=n))

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(timeout=30)
    writer.close()
    assert PullEvent.objects.filter(customer=customer).count() == 8 * 50
    assert PullEvent.objects.filter(customer=customer).values("reference").distinct().count() == 400


@pytest.mark.django_db(transaction=True)
def test_a_row_whose_customer_is_gone_does_not_lose_the_others(customer, sample_app, registry):
    from releases.models import Customer

    other = Customer.objects.create(app=sample_app, channel=customer.channel, name="Gone Ltd")
    writer = pull_log.PullLogWriter()
    rows = []
    for who in (customer, other, customer):
        access = Access(customer=who, app=sample_app, client=None, repository="team/app",
                        image=NAME, name=NAME, registry_id=registry.pk)
        rows.append(pull_log.pull_event(access=access, reference="1.0", kind="manifest",
                                        method="GET", status=200, size=1))
    other.delete()
    for row in rows:
        writer.put(row)
    assert writer.flush(timeout=30)
    writer.close()
    assert PullEvent.objects.filter(customer=customer).count() == 2
