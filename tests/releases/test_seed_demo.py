import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from portal.models import Membership, Role, Team
from releases.demo import NGINX_DEPLOYMENT
from releases.models import App, Customer, Promotion, Release


@pytest.fixture
def var_dir(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    settings.VAR_DIR = tmp_path
    return tmp_path


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_it_loads_the_walkthrough_demo(db, var_dir):
    seed()
    team = Team.objects.get(name="Demo")
    app = App.objects.get(team=team, slug="mysampleecrapp")
    assert app.name == "MySampleECRApp"
    assert [c.name for c in app.channels.all()] == ["Stable", "Beta", "Unstable"]
    release = Release.objects.get(app=app)
    assert release.sequence == 1
    files = {f.name: f.content for f in release.files.all()}
    assert files["deployment.yaml"] == NGINX_DEPLOYMENT
    assert "image: nginx\n" in files["deployment.yaml"]
    assert "kind: Service" in files["service.yaml"]
    promotion = Promotion.objects.get(release=release)
    assert (promotion.channel.name, promotion.version_label, promotion.channel_sequence) == ("Unstable", "0.0.1", 1)
    customer = Customer.objects.get(app=app)
    assert customer.channel.name == "Unstable"
    roles = dict(Membership.objects.filter(team=team).values_list("user__username", "role"))
    assert roles == {"admin": Role.ADMIN, "dev": Role.DEVELOPER, "support": Role.SUPPORT}


def test_it_is_idempotent(db, var_dir):
    seed()
    seed()
    assert Team.objects.filter(name="Demo").count() == 1
    assert App.objects.count() == 1
    assert Release.objects.count() == 1
    assert Promotion.objects.count() == 1
    assert Customer.objects.count() == 1
    assert get_user_model().objects.count() == 3


def test_it_generates_the_password_once_into_a_private_file(db, var_dir):
    output = seed()
    path = var_dir / "admin_password"
    password = path.read_text().strip()
    assert len(password) >= 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"admin / {password}" in output
    assert get_user_model().objects.get(username="admin").check_password(password)
    seed()
    assert path.read_text().strip() == password


def test_it_takes_the_password_from_the_environment(db, var_dir, monkeypatch):
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "a long demo passphrase")
    seed()
    assert get_user_model().objects.get(username="admin").check_password("a long demo passphrase")
    assert not (var_dir / "admin_password").exists()
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "another long passphrase")
    seed()
    assert get_user_model().objects.get(username="admin").check_password("another long passphrase")


def test_it_keeps_a_password_changed_in_the_portal(db, var_dir):
    seed()
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed by the admin")
    admin.save()
    output = seed()
    admin.refresh_from_db()
    assert admin.check_password("changed by the admin")
    assert "was changed in the portal" in output
