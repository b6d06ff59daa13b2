"""Queries of releases that several rooms share (pages, the proxy, the private-image check),
and the one question registries' pages ask of releases: which release files use a registry."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404

from registries.models import ExternalRegistry
from registries.reference import DOCKER_HUB, InvalidReference, canonical_registry, parse

from .manifests import images_in
from .models import App, Channel, Promotion, Release, ReleaseFile


def app_release_count(app: App) -> int:
    """How many releases ``app`` has, without counting them.

    Releases are never deleted and ``App.take_release_sequence`` hands out gapless sequences in
    the transaction that creates the release, so the next sequence less one is the total: the
    history page's paginator needs no COUNT(*), which grows with the app's releases.
    """
    return app.next_release_sequence - 1


def channel_promotion_count(channel: Channel) -> int:
    """How many promotions (demoted ones too) ``channel`` has: its next channel sequence less one,
    for the same reasons as ``app_release_count``."""
    return channel.next_channel_sequence - 1


# The rows of a history page with their promotions, in one hand-written query. Built with the ORM
# (a values() query for the rows, another for their promotions) this cost about 1.5 ms of Python per
# page, most of it making and compiling the querysets and converting their values; the database's
# own work is about a tenth of that. Promotions in channel order, then by channel sequence.
_HISTORY_ROWS_SQL = """
SELECT r.id, r.sequence, r.promoted_at, r.created_at, creator.{username},
       (SELECT COUNT(f.id) FROM {file} f WHERE f.release_id = r.id),
       p.channel_sequence, p.version_label, p.is_required, p.demoted_at, p.created_at, p.release_notes,
       c.name, promoter.{username}
  FROM {release} r
  LEFT JOIN {user} creator ON creator.{user_pk} = r.created_by_id
  LEFT JOIN {promotion} p ON p.release_id = r.id
  LEFT JOIN {channel} c ON c.id = p.channel_id
  LEFT JOIN {user} promoter ON promoter.{user_pk} = p.promoted_by_id
 WHERE r.app_id = %s AND r.sequence BETWEEN %s AND %s
 ORDER BY r.sequence DESC, c.position, p.channel_sequence
"""


def _history_rows_sql() -> str:
    user = get_user_model()._meta
    q = connection.ops.quote_name
    return _HISTORY_ROWS_SQL.format(
        release=q(Release._meta.db_table), file=q(ReleaseFile._meta.db_table),
        promotion=q(Promotion._meta.db_table), channel=q(Channel._meta.db_table),
        user=q(user.db_table), user_pk=q(user.pk.column), username=q(user.get_field("username").column),
    )


def _datetime_from_db():
    """Django's own conversion of a datetime column's value (SQLite returns text, PostgreSQL datetimes)."""
    field = Release._meta.get_field("created_at")
    column = field.get_col(Release._meta.db_table)
    converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)

    def convert(value):
        for converter in converters:
            value = converter(value, column, connection)
        return value

    return convert


def release_history_rows(app: App, sequences: range) -> list[dict]:
    """The history rows of ``app``'s releases with ``sequences`` (newest first, a page of them), as
    dicts with the creator's username, the file count and the promotions (dicts with the channel's
    name and the promoter's username) for ``_release_table.html``."""
    if not sequences:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_history_rows_sql(), [app.pk, min(sequences), max(sequences)])
        records = cursor.fetchall()
    when = _datetime_from_db()
    rows = {}
    for (pk, sequence, promoted_at, created_at, created_by_name, file_count, channel_sequence, version_label,
         is_required, demoted_at, promotion_created_at, release_notes, channel_name, promoted_by_name) in records:
        row = rows.get(pk)
        if row is None:
            row = rows[pk] = {
                "pk": pk, "sequence": sequence, "promoted_at": when(promoted_at), "created_at": when(created_at),
                "file_count": file_count, "created_by_name": created_by_name, "promotions": [],
            }
        if channel_sequence is not None:  # a release no channel has: one row, no promotion
            row["promotions"].append({
                "channel_sequence": channel_sequence, "version_label": version_label,
                "is_required": bool(is_required), "demoted_at": when(demoted_at),
                "created_at": when(promotion_created_at), "release_notes": release_notes,
                "channel_name": channel_name, "promoted_by_name": promoted_by_name,
            })
    return list(rows.values())


def channels_with_current(channels):
    """``channels`` annotated with their current (newest, not demoted) promotion, in one query."""
    current = Promotion.objects.filter(channel=OuterRef("pk"), demoted_at__isnull=True).order_by("-channel_sequence")
    return channels.annotate(
        current_label=Subquery(current.values("version_label")[:1]),
        current_release=Subquery(current.values("release__sequence")[:1]),
        current_channel_sequence=Subquery(current.values("channel_sequence")[:1]),
        current_promoted_at=Subquery(current.values("created_at")[:1]),
    )


def team_app(*, team, slug: str | None = None, pk: int | None = None, write: bool = False,
             app_ids=None) -> App:
    """The team's app by slug (or primary key) or 404; ``app_ids`` narrows to those apps (an
    app-scoped API token); with ``write``, an archived app is refused (403)."""
    apps = App.objects.filter(team=team)
    if app_ids is not None:
        apps = apps.filter(pk__in=app_ids)
    app = get_object_or_404(apps, **({"slug": slug} if slug is not None else {"pk": pk}))
    if write and app.is_archived:
        raise PermissionDenied("This app is archived.")
    return app


def registries_for_app(app):
    """The team's registries this app may use (an empty app list means every app)."""
    return ExternalRegistry.objects.filter(team_id=app.team_id).filter(
        Q(apps=app) | Q(apps__isnull=True)
    ).distinct()


@dataclass
class RegistryImageUse:
    image: str
    repository: str
    app: str
    release: int
    promoted: bool


def registry_image_uses(*, team, endpoint: str) -> list[RegistryImageUse]:
    """Images on ``endpoint`` named in the team's release files (promoted or not)."""
    promoted = set(
        Promotion.objects.filter(channel__app__team=team, demoted_at__isnull=True)
        .values_list("release_id", flat=True)
    )
    uses = []
    files = ReleaseFile.objects.filter(release__app__team=team).select_related("release__app")
    if endpoint != DOCKER_HUB:
        # An image on any other registry is written with its host: let the database skip the
        # files that cannot mention it instead of parsing every release of the team.
        files = files.filter(content__icontains=endpoint)
    for f in files:
        for image in (use.image for use in images_in([(f.name, f.content)])):
            try:
                ref = parse(image)
            except InvalidReference:
                continue
            if canonical_registry(ref.domain) == endpoint:
                uses.append(RegistryImageUse(image, ref.path, f.release.app.name, f.release.sequence,
                                             f.release_id in promoted))
    return uses
