"""Regenerate the README's screenshots (docs/screenshots/*.png): `make screenshots`.

Starts the portal (uvicorn) on a free loopback port with the demo data in a throw-away var/
directory, adds the walkthrough's second release (nginx from ECR, promoted to Unstable), logs in as
admin with Playwright driving Debian's Chromium and captures the main pages.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
OUT_DIR = BASE_DIR / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "screenshots demo password"
ECR_IMAGE = "4999999999999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx"

sys.path.insert(0, str(BASE_DIR))
for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PORTAL_SQLITE_PATH"):
    os.environ.pop(name, None)
os.environ.update(
    PORTAL_VAR_DIR=tempfile.mkdtemp(prefix="portal-screenshots-"),
    PORTAL_ADMIN_PASSWORD=PASSWORD,
    DJANGO_SETTINGS_MODULE="portal.settings",
    LOG_LEVEL="WARNING",
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

from portal.models import Team  # noqa: E402
from releases.models import App, Release  # noqa: E402


def prepare_data() -> App:
    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))
    app = App.objects.get(team=Team.objects.get(name="Demo"), slug="mysampleecrapp")
    if app.releases.count() == 1:
        first = app.releases.get()
        admin = first.created_by
        files = [(f.name, f.content.replace("image: nginx\n", f"image: {ECR_IMAGE}\n")) for f in first.files.all()]
        second = Release.create_next(app=app, user=admin, files=files)
        second.promote_to(app.channels.get(slug="unstable"), user=admin, version_label="0.0.2",
                          release_notes="Pull nginx from our private ECR registry.")
        # A draft to show in the editor.
        Release.create_next(app=app, user=admin, files=files)
    return app


def url_for(name: str, *candidates: dict) -> str | None:
    for kwargs in candidates or ({},):
        try:
            return reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    app = prepare_data()
    draft = app.releases.order_by("-sequence").first()
    customer = app.customers.order_by("pk").first()
    slug = {"slug": app.slug}
    pages = [
        ("apps", url_for("releases-app-list")),
        ("app-overview", url_for("releases-app-detail", slug, {"app_slug": app.slug})),
        ("release-editor", url_for("releases-release-edit", {"slug": app.slug, "sequence": draft.sequence},
                                   {"app_slug": app.slug, "sequence": draft.sequence})),
        ("history-diff", url_for("releases-release-diff", {"slug": app.slug, "sequence": 2},
                                 {"app_slug": app.slug, "sequence": 2})
         or url_for("releases-history", slug, {"app_slug": app.slug})),
        ("history", url_for("releases-history", slug, {"app_slug": app.slug})),
        ("promote", url_for("releases-promote", {"slug": app.slug, "sequence": draft.sequence})),
        ("customers", url_for("releases-customer-list")),
        ("customer-detail", url_for("releases-customer-detail", {"pk": customer.pk})),
        ("registries", url_for("registries-list")),
        ("add-external-registry", url_for("registries-add")),
        ("mirror-image", url_for("registries-mirror-new") and
         url_for("registries-mirror-new") + "?source=nginx&app=" + app.slug),
        ("audit-log", url_for("portal-audit")),
        ("team", url_for("portal-team")),
    ]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=BASE_DIR, env={**os.environ, "PORT": str(port)},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the portal did not start") from None
                time.sleep(0.1)
        capture(base, pages, customer.license_id, customer_pages=[
            ("customer-portal", url_for("releases-portal-home")),
            ("customer-view-files", url_for("releases-portal-files", {"channel_sequence": 2})),
        ])
    finally:
        server.terminate()
        server.wait(timeout=15)


def capture(base: str, pages: list[tuple[str, str | None]], license_id: str,
            customer_pages: list[tuple[str, str | None]]) -> None:
    from playwright.sync_api import sync_playwright

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/accounts/login/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state("networkidle")
        shoot(page, base, pages)
        # The customer's side: a fresh browser context signs in with the license ID.
        customer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        customer.goto(f"{base}/customer/")
        customer.get_by_label("License ID").fill(license_id)
        customer.get_by_role("button", name="Sign in").click()
        customer.wait_for_load_state("networkidle")
        shoot(customer, base, customer_pages)
        browser.close()


def shoot(page, base: str, pages: list[tuple[str, str | None]]) -> None:
    for name, path in pages:
        if path is None:
            print(f"skipped {name}: its page does not exist yet")
            continue
        response = page.goto(base + path)
        page.wait_for_load_state("networkidle")
        if response is None or response.status != 200:
            print(f"skipped {name}: {path} answered {response and response.status}")
            continue
        target = OUT_DIR / f"{name}.png"
        page.screenshot(path=str(target), full_page=False)
        print(f"{target.relative_to(BASE_DIR)}  ({path})")


if __name__ == "__main__":
    main()
