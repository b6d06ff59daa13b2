"""Shared fixtures: the personas of STYLE.md and the walkthrough's sample app.

alice (Admin) · bob (Developer on alice's team) · sam (Support, read only) · mallory (another team).
"""

import os

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import cache

from portal import shared
from portal.models import Membership, Role, Team
from releases.demo import NGINX_DEPLOYMENT, NGINX_SERVICE  # noqa: F401 (tests import them from here)
from releases.models import App, Customer, Release
from releases.proxy import manifest_cache

# Playwright's sync API keeps an event loop running in the test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct horse battery staple"

@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hash passwords cheaply in tests; the real hasher costs ~0.5 s per password here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Django's cache is per process and outlives a test: throttle counts must not carry over;
    neither may the proxy's manifests (a test's upstream may answer differently)."""
    cache.clear()
    manifest_cache.clear()


def make_user(username: str, team: Team, role: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def team(db):
    return Team.objects.create(name="Acme")


@pytest.fixture
def other_team(db):
    return Team.objects.create(name="Evil Corp")


@pytest.fixture
def alice(team):
    return make_user("alice", team, Role.ADMIN)


@pytest.fixture
def bob(team):
    return make_user("bob", team, Role.DEVELOPER)


@pytest.fixture
def sam(team):
    return make_user("sam", team, Role.SUPPORT)


@pytest.fixture
def mallory(other_team):
    return make_user("mallory", other_team, Role.ADMIN)


@pytest.fixture
def sample_app(team, alice):
    """MySampleECRApp with the default nginx release (1) promoted to Unstable."""
    app = App.create_with_channels(team=team, name="MySampleECRApp", slug="mysampleecrapp")
    release = Release.create_next(
        app=app, user=alice, files=[("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)]
    )
    release.promote_to(app.channels.get(name="Unstable"), user=alice, version_label="0.0.1")
    return app


@pytest.fixture
def customer(sample_app):
    return Customer.objects.create(
        app=sample_app, channel=sample_app.channels.get(name="Unstable"), name="Big Bank",
        email="ops@bigbank.example",
    )


def login(client, user):
    client.force_login(user)
    return client


# Playwright drives Debian's Chromium (no browser download). Flags keep it off the network.
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
    }


SHARED_STATE_REDIS_DB = 15


@pytest.fixture
def in_redis(redis_server, settings):
    """The portal's shared state (portal/shared.py) on an empty Redis database; the client."""
    settings.REDIS_URL = redis_server.url.rsplit("/", 1)[0] + f"/{SHARED_STATE_REDIS_DB}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    shared.reset()
    yield client
    shared.reset()
