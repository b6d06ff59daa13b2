"""The data a process stack starts with, created inside the stack's own environment.

Run by ``PortalStack.start`` (``seed="demo"``) through ``manage.py shell`` after ``seed_demo``
(team Demo with admin/dev/support, MySampleECRApp with release 1 promoted to Unstable, one customer). Adds what
the vendor's forms need to have something to edit: a draft release 2, a linked registry, an
expired customer; and returns, as JSON on stdout, what the tests address (ids, the license ID,
a signed license file).
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from portal.models import Membership, Role, Team
from registries.models import ExternalRegistry, Provider
from releases.demo import DEMO_FILES
from releases.licenses import license_yaml
from releases.models import App, Customer, Release

APP_SLUG = "mysampleecrapp"


def seed() -> dict:
    team = Team.objects.get(name="Demo")
    app = App.objects.get(team=team, slug=APP_SLUG)
    admin = get_user_model().objects.get(username="admin")
    draft = app.releases.filter(promoted_at__isnull=True).order_by("-sequence").first()
    if draft is None:
        draft = Release.create_next(app=app, user=admin, files=DEMO_FILES)
    registry = ExternalRegistry.objects.filter(team=team).first()
    if registry is None:
        registry = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint="registry.example.com",
                                    username="puller", name="example")
        registry.secret = "stored-registry-secret"
        registry.save()
    customer = Customer.objects.filter(app=app, archived_at__isnull=True, expires_at__isnull=True).first()
    expired, _ = Customer.objects.get_or_create(
        app=app, name="Expired Customer",
        defaults={"channel": customer.channel, "expires_at": timezone.now() - timedelta(days=1)})
    promotion = app.channels.get(slug="unstable").promotions.order_by("-channel_sequence").first()
    target = get_user_model().objects.filter(username="target").first()
    if target is None:
        # A member whose password and role hostile forms may try to change (not a login of the stack).
        target = get_user_model().objects.create_user("target", "target@example.com", None)
        Membership.objects.create(user=target, team=team, role=Role.DEVELOPER)
    members = {m.user.username: m.pk for m in Membership.objects.filter(team=team).select_related("user")}
    return {
        "app_slug": app.slug,
        "app_id": app.pk,
        "draft_sequence": draft.sequence,
        "promoted_sequence": promotion.release.sequence,
        "promotion_id": promotion.pk,
        "registry_id": registry.pk,
        "customer_id": customer.pk,
        "license_id": customer.license_id,
        "license_yaml": license_yaml(customer),
        "expired_license_id": expired.license_id,
        "memberships": members,
    }
