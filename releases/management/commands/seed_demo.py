"""Load the walkthrough's demo data. Safe to run again: it only adds what is missing.

Team "Demo" with the users admin (Admin), dev (Developer) and support (Support); the app
MySampleECRApp with its first release (nginx) promoted to Unstable as 0.0.1; one customer on
Unstable. The password is PORTAL_ADMIN_PASSWORD, else one generated on the first run and kept in
var/admin_password (mode 0600). It is set when a user is created, or whenever
PORTAL_ADMIN_PASSWORD is given; a password changed in the portal is otherwise left alone.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.models import Membership, Role, Team
from releases.demo import DEMO_FILES
from releases.models import App, Customer, LicenseType, Release

TEAM_NAME = "Demo"
APP_NAME = "MySampleECRApp"
APP_SLUG = "mysampleecrapp"
CUSTOMER_NAME = "Demo Customer"
USERS = [("admin", Role.ADMIN), ("dev", Role.DEVELOPER), ("support", Role.SUPPORT)]


def password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin_password"


def demo_password() -> tuple[str, bool]:
    """The demo password and whether it was given in PORTAL_ADMIN_PASSWORD."""
    given = os.environ.get("PORTAL_ADMIN_PASSWORD", "").strip()
    if given:
        return given, True
    path = password_file()
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    # Created with 0600 before the secret is written, so it is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, False


class Command(BaseCommand):
    help = "Load the demo data (team Demo, users admin/dev/support, MySampleECRApp). Idempotent."

    def handle(self, *args, **options):
        password, given = demo_password()
        with transaction.atomic():
            team, _ = Team.objects.get_or_create(name=TEAM_NAME)
            users = {name: self.ensure_user(name, role, team, password, reset=given) for name, role in USERS}
            app = self.ensure_app(team, users["admin"])
            self.ensure_customer(app)
        source = "PORTAL_ADMIN_PASSWORD" if given else f"kept in {password_file()}"
        self.stdout.write(f"Demo data ready: team {TEAM_NAME}, app {APP_NAME}.")
        if users["admin"].check_password(password):
            self.stdout.write(f"Admin login: admin / {password}  ({source})")
        else:
            self.stdout.write("Admin login: admin (its password was changed in the portal)")

    def ensure_user(self, username, role, team, password, *, reset):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username, f"{username}@example.com", password)
            self.stdout.write(f"Created user {username} ({role.label}).")
        elif reset and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        if not Membership.objects.filter(user=user).exists():
            Membership.objects.create(user=user, team=team, role=role)
        return user

    def ensure_app(self, team, admin):
        app = App.objects.filter(team=team, slug=APP_SLUG).first()
        if app is None:
            app = App.create_with_channels(team=team, name=APP_NAME, slug=APP_SLUG)
            self.stdout.write(f"Created app {APP_NAME} with channels Stable, Beta, Unstable.")
        if not app.releases.exists():
            release = Release.create_next(app=app, user=admin, files=DEMO_FILES)
            release.promote_to(app.channels.get(slug="unstable"), user=admin, version_label="0.0.1")
            self.stdout.write("Created release 1 (nginx) and promoted it to Unstable as 0.0.1.")
        return app

    def ensure_customer(self, app):
        if not Customer.objects.filter(app=app).exists():
            Customer.objects.create(
                app=app, channel=app.channels.get(slug="unstable"), name=CUSTOMER_NAME,
                email="ops@customer.example", license_type=LicenseType.DEV,
            )
            self.stdout.write(f"Created customer {CUSTOMER_NAME} on Unstable.")
