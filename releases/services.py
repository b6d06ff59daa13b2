"""Writes of the release side: apps, channels, drafts and their files, promotion, customers.

Each service does its write and its audit line; the views parse the request, call one of
these and turn the outcome into a message. ``user`` is who acts; ``request``, when given,
adds the client's address to the audit. A write the database refuses (a slug taken
meanwhile) comes back as a ``ValidationError`` keyed by the form field it concerns.
"""

from enum import StrEnum

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from portal.audit import audit_log
from portal.models import Team

from .demo import DEMO_FILES
from .entitlements import grace
from .entitlements.models import PinSource
from .entitlements.services import release_pin
from .licenses import field_value, value_problem
from .manifests import validate_file
from .models import App, Channel, Customer, LicenseField, Promotion, Release, ReleaseFile

SLUG_TAKEN = "Your team already has an app with this slug: choose another."


class ReleaseFrozen(Exception):
    """The release was promoted, or is no longer the newest, by the time the write got its lock."""

    def __init__(self, release: Release):
        super().__init__(f"Release {release.sequence} is frozen.")
        self.release = release


class DraftExists(Exception):
    """The app's newest release is a draft already: edit it rather than start another."""

    def __init__(self, release: Release):
        super().__init__(f"Release {release.sequence} is already a draft.")
        self.release = release


def release_is_editable(release: Release, newest: Release | None = None) -> bool:
    """Only the newest release, while no channel has it, is edited in place."""
    newest = newest if newest is not None else release.app.releases.order_by("-sequence").first()
    return release.is_draft and newest is not None and newest.pk == release.pk


# --- apps and channels --------------------------------------------------------------------


def app_create(*, team, name: str, slug: str, user, request=None) -> App:
    """A new app with the default channels."""
    try:
        app = App.create_with_channels(team=team, name=name, slug=slug)
    except IntegrityError:
        raise ValidationError({"slug": SLUG_TAKEN}) from None
    audit_log(request=request, team=team, action="create", obj=app, actor=user,
              detail={"name": app.name, "slug": app.slug})
    return app


def app_update(*, app: App, name: str, slug: str, user, request=None) -> dict:
    """Rename ``app`` (and change its slug); the changes as {field: [before, after]}, empty if none."""
    changes = {k: [getattr(app, k), v] for k, v in (("name", name), ("slug", slug)) if getattr(app, k) != v}
    if changes:
        app.name, app.slug = name, slug
        try:
            with transaction.atomic():  # a refused write leaves the caller's transaction usable
                app.save(update_fields=["name", "slug"])
        except IntegrityError:
            raise ValidationError({"slug": SLUG_TAKEN}) from None
        audit_log(request=request, team=app.team, action="update", obj=app, actor=user, detail=changes)
    return changes


def app_archive(*, app: App, user, request=None) -> None:
    app.archive()
    audit_log(request=request, team=app.team, action="archive", obj=app, actor=user)


def channel_create(*, app: App, name: str, slug: str, user, request=None) -> Channel:
    """A new channel of ``app``, after its last one."""
    position = (app.channels.aggregate(m=Max("position"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            channel = Channel.objects.create(app=app, name=name, slug=slug, position=position)
    except IntegrityError:
        raise ValidationError({"name": "This app already has a channel with this name."}) from None
    audit_log(request=request, team=app.team, action="create", obj=channel, actor=user,
              detail={"app": app.slug, "name": channel.name})
    return channel


def channel_archive(*, channel: Channel, user, request=None) -> bool:
    """Archive ``channel``; False if it already was. Refused while customers are on it or it is the last one."""
    app = channel.app
    live_customers = channel.customers.filter(archived_at__isnull=True).count()
    if live_customers:
        raise ValidationError(f"Channel {channel.name} has {live_customers} customer"
                              f"{'s' if live_customers > 1 else ''}: move them to another channel first.")
    if not app.channels.filter(archived_at__isnull=True).exclude(pk=channel.pk).exists():
        raise ValidationError("An app needs at least one channel: add another before archiving this one.")
    if channel.is_archived:
        return False
    channel.archive()
    audit_log(request=request, team=app.team, action="archive", obj=channel, actor=user, detail={"app": app.slug})
    return True


# --- releases -----------------------------------------------------------------------------


def release_create_draft(*, app: App, user, from_sequence: int | None = None,
                         request=None) -> tuple[Release, Release | None]:
    """A draft with the files of release ``from_sequence`` (or the newest, or the default files).

    Returns the draft and the release it copies. Raises ``DraftExists`` if the newest release is a draft.
    """
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=app.pk).first()  # one new draft at a time
        newest = app.releases.order_by("-sequence").first()
        if newest is not None and newest.is_draft:
            raise DraftExists(newest)
        base = newest
        if from_sequence is not None:
            base = app.releases.filter(sequence=from_sequence).first() or newest
        files = [(f.name, f.content) for f in base.files.all()] if base is not None else list(DEMO_FILES)
        release = Release.create_next(app=app, user=user, files=files)
    audit_log(request=request, team=app.team, action="create", obj=release, actor=user,
              detail={"app": app.slug, "sequence": release.sequence,
                      "from_sequence": base.sequence if base else None})
    return release, base


def release_create(*, app: App, files: list[tuple[str, str]], user, request=None) -> Release:
    """A new release of ``app`` with ``files`` [(name, content)], checked by the caller as the
    editor checks them (``ReleaseFileForm``). Unlike "Create new release" on the app's page,
    a draft already there does not stop it: a pipeline sends whole releases, and the older draft
    is frozen as any release that is no longer the newest."""
    with transaction.atomic():
        release = Release.create_next(app=app, user=user, files=files)
    audit_log(request=request, team=app.team, action="create", obj=release, actor=user,
              detail={"app": app.slug, "sequence": release.sequence, "files": [name for name, _ in files]})
    return release


def release_files_replace(*, release: Release, files: list[tuple[str, str]], user, request=None) -> None:
    """Replace every file of a draft by ``files``. Raises ``ReleaseFrozen`` if it is no longer editable."""
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if not release_is_editable(locked):
            raise ReleaseFrozen(locked)
        locked.files.all().delete()
        ReleaseFile.objects.bulk_create(
            ReleaseFile(release=locked, name=name, content=content, position=i)
            for i, (name, content) in enumerate(files))
        locked.save(update_fields=["updated_at"])
    audit_log(request=request, team=release.app.team, action="update", obj=release, actor=user,
              detail={"app": release.app.slug, "sequence": release.sequence,
                      "files": [name for name, _ in files]})


def release_promote_blockers(release: Release) -> list[str]:
    """Why ``release`` cannot be promoted at all (no files, YAML problems); [] when it can."""
    files = list(release.files.all())
    if not files:
        return ["The release has no files: add at least one before promoting it."]
    return [f"{f.name}: {problem}" for f in files for problem in validate_file(f.name, f.content)]


class ImageProblem(StrEnum):
    """Why a promotion needs an explicit "promote anyway"; each caller words the remedy."""

    FAILING = "failing"  # customers will fail to pull some of the release's images
    PENDING = "pending"  # the image checks of some images are still running


def promotion_image_problem(*, failing_images, pending_images, anyway: bool) -> ImageProblem | None:
    """What stops a promotion unless the promoter confirms it (``anyway``); None when nothing does.

    Failing images come first: waiting for the other checks would not make them pullable.
    """
    if anyway:
        return None
    if failing_images:
        return ImageProblem.FAILING
    if pending_images:
        return ImageProblem.PENDING
    return None


def release_file_save(*, release: Release, original_name: str, name: str, content: str, user,
                      request=None) -> tuple[ReleaseFile, bool]:
    """Save a file of a draft: a new one (``original_name`` empty) or a change (maybe a rename).

    Returns the file and whether anything changed. Raises ``ReleaseFrozen`` if the release
    was promoted meanwhile, ``ReleaseFile.DoesNotExist`` if ``original_name`` is gone.
    """
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if not release_is_editable(locked):
            raise ReleaseFrozen(locked)
        if original_name:
            file = locked.files.get(name=original_name)
            detail = {"release": release.sequence, "file": name}
            if name != original_name:
                detail["renamed_from"] = original_name
            changed = file.content != content or file.name != name
            file.name, file.content = name, content
            file.save(update_fields=["name", "content"])
            action = "update"
        else:
            position = (locked.files.aggregate(m=Max("position"))["m"] or 0) + 1
            file = ReleaseFile.objects.create(release=locked, name=name, content=content, position=position)
            detail = {"release": release.sequence, "file": name}
            changed, action = True, "create"
        locked.save(update_fields=["updated_at"])
    if changed:
        audit_log(request=request, team=release.app.team, action=action, obj=file, actor=user,
                  object_repr=f"{release.app.slug} release {release.sequence} {name}", detail=detail)
    return file, changed


def release_file_delete(*, release: Release, name: str, user, request=None) -> None:
    """Delete a file of a draft. Raises ``ReleaseFrozen`` or ``ReleaseFile.DoesNotExist``."""
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if not release_is_editable(locked):
            raise ReleaseFrozen(locked)
        file = ReleaseFile.objects.get(release=locked, name=name)
        file_pk = file.pk
        file.delete()
        locked.save(update_fields=["updated_at"])
    audit_log(request=request, team=release.app.team, action="delete", object_type="releasefile", actor=user,
              object_repr=f"{release.app.slug} release {release.sequence} {name}",
              detail={"release": release.sequence, "file": name, "id": file_pk})


def release_promote(*, release: Release, channels, user, version_label: str, release_notes: str = "",
                    is_required: bool = False, failing_images=(), request=None) -> list[Promotion]:
    """Put ``release`` on each of ``channels``, one audit line per channel.

    The first promotion pins the release's images to what the private-image check resolved;
    later ones reuse those pins. ``failing_images`` (the images the private-image check says
    customers cannot pull, promoted anyway) are written into the audit.
    """
    app = release.app
    failing = list(failing_images)
    promotions = []
    with transaction.atomic():
        # The row lock makes pinning happen once: a concurrent promotion of the same release
        # waits here and then finds pinned_at set.
        locked = Release.objects.select_for_update().select_related("app").get(pk=release.pk)
        if locked.pinned_at is None:
            # Promoted before pins existed: what the check finds now is what backfill would pin.
            release_pin(release=locked, source=PinSource.PROMOTION if locked.promoted_at is None
                        else PinSource.BACKFILL)
            release.pinned_at = locked.pinned_at
        for channel in channels:
            promotion = release.promote_to(
                channel, user=user, version_label=version_label,
                release_notes=release_notes, is_required=is_required,
            )
            promotions.append(promotion)
            audit_log(request=request, team=app.team, action="promote", obj=promotion, actor=user,
                      detail={"app": app.slug, "release": release.sequence, "channel": channel.name,
                              "channel_sequence": promotion.channel_sequence,
                              "version_label": promotion.version_label,
                              "required": promotion.is_required,
                              **({"failing_images": failing} if failing else {})})
        # Licenses that pulled its images and lost them are entitled again: their grace ends
        # now, so a later demotion starts a fresh one rather than finding an old one spent.
        for channel in channels:
            grace.settle_customers(grace.customers_who_pulled(release=locked, channel=channel))
    return promotions


def promotion_demote(*, promotion: Promotion, user, request=None) -> bool:
    """Take ``promotion`` off its channel; False if it already was."""
    if promotion.is_demoted:
        return False
    promotion.demote(user=user)
    # Licenses that pulled its images keep pulling them for the grace period, from now.
    grace.settle_customers(grace.customers_who_pulled(release=promotion.release,
                                                      channel=promotion.channel))
    app = promotion.channel.app
    audit_log(request=request, team=app.team, action="demote", obj=promotion, actor=user,
              detail={"app": app.slug, "channel": promotion.channel.name,
                      "channel_sequence": promotion.channel_sequence, "release": promotion.release.sequence,
                      "version_label": promotion.version_label})
    return True


# --- customers ----------------------------------------------------------------------------


def customer_public_fields(customer: Customer) -> dict:
    """What the audit may say about a customer: everything the license says but the license ID
    (license field values are not secrets: the customer holds them in the file)."""
    fields = {
        "name": customer.name,
        "email": customer.email,
        "app": customer.app.slug,
        "channel": customer.channel.name,
        "license_type": customer.license_type,
        "expires_at": customer.expires_at.isoformat() if customer.expires_at else None,
        "is_airgap_supported": customer.is_airgap_supported,
    }
    values = customer.entitlements or {}
    for field in customer.app.license_fields.all():
        fields[f"license_fields.{field.name}"] = field_value(field, values)
    return fields


def customer_create(*, customer: Customer, user, request=None) -> Customer:
    """Save the new ``customer`` (built, unsaved, by ``CustomerForm``)."""
    customer.save()
    audit_log(request=request, team=customer.app.team, action="create", obj=customer, actor=user,
              detail=customer_public_fields(customer))
    return customer


def customer_update(*, customer: Customer, user, request=None) -> dict:
    """Save the changed ``customer`` (from ``CustomerForm``); the changes as {field: [before, after]}.

    A save that changes what the license says adds one to its licenseSequence (KOTS fetches a
    license whose sequence is higher than its own), counted under the row lock so that two
    saves at once make two steps. A change of channel starts the grace period of what only the
    old channel gave."""
    with transaction.atomic():
        locked = Customer.objects.select_for_update().select_related("app", "channel").get(pk=customer.pk)
        before = customer_public_fields(locked)
        after = customer_public_fields(customer)
        changes = {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}
        if changes:
            customer.license_sequence = locked.license_sequence + 1
            customer.save()
            if locked.channel_id != customer.channel_id:
                grace.settle_customers([customer])
            audit_log(request=request, team=customer.app.team, action="update", obj=customer, actor=user,
                      detail={"changes": changes, "license_sequence": customer.license_sequence})
    return changes


def customer_archive(*, customer: Customer, user, request=None) -> bool:
    """Archive ``customer`` (its license stops working); False if it already was."""
    with transaction.atomic():
        archived = customer.archive()
        if archived:
            audit_log(request=request, team=customer.app.team, action="archive", obj=customer, actor=user)
    return archived


def customer_restore(*, customer: Customer, user, request=None) -> bool:
    """Restore an archived ``customer``; False if it was not archived."""
    with transaction.atomic():
        restored = customer.restore()
        if restored:
            audit_log(request=request, team=customer.app.team, action="unarchive", obj=customer, actor=user)
    return restored


def license_regenerate(*, customer: Customer, user, request=None) -> None:
    """A new license ID for ``customer``; the old one stops working at once."""
    with transaction.atomic():
        customer.regenerate_license_id()
        audit_log(request=request, team=customer.app.team, action="regenerate_license", obj=customer,
                  actor=user, detail={"license_sequence": customer.license_sequence})


# --- license fields -----------------------------------------------------------------------

_FIELD_ATTRS = ("name", "title", "field_type", "default", "is_hidden")


def _field_detail(field: LicenseField) -> dict:
    return {"app": field.app.slug, **{k: getattr(field, k) for k in _FIELD_ATTRS}}


def _licenses_changed(app: App) -> None:
    """Every license of ``app`` says something new: one more licenseSequence each."""
    Customer.objects.filter(app=app).update(license_sequence=F("license_sequence") + 1, updated_at=timezone.now())


def license_field_create(*, field: LicenseField, user, request=None) -> LicenseField:
    """Add ``field`` (built, unsaved, by ``LicenseFieldForm``) after the app's last one."""
    app = field.app
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=app.pk).first()  # one position at a time
        field.position = (app.license_fields.aggregate(m=Max("position"))["m"] or 0) + 1
        try:
            with transaction.atomic():
                field.save()
        except IntegrityError:
            raise ValidationError({"name": f"This app already has a field named {field.name}."}) from None
        _licenses_changed(app)
        audit_log(request=request, team=app.team, action="create", obj=field, actor=user,
                  object_repr=f"{app.slug} license field {field.name}", detail=_field_detail(field))
    return field


def license_field_update(*, field: LicenseField, user, request=None) -> dict:
    """Save the changed ``field`` (from ``LicenseFieldForm``); the changes as {attribute: [before, after]}.

    A rename carries the customers' values to the new name; a new type drops the values that
    no longer fit it (those customers get the default)."""
    app = field.app
    with transaction.atomic():
        before = LicenseField.objects.select_for_update().get(pk=field.pk)
        changes = {k: [getattr(before, k), getattr(field, k)] for k in _FIELD_ATTRS
                   if getattr(before, k) != getattr(field, k)
                   or type(getattr(before, k)) is not type(getattr(field, k))}
        if not changes:
            return {}
        try:
            with transaction.atomic():
                field.save()
        except IntegrityError:
            raise ValidationError({"name": f"This app already has a field named {field.name}."}) from None
        if "name" in changes or "field_type" in changes:
            for customer in Customer.objects.select_for_update().filter(app=app, entitlements__has_key=before.name):
                value = customer.entitlements.pop(before.name)
                if not value_problem(field.field_type, value):
                    customer.entitlements[field.name] = value
                customer.save(update_fields=["entitlements"])
        _licenses_changed(app)
        audit_log(request=request, team=app.team, action="update", obj=field, actor=user,
                  object_repr=f"{app.slug} license field {field.name}", detail={"changes": changes})
    return changes


def license_field_delete(*, field: LicenseField, user, request=None) -> None:
    """Delete ``field`` and the customers' values of it: licenses no longer carry it."""
    app = field.app
    with transaction.atomic():
        detail = _field_detail(field)
        field_pk = field.pk
        for customer in Customer.objects.select_for_update().filter(app=app, entitlements__has_key=field.name):
            del customer.entitlements[field.name]
            customer.save(update_fields=["entitlements"])
        field.delete()
        _licenses_changed(app)
        audit_log(request=request, team=app.team, action="delete", object_type="licensefield", actor=user,
                  object_repr=f"{app.slug} license field {detail['name']}", detail={**detail, "id": field_pk})


def license_field_move(*, field: LicenseField, up: bool, user, request=None) -> bool:
    """Swap ``field`` with its neighbour above (``up``) or below; False at that end already.

    The order is the pages' and the file's; the signature covers a mapping, so no license changes."""
    app = field.app
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=app.pk).first()
        order = list(app.license_fields.all())
        index = next(i for i, f in enumerate(order) if f.pk == field.pk)
        other = index - 1 if up else index + 1
        if not 0 <= other < len(order):
            return False
        order[index], order[other] = order[other], order[index]
        for position, each in enumerate(order):
            each.position = position
        LicenseField.objects.bulk_update(order, ["position"])
        audit_log(request=request, team=app.team, action="reorder", obj=field, actor=user,
                  object_repr=f"{app.slug} license field {field.name}",
                  detail={"order": [f.name for f in order]})
    return True


def licenses_reissue_for_hosts(*, old_url: str, new_url: str, old_proxy_host: str, new_proxy_host: str) -> int:
    """Every license names the portal's old host (update checks, image names): one more
    licenseSequence each, in one update, and one audit line per team with customers."""
    with transaction.atomic():
        team_ids = set(Customer.objects.values_list("app__team_id", flat=True).distinct())
        count = Customer.objects.update(license_sequence=F("license_sequence") + 1, updated_at=timezone.now())
        detail = {"old_url": old_url, "new_url": new_url, "old_proxy_host": old_proxy_host,
                  "new_proxy_host": new_proxy_host}
        for team in Team.objects.filter(pk__in=team_ids):
            audit_log(team=team, action="reissue_licenses", object_type="installation",
                      object_repr=f"portal host changed to {new_url}", detail=detail)
    return count
