"""Delivery to customers: the update check API and license sync.

``GET /release/<app slug>/pending?channelSequence=N`` and ``GET /release/<app slug>?channelSequence=N``
are what the admin console's "Check for Updates" calls (KOTS ``pkg/upstream/replicated.go``),
authenticated with HTTP Basic ``licenseID:licenseID``. ``GET /license/<app slug>?licenseSequence=N``
is its license sync (KOTS ``pkg/license``), with the same credentials.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from portal import throttle

from ..downstream import release_pins
from ..kustomize import YAML_SUFFIXES, pinned_text, tar_gz
from ..licenses import license_yaml, rfc3339
from ..models import Promotion
from .access import check_basic_auth
from .forms import parse_sequence
from .selectors import channel_release, pending_releases, release_archive_name


def channel_release_json(promotion: Promotion) -> dict:
    return {
        "channelSequence": promotion.channel_sequence,
        "releaseSequence": promotion.release.sequence,
        "versionLabel": promotion.version_label,
        "isRequired": promotion.is_required,
        "createdAt": rfc3339(promotion.created_at),
        "releaseNotes": promotion.release_notes,
    }


def _json_error(status: int, message: str, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Vendor Portal updates"'
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _api_customer(request, app_slug):
    """(customer, None) or (None, error response). Failures count towards the address's
    throttle; a valid license passes whatever the count."""
    check = check_basic_auth(request.headers.get("Authorization", ""), app_slug=app_slug)
    if not check.ok:
        seconds = throttle.record_failure(throttle.client_address(request))
        if seconds is not None:
            return None, _json_error(429, throttle.refusal_message(seconds), retry_after=seconds)
        return None, _json_error(check.status, check.error)
    return check.customer, None


@csrf_exempt
@require_GET
def release_pending(request, app_slug):
    customer, error = _api_customer(request, app_slug)
    if error:
        return error
    try:
        after = parse_sequence(request.GET.get("channelSequence"))
    except ValueError as e:
        return _json_error(400, str(e))
    releases = pending_releases(customer=customer, after=after)
    return JsonResponse({"channelReleases": [channel_release_json(p) for p in releases]})


@csrf_exempt
@require_GET
def release_download(request, app_slug):
    """The release's files as written, as a tar.gz (the newest when no channelSequence), with
    each pinned image written ``name:tag@digest``: KOTS renders these files itself and keeps a
    digest written in an image, so a tag moved upstream since the promotion changes nothing."""
    customer, error = _api_customer(request, app_slug)
    if error:
        return error
    try:
        sequence = parse_sequence(request.GET.get("channelSequence"), default=None)
    except ValueError as e:
        return _json_error(400, str(e))
    promotion = channel_release(customer=customer, channel_sequence=sequence)
    if promotion is None:
        return _json_error(404, "No such release on this license's channel.")
    pins = release_pins(promotion.release)
    files = {f.name: pinned_text(f.content, pins) if f.name.lower().endswith(YAML_SUFFIXES) else f.content
             for f in promotion.release.files.all()}
    name = release_archive_name(promotion, customer.app.slug)
    response = HttpResponse(tar_gz(files), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
    return response


@csrf_exempt
@require_GET
def license_sync(request, app_slug):
    """The current signed license, always (200), whatever ``licenseSequence`` the install sends.

    KOTS decodes any answer below 400 as a License and compares the sequences itself, so a
    "not modified" or an error for a stale or malformed sequence would break its sync."""
    customer, error = _api_customer(request, app_slug)
    if error:
        return error
    response = HttpResponse(license_yaml(customer), content_type="application/yaml; charset=utf-8")
    # The file holds the customer's credential: keep it out of caches.
    response["Cache-Control"] = "no-store"
    return response
