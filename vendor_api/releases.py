"""Releases (Replicated ``/v3/app/{app}/release...``): create, list, get, update a draft,
promote, demote.

A release's files travel as Replicated's ``spec``: a JSON array of ``{name, path, content}``,
as a string or as the array itself, or gzipped and base64-encoded as ``spec_gzip`` (what
Replicated's CLI sends). Each file is checked by the editor's form, so the errors are the
editor's, with line and column.
"""

import base64
import binascii
import gzip
import io
import json
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema

from releases import services
from releases.forms import PromoteForm, ReleaseFileForm
from releases.image_check.selectors import release_failing_images, release_pending_images
from releases.image_check.services import release_checks_ensure
from releases.models import Promotion, Release

from .access import get_app, require
from .apps import get_channel
from .conventions import ApiError, PageParams, error_response, idempotent, paginate

router = Router(tags=["releases"])

# The promote form's image refusals in the API's terms (the CLI adds its own flag after them).
IMAGE_REFUSALS = {
    services.ImageProblem.FAILING: "Customers will fail to pull the images listed in images: link their "
                                   "registry first, or set promoteAnyway to promote anyway.",
    services.ImageProblem.PENDING: "The image checks of the images listed in images are still running: "
                                   "promote again once they finish, or set promoteAnyway to promote anyway.",
}

# How long a promotion waits for the image checks of a release still being checked.
PROMOTE_WAIT_SECONDS = settings.PORTAL_API_WAIT_SECONDS
PROMOTE_POLL_SECONDS = 0.5


class ReleaseChannel(Schema):
    """Replicated's Channel, as a release's promotion to it, plus what the promotion says."""
    id: str
    name: str
    description: str = ""
    channelSlug: str
    releaseSequence: int
    channelSequence: int
    releaseLabel: str
    isArchived: bool
    isHelmOnly: bool = False
    isRequired: bool
    isDemoted: bool
    releaseNotes: str
    created: datetime


class ReleaseOut(Schema):
    appId: str
    sequence: int
    created: datetime
    isArchived: bool = False
    spec: str = ""
    releaseNotes: str = ""
    isReleaseNotEditable: bool
    channels: list[ReleaseChannel]
    charts: list = []
    compatibilityResults: list = []
    isHelmOnly: bool = False


class ReleaseOne(Schema):
    release: ReleaseOut


class PromoteOut(Schema):
    release: ReleaseOut
    # Replicated's CLI waits for the air-gap bundles listed here; none are built here.
    airgapBuilds: list = []


class ReleaseList(Schema):
    releases: list[ReleaseOut]
    totalCount: int


class SpecIn(Schema):
    spec: str | list[dict[str, Any]] | None = None
    spec_gzip: str | None = None


class PromoteIn(Schema):
    channelIds: list[str]
    versionLabel: str = ""
    releaseNotes: str = ""
    isRequired: bool = False
    promoteAnyway: bool = False


class ChannelReleaseOut(Schema):
    channelId: str
    channelName: str
    channelSequence: int
    sequence: int
    semver: str
    releaseNotes: str
    isDemoted: bool
    demotedAt: datetime | None
    created: datetime


class ChannelReleaseOne(Schema):
    release: ChannelReleaseOut


# --- shapes ----------------------------------------------------------------------------------


def _release_channel(p: Promotion, sequence: int) -> dict:
    return {"id": str(p.channel_id), "name": p.channel.name, "description": "", "channelSlug": p.channel.slug,
            "releaseSequence": sequence, "channelSequence": p.channel_sequence, "releaseLabel": p.version_label,
            "isArchived": p.channel.is_archived, "isHelmOnly": False, "isRequired": p.is_required, "isDemoted": p.is_demoted, "releaseNotes": p.release_notes,
            "created": p.created_at}


def release_out(release: Release, *, newest_pk: int | None, with_spec: bool) -> dict:
    """``release`` as Replicated's KotsAppRelease. Reads ``release.live_promotions`` (prefetched).

    Without ``with_spec`` (lists), ``spec`` is empty: a release's files come with the release alone.
    """
    promotions = release.live_promotions
    spec = ""
    if with_spec:
        spec = json.dumps([{"name": f.name, "path": f.name, "content": f.content} for f in release.files.all()])
    return {
        "appId": str(release.app_id), "sequence": release.sequence, "created": release.created_at,
        "spec": spec, "releaseNotes": promotions[0].release_notes if promotions else "",
        "isReleaseNotEditable": not (release.is_draft and release.pk == newest_pk),
        "channels": [_release_channel(p, release.sequence) for p in promotions],
    }


def _releases(app):
    promotions = Promotion.objects.select_related("channel").order_by("channel__position", "channel_sequence")
    return app.releases.prefetch_related(Prefetch("promotions", queryset=promotions, to_attr="live_promotions"))


def _newest_pk(app) -> int | None:
    return app.releases.order_by("-sequence").values_list("pk", flat=True).first()


def _one(app, sequence: int) -> dict:
    release = get_object_or_404(_releases(app), sequence=sequence)
    return {"release": release_out(release, newest_pk=_newest_pk(app), with_spec=True)}


# --- the spec --------------------------------------------------------------------------------


def _spec_files(payload: SpecIn) -> list[dict]:
    """The files a body carries, as dicts; refuses what is not a spec."""
    spec = payload.spec
    if payload.spec_gzip is not None:
        try:
            packed = base64.b64decode(payload.spec_gzip, validate=True)
            # Bounded like the body itself: a small gzip must not expand into gigabytes.
            with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
                text = stream.read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
        except (binascii.Error, OSError, EOFError):
            raise ApiError(400, "spec_gzip is not base64 of gzipped data.", {"spec_gzip": ["Not gzip."]}) from None
        if len(text) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise ApiError(413, "spec_gzip expands to more than the largest body allowed: send fewer files.")
        spec = text.decode("utf-8", errors="replace")
    if spec is None:
        raise ApiError(400, "Send the release's files as spec: a JSON array of {name, path, content}.",
                       {"spec": ["This field is required."]})
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except (ValueError, RecursionError):
            raise ApiError(400, "spec is not a JSON array of {name, path, content}.",
                           {"spec": ["Not JSON."]}) from None
    if not isinstance(spec, list) or not all(isinstance(f, dict) for f in spec):
        raise ApiError(400, "spec must be a JSON array of {name, path, content}.", {"spec": ["Not an array."]})
    return spec


def _checked_files(payload: SpecIn) -> list[tuple[str, str]]:
    """The files, each checked by the editor's form; every problem of every file in one refusal."""
    files, errors, names = [], {}, set()
    for index, item in enumerate(_spec_files(payload)):
        name = str(item.get("path") or item.get("name") or "")
        content = item.get("content")
        form = ReleaseFileForm({"original_name": "", "name": name,
                                "content": content if isinstance(content, str) else ""}, names=names)
        if not isinstance(content, str):
            form.is_valid()
            form.add_error("content", "Send the file's content as a string.")
        if not form.is_valid():
            label = name or f"spec[{index}]"
            for field, messages in form.errors.items():
                errors.setdefault(f"{label}" if field == "content" else f"{label}.{field}", []).extend(messages)
            errors.setdefault(label, []).extend(str(p) for p in form.problems)
            continue
        names.add(form.cleaned_data["name"])
        files.append((form.cleaned_data["name"], form.cleaned_data["content"]))
    if errors:
        count = len(errors)
        raise ApiError(400, f"{count} file{'s' if count > 1 else ''} of the release need{'' if count > 1 else 's'} "
                            "fixing: see errors.", errors)
    if not files:
        raise ApiError(400, "The release has no files: send at least one.", {"spec": ["Empty."]})
    return files


# --- routes ----------------------------------------------------------------------------------


@router.post("/app/{app}/release", response={201: ReleaseOne}, summary="Create a release")
def create_release(request, app: str, payload: SpecIn):
    require(request, "can_edit_releases")
    found = get_app(request, app, write=True)

    def create():
        files = _checked_files(payload)
        release = services.release_create(app=found, files=files, user=request.access.user, request=request)
        release_checks_ensure(release)  # a pipeline promotes next: start the image checks now
        return 201, _one(found, release.sequence)

    return idempotent(request, create)


@router.get("/app/{app}/releases", response=ReleaseList, summary="List releases")
def list_releases(request, app: str, params: Query[PageParams]):
    """Newest first, without their files. Four queries whatever the page holds."""
    found = get_app(request, app)
    releases, total = paginate(_releases(found).order_by("-sequence"), params)
    newest = _newest_pk(found)
    return {"releases": [release_out(r, newest_pk=newest, with_spec=False) for r in releases], "totalCount": total}


@router.get("/app/{app}/release/{sequence}", response=ReleaseOne, summary="Get a release")
def get_release(request, app: str, sequence: int):
    return _one(get_app(request, app), sequence)


@router.put("/app/{app}/release/{sequence}", response=ReleaseOne, summary="Update a draft release")
def update_release(request, app: str, sequence: int, payload: SpecIn):
    require(request, "can_edit_releases")
    found = get_app(request, app, write=True)
    release = get_object_or_404(found.releases, sequence=sequence)
    files = _checked_files(payload)
    try:
        services.release_files_replace(release=release, files=files, user=request.access.user, request=request)
    except services.ReleaseFrozen as frozen:
        why = "is promoted" if not frozen.release.is_draft else "is not the newest release"
        raise ApiError(409, f"Release {sequence} {why}, so it is frozen: create a new release.") from None
    return _one(found, sequence)


def _wait_for_checks(release) -> list[str]:
    """The images still being checked after waiting up to ``PROMOTE_WAIT_SECONDS`` for them."""
    if release.pinned_at is not None:  # a pinned release keeps its pins: nothing to wait for
        return []
    release_checks_ensure(release)
    deadline = time.monotonic() + PROMOTE_WAIT_SECONDS
    pending = release_pending_images(release)
    while pending and time.monotonic() < deadline:
        time.sleep(PROMOTE_POLL_SECONDS)
        pending = release_pending_images(release)
    return pending


@router.post("/app/{app}/release/{sequence}/promote", response=PromoteOut, summary="Promote a release")
def promote_release(request, app: str, sequence: int, payload: PromoteIn):
    """Promote to ``channelIds`` (ids or slugs) by the promote page's rules: images customers
    will fail to pull, or whose checks are still running after 30 s, need ``promoteAnyway``."""
    require(request, "can_edit_releases")
    found = get_app(request, app, write=True)
    release = get_object_or_404(Release.objects.select_related("app"), app=found, sequence=sequence)
    channels = [get_channel(found, ref) for ref in payload.channelIds]
    blockers = services.release_promote_blockers(release)
    if blockers:
        raise ApiError(400, "The release cannot be promoted: fix its files first.", {"spec": blockers})
    pending = _wait_for_checks(release)
    failing = release_failing_images(release)
    form = PromoteForm({"channels": [c.pk for c in channels], "version_label": payload.versionLabel,
                        "release_notes": payload.releaseNotes, "is_required": payload.isRequired,
                        "promote_anyway": payload.promoteAnyway},
                       app=found, failing_images=failing, pending_images=pending, image_refusals=IMAGE_REFUSALS)
    if not form.is_valid():
        error = error_response(form)
        error.errors = {{"channels": "channelIds", "version_label": "versionLabel", "release_notes": "releaseNotes",
                         "is_required": "isRequired", "promote_anyway": "promoteAnyway"}.get(k, k): v
                        for k, v in error.errors.items()}
        if "promoteAnyway" in error.errors:
            error.errors["images"] = failing or pending
        raise error
    data = form.cleaned_data
    services.release_promote(release=release, channels=data["channels"], user=request.access.user,
                             version_label=data["version_label"], release_notes=data["release_notes"],
                             is_required=data["is_required"], failing_images=failing, request=request)
    return {**_one(found, sequence), "airgapBuilds": []}


@router.post("/app/{app}/channel/{channel}/release/{channelSequence}/demote", response=ChannelReleaseOne,
             summary="Demote a channel release")
def demote_release(request, app: str, channel: str, channelSequence: int):
    require(request, "can_edit_releases")
    found = get_app(request, app, write=True)
    ref = get_channel(found, channel)
    promotion = get_object_or_404(Promotion.objects.select_related("channel", "release"),
                                  channel=ref, channel_sequence=channelSequence)
    services.promotion_demote(promotion=promotion, user=request.access.user, request=request)
    promotion.refresh_from_db()
    return {"release": {
        "channelId": str(ref.pk), "channelName": ref.name, "channelSequence": promotion.channel_sequence,
        "sequence": promotion.release.sequence, "semver": promotion.version_label,
        "releaseNotes": promotion.release_notes, "isDemoted": promotion.is_demoted,
        "demotedAt": promotion.demoted_at, "created": promotion.created_at}}

