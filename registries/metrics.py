"""Registries by status, read from the database when /metrics is scraped (a level, not a
count: every process answers the same, and nothing is left behind by a dead one)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .models import ExternalRegistry, Status


def registries_by_status() -> Iterator[GaugeMetricFamily]:
    counts = dict(ExternalRegistry.objects.values_list("status").annotate(n=Count("id")))
    family = GaugeMetricFamily("portal_registries", "Linked registries by status.",
                               labels=["status"])
    for status in Status.values:  # every status, 0 included, so an alert can watch "failed"
        family.add_metric([status], counts.get(status, 0))
    yield family
