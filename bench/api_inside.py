"""The parts of bench/api.py that run inside the portal's own environment (``manage.py shell``
through ``PortalStack.call``): bulk data, and the SQL queries of each list route.

Query counts are read here, in a process of the stack on the stack's database, because the
server does not report them: Django's test client with the same token, the same middleware and
the same URLs as the server.
"""

from datetime import UTC, datetime

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.models import ApiToken
from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE
from releases.models import App, Customer, Promotion, Release, ReleaseFile


def list_paths(app: str) -> dict[str, str]:
    return {
        "releases, first page": f"/vendor/v3/app/{app}/releases",
        "releases, page 5": f"/vendor/v3/app/{app}/releases?currentPage=5",
        "customers, first page": f"/vendor/v3/app/{app}/customers",
        "customers, page 4": f"/vendor/v3/app/{app}/customers?currentPage=4",
        "channels": f"/vendor/v3/app/{app}/channels",
        "apps": "/vendor/v3/apps",
    }


def query_counts(*, token: str, app: str) -> dict[str, int]:
    """SQL queries of each list route's second call (the first warms caches and the token's
    last-used stamp)."""
    client = Client(HTTP_AUTHORIZATION=token, HTTP_HOST="127.0.0.1")
    counts = {}
    for name, path in list_paths(app).items():
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}: {response.content[:500]!r}")
        counts[name] = len(queries)
    return counts


def seed_lists(*, app: str, releases: int, customers: int) -> dict[str, int]:
    """Add releases (each promoted, two files) and customers to ``app`` up to the given totals."""
    found = App.objects.get(pk=int(app))
    user = ApiToken.objects.order_by("pk").first().created_by
    channels = list(found.channels.order_by("pk"))
    start = found.releases.count()
    first = (found.releases.order_by("-sequence").values_list("sequence", flat=True).first() or 0) + 1
    count = max(0, releases - start)
    Release.objects.bulk_create(
        Release(app=found, sequence=s, created_by=user, promoted_at=datetime.now(UTC))
        for s in range(first, first + count))
    added = list(found.releases.filter(sequence__gte=first).order_by("sequence"))
    ReleaseFile.objects.bulk_create(
        ReleaseFile(release=r, name=name, content=content, position=i)
        for r in added
        for i, (name, content) in enumerate([("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)]))
    promotions, next_sequence = [], {c.pk: c.next_channel_sequence for c in channels}
    for r in added:
        channel = channels[r.sequence % len(channels)]
        promotions.append(Promotion(channel=channel, release=r, channel_sequence=next_sequence[channel.pk],
                                    version_label=f"1.{r.sequence}.0", promoted_by=user))
        next_sequence[channel.pk] += 1
    Promotion.objects.bulk_create(promotions)
    for c in channels:
        type(c).objects.filter(pk=c.pk).update(next_channel_sequence=next_sequence[c.pk])
    App.objects.filter(pk=found.pk).update(next_release_sequence=first + count)
    have = Customer.objects.filter(app=found).count()
    Customer.objects.bulk_create(
        Customer(app=found, channel=channels[i % len(channels)], name=f"Customer {i:04d}",
                 email=f"ops{i}@customer{i}.example")
        for i in range(max(0, customers - have)))
    return {"releases": found.releases.count(), "customers": Customer.objects.filter(app=found).count()}
