"""Benchmark the pages that grow with the data: release history and customers.

With 20 apps, 2,000 customers and 5,000 releases, then 50,000, measure the server time of each
page against the floor of a team page (a logged-in page that renders ``base.html`` and runs no
query of its own: bench/pages_urls.py, a URL of this bench only), requests alternated round by
round, and write the medians and multiples of the floor (target: at most 2x; ``/healthz``, a short
text through the same middleware, is kept for reference) to docs/benchmarks.md.

Run: `make bench` (or `.venv/bin/python bench/pages.py [--rounds N]`). It uses a throw-away
SQLite database in a temporary directory unless DATABASE_URL is set (then it must be a scratch
database: the data is added to it).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.results import RESULTS, markers, write_block  # noqa: E402

if not os.environ.get("DATABASE_URL"):
    os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="portal-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Measure as in production: no query log, no template debug info (dev secrets still from var/).
settings.DEBUG = False
# The product's URLs plus the floor page.
settings.ROOT_URLCONF = "bench.pages_urls"
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

from portal.models import Membership, Role, Team  # noqa: E402
from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE  # noqa: E402
from releases.models import App, Channel, Customer, Promotion, Release, ReleaseFile  # noqa: E402

APPS = 20
SIZES = (5_000, 50_000)  # releases
CUSTOMERS = 2_000
TARGET_RATIO = 2.0  # × the floor
BEGIN, END = markers("pages.py")


def build_data(name="Bench", apps=APPS, releases=SIZES[0], customers=CUSTOMERS):
    """``apps`` apps sharing ``releases`` releases (every one promoted), ``customers`` customers."""
    team = Team.objects.create(name=name)
    user = get_user_model().objects.create_user(name.lower(), f"{name.lower()}@example.com", "bench password 1")
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    per_app = releases // apps
    for a in range(apps):
        app = App.create_with_channels(team=team, name=f"{name} App {a:02d}", slug=f"{name.lower()}-app-{a:02d}")
        channels = list(app.channels.all())
        releases = Release.objects.bulk_create(
            Release(app=app, sequence=s, created_by=user, promoted_at=datetime.now(UTC))
            for s in range(1, per_app + 1)
        )
        if connection.vendor == "sqlite" or releases[0].pk is None:
            releases = list(app.releases.order_by("sequence"))
        ReleaseFile.objects.bulk_create(
            ReleaseFile(release=r, name=name, content=content.replace("image: nginx", f"image: nginx:1.{r.sequence}"), position=i)
            for r in releases
            for i, (name, content) in enumerate([("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)])
        )
        next_sequence = {c.pk: 1 for c in channels}
        promotions = []
        for r in releases:
            channel = channels[r.sequence % len(channels)]
            promotions.append(Promotion(
                channel=channel, release=r, channel_sequence=next_sequence[channel.pk],
                version_label=f"1.{r.sequence}.0", release_notes=f"Release {r.sequence}", promoted_by=user,
            ))
            next_sequence[channel.pk] += 1
        Promotion.objects.bulk_create(promotions)
        for channel in channels:
            Channel.objects.filter(pk=channel.pk).update(next_channel_sequence=next_sequence[channel.pk])
        App.objects.filter(pk=app.pk).update(next_release_sequence=per_app + 1)
    team_apps = list(App.objects.filter(team=team).prefetch_related("channels"))
    Customer.objects.bulk_create(
        Customer(app=team_apps[i % apps], channel=list(team_apps[i % apps].channels.all())[i % 3],
                 name=f"Customer {i:04d}", email=f"ops{i}@customer{i}.example")
        for i in range(customers)
    )
    return user, team_apps[0]


def history_url(app) -> str | None:
    for kwargs in ({"slug": app.slug}, {"app_slug": app.slug}, {"app": app.slug}):
        try:
            return reverse("releases-history", kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def query_count(client, url):
    """GET url once (a warm-up: templates, URL resolver, connection) and count its SQL queries."""
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)):
        response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return len(queries)


def measure(client, pages, rounds):
    """Per page: median server time (seconds), median per-round multiple of the floor and of /healthz, queries.

    The pages are requested in turn, round after round, so a load that comes and goes on a shared
    machine weighs on all of them alike; each page is compared with the floor of its own round.
    """
    queries = {name: query_count(client, url) for name, url in pages}
    times = {name: [] for name, _ in pages}
    for _ in range(rounds):
        for name, url in pages:
            start = time.perf_counter()
            response = client.get(url)
            times[name].append(time.perf_counter() - start)
            assert response.status_code == 200
    results = {}
    for name, _ in pages:
        results[name] = (
            statistics.median(times[name]),
            statistics.median(t / f for t, f in zip(times[name], times["floor"], strict=True)),
            statistics.median(t / h for t, h in zip(times[name], times["trivial view"], strict=True)),
            queries[name],
        )
    return results


def write_results(pages, results, rounds):
    """``results``: {releases: {page: (median, × floor, × /healthz, queries)}}."""
    sizes = list(results)
    head = "| page | URL | " + " | ".join(f"{n:,}: median | × floor | × `/healthz` | queries" for n in sizes) + " |"
    lines = [
        BEGIN,
        "## Pages (bench/pages.py)",
        "",
        f"Data: {APPS} apps, {CUSTOMERS:,} customers and "
        f"{' then '.join(f'{n:,}' for n in sizes)} releases (each promoted; the page is the first app's). Server time "
        "with DEBUG=false (as in production: no query log, no template debug information; cached template loader) "
        "through the whole middleware stack (Django test client, logged in). The floor is a logged-in team page that "
        "renders `base.html` and runs no query of its own (`bench/pages_urls.py`, a URL of this bench only): "
        "what every team page pays before its content. "
        f"The pages are requested in turn, {rounds} rounds after a warm-up; median time, and median per-round "
        f"multiple of the floor and of `/healthz` (a short text, no session, no template: kept for reference). "
        f"Target: at most {TARGET_RATIO:g}× the floor.",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, database {connection.vendor}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. Regenerate with `make bench`.",
        "",
        head,
        "| --- | --- |" + " ---: | ---: | ---: | ---: |" * len(sizes),
    ]
    for name, url in pages:
        cells = []
        for n in sizes:
            median, x_floor, x_healthz, queries = results[n][name]
            cells.append(f"{median * 1000:.2f} ms | {x_floor:.2f}× | {x_healthz:.1f}× | {queries}")
        lines.append(f"| {name} | `{url}` | " + " | ".join(cells) + " |")
    measured = [name for name, _ in pages if name not in ("trivial view", "floor")]
    within = [f"{name} at {n:,}" for n in sizes for name in measured if results[n][name][1] <= TARGET_RATIO]
    growth = [results[sizes[-1]][name][0] / results[sizes[0]][name][0] for name in measured]
    same_queries = all(results[sizes[0]][name][3] == results[sizes[-1]][name][3] for name in measured)
    lines += [
        "",
        f"Reading it: from {sizes[0]:,} to {sizes[-1]:,} releases a page's time changes by "
        f"{min(growth):.2f}–{max(growth):.2f}×, "
        + ("with the same number of SQL queries. " if same_queries else "**but the query counts differ**. ")
        + (f"Within {TARGET_RATIO:g}× the floor: {', '.join(within)}." if within
           else f"No page is within {TARGET_RATIO:g}× the floor yet."),
        "",
        END,
    ]
    block = "\n".join(lines)
    write_block(block, BEGIN, END)
    return block


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    customers = reverse("releases-customer-list")
    results = {}
    pages = None
    for n, name in zip(SIZES, ("Bench", "Large"), strict=True):
        start = time.perf_counter()
        user, app = build_data(name, releases=n)
        print(f"{n:,} releases: data built in {time.perf_counter() - start:.1f} s ({connection.vendor}); "
              f"measuring with DEBUG={settings.DEBUG}.")
        client = Client()
        client.force_login(user)
        url = history_url(app)
        if url is None:
            raise SystemExit("No release history page.")
        team_pages = [
            ("trivial view", reverse("portal-healthz")),
            ("floor", reverse("bench-floor")),
            ("release history", url),
            ("customers", customers),
            ("customers, last page", customers + "?page=last"),
            ("customers, search", customers + "?q=Customer+19"),
        ]
        results[n] = measure(client, team_pages, args.rounds)
        for page, (median, x_floor, x_healthz, queries) in results[n].items():
            print(f"{n:>6,} {page:24} {median * 1000:8.2f} ms  {x_floor:6.2f}× floor  {x_healthz:6.1f}× /healthz"
                  f"  {queries} queries")
        # Both teams' pages have the same URLs but the app's slug; the table names the first team's.
        pages = pages or team_pages
    write_results(pages, results, args.rounds)
    print(f"Results written to {RESULTS.relative_to(BASE_DIR)}; load average {os.getloadavg()}.")


if __name__ == "__main__":
    main()
