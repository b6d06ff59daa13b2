"""External registries, mirror jobs and a release's image checks.

Registries follow Replicated (``/v3/external_registry``, ``/v3/external_registries``,
``PUT /v3/external_registry/test``, ``DELETE /v3/external_registry/{endpoint}``), checked by the
Add External Registry form and saved by the same services. A registry in a path is its endpoint
(``123456789012.dkr.ecr.us-east-2.amazonaws.com``, URL-escaped), its short name or its id.
Mirror jobs and image checks have no Replicated equivalent; their shapes are the pages'.

Waiting on the worker: adding or testing a registry and re-checking a release's images run on
the Celery worker, as from the pages. The route waits up to ``WAIT_SECONDS`` for the outcome and
answers it (``status`` and ``message``); when the worker is slower (or the broker is down: the
row stays Pending and beat's sweep queues it), it answers 202 with ``pollUrl``, the route that
shows the outcome when it is in. The wait is asynchronous (short database reads between sleeps),
so a waiting call holds no thread that other requests need.

Secrets: a registry's password and a mirror job's push password are written, never read back:
no answer, log line or audit entry carries them.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.html import strip_tags
from ninja import Field, Query, Router, Schema, Status

from registries import services as registry_services
from registries.forms import RegistryForm, TestImageForm
from registries.mirror import services as mirror_services
from registries.mirror.forms import MirrorForm
from registries.mirror.models import MirrorJob
from registries.models import ExternalRegistry
from registries.reference import normalize_endpoint
from releases.image_check.models import Verdict
from releases.image_check.selectors import release_image_rows
from releases.image_check.services import release_checks_ensure, release_queue_image_check
from releases.models import App, Release

from .access import get_app, require
from .conventions import ApiError, PageParams, error_response, idempotent, paginate

router = Router(tags=["registries, mirror jobs and image checks"])

MANAGE = "can_manage_registries"
WAIT_SECONDS = float(settings.PORTAL_API_WAIT_SECONDS)
# The registry form's field names as Replicated's body spells them.
_BODY_NAMES = {"name": "slug", "test_image": "testImage", "apps": "appIds", "skip_validation": "skipValidation",
               "direct_downloads": "directDownloads"}
_MIRROR_NAMES = {"target_repository": "targetRepository", "target_tag": "targetTag",
                 "push_username": "pushUsername", "push_password": "pushPassword"}


async def wait_until(read, done, *, seconds: float | None = None):
    """Call ``read()`` (a short, synchronous database read) until ``done(value)`` or the deadline;
    the last value. Sleeps between reads grow from 0.1 s to 1 s."""
    deadline = time.monotonic() + (WAIT_SECONDS if seconds is None else seconds)
    read_async = sync_to_async(read)
    delay = 0.1
    while True:
        value = await read_async()
        left = deadline - time.monotonic()
        if done(value) or left <= 0:
            return value
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 1.0)


def _form_errors(form, names: dict) -> ApiError:
    """A form's errors under the body's names, as text (the page's messages may hold a link)."""
    errors = {names.get(k, k): [strip_tags(str(m)) for m in v] for k, v in form.errors.items()}
    return error_response(DjangoValidationError(errors))


# --- external registries ----------------------------------------------------------------------


class RegistryIn(Schema):
    provider: str = Field("ecr", max_length=20)
    endpoint: str = Field("", max_length=1000)
    slug: str = Field("", max_length=200)
    authType: str = Field("password", max_length=20)
    username: str = Field("", max_length=1000)
    password: str = Field("", max_length=100_000)
    appIds: list[str] = Field(default_factory=list, max_length=1000)
    skipValidation: bool = False
    testImage: str = Field("", max_length=1000)
    insecure: bool = False
    directDownloads: bool = False  # ECR only: the Add External Registry form's S3 option


class RegistryTestIn(Schema):
    endpoint: str = Field(..., max_length=1000)
    image: str = Field("", max_length=1000)


def registry_out(registry: ExternalRegistry) -> dict:
    """Replicated's ``Registry`` and what the registry page shows of its check. Never the secret."""
    apps = getattr(registry, "linked_apps", None)
    return {
        "id": str(registry.pk), "provider": registry.provider, "endpoint": registry.endpoint,
        "slug": registry.name, "authType": "password", "username": registry.username,
        "appIds": [str(a.pk) for a in (apps if apps is not None else registry.apps.all())],
        "lastUsedAt": registry.last_used_at, "testImage": registry.test_image,
        "insecure": registry.insecure, "directDownloads": registry.direct_downloads,
        "status": registry.status, "statusMessage": registry.status_message,
        "warning": registry.warning, "lastCheckedAt": registry.last_checked_at,
    }


def _with_apps(registries):
    return registries.prefetch_related(Prefetch("apps", queryset=App.objects.order_by("pk"), to_attr="linked_apps"))


def _registries(request):
    return _with_apps(ExternalRegistry.objects.filter(team=request.team))


def get_registry(request, ref: str) -> ExternalRegistry:
    """The team's registry by endpoint (as typed or canonical), short name or id; else 404."""
    registries = _registries(request)
    ref = ref.strip()
    try:
        endpoint = normalize_endpoint(ref)
    except ValueError:
        endpoint = ref
    found = (registries.filter(endpoint=endpoint).first() or registries.filter(name=ref).first()
             or (registries.filter(pk=int(ref)).first() if ref.isdigit() else None))
    if found is None:
        raise Http404("No such registry.")
    return found


def _poll_url(registry: ExternalRegistry) -> str:
    return reverse("vendor_api:external-registry", kwargs={"ref": registry.endpoint})


def _outcome(registry: ExternalRegistry) -> dict:
    """The check's outcome: ``status`` (connected, failed, validating, ...) and its ``message``."""
    busy = registry.is_busy
    message = registry.status_message or ("The worker is checking the registry." if busy else "")
    body = {"external_registry": registry_out(registry), "status": registry.status, "message": message}
    if busy:
        body["pollUrl"] = _poll_url(registry)
    return body


def _reread(pk: int):
    def read():
        return _with_apps(ExternalRegistry.objects.filter(pk=pk)).first()
    return read


def _app_pks(request, refs: list[str]) -> list[int]:
    pks, unknown = [], []
    for ref in refs:
        try:
            pks.append(get_app(request, ref).pk)
        except Http404:
            unknown.append(ref)
    if unknown:
        raise error_response(DjangoValidationError({"appIds": f"Your team has no app {', '.join(unknown)}."}))
    return pks


def _add(request, payload: RegistryIn):
    require(request, MANAGE, team_level=True)

    def create():
        data = {"provider": payload.provider, "endpoint": payload.endpoint, "username": payload.username,
                "password": payload.password, "name": payload.slug, "test_image": payload.testImage,
                "apps": _app_pks(request, payload.appIds), "insecure": payload.insecure,
                "direct_downloads": payload.directDownloads,
                "skip_validation": payload.skipValidation}
        apps = request.team.apps.filter(archived_at__isnull=True)
        form = RegistryForm(data, team=request.team, apps=apps)
        if not form.is_valid():
            raise _form_errors(form, _BODY_NAMES)
        registry = ExternalRegistry(team=request.team)
        form.apply(registry)
        try:
            registry_services.registry_create(
                registry=registry, apps=form.cleaned_data["apps"], skip_validation=payload.skipValidation,
                user=request.access.user, request=request)
        except DjangoValidationError as e:
            raise error_response(e) from None
        return 201, {"external_registry": {"id": str(registry.pk)}}

    return int(idempotent(request, create).value["external_registry"]["id"])


@router.post("/external_registry", response={201: dict, 202: dict}, summary="Add an external registry")
async def add_registry(request, payload: RegistryIn):
    """As Add External Registry: the worker checks the credentials live (unless
    ``skipValidation``); the answer waits for it up to 30 s (201 with ``status`` connected or
    failed and the reason), else 202 with ``pollUrl``."""
    pk = await sync_to_async(_add)(request, payload)
    registry = await wait_until(_reread(pk), lambda r: r is None or not r.is_busy)
    if registry is None:
        raise Http404("The registry was deleted meanwhile.")
    body = await sync_to_async(_outcome)(registry)
    return Status(202 if registry.is_busy else 201, body)


@router.get("/external_registries", response=dict, summary="List external registries")
def list_registries(request):
    """The team's registries (two queries)."""
    return {"external_registries": [registry_out(r) for r in _registries(request).order_by("endpoint")]}


def _test(request, payload: RegistryTestIn) -> int:
    require(request, MANAGE, team_level=True)
    registry = get_registry(request, payload.endpoint)
    form = TestImageForm({"image": payload.image})
    if not form.is_valid():
        raise _form_errors(form, {})
    registry_services.registry_test(registry=registry, image=form.cleaned_data["image"],
                                    user=request.access.user, request=request)
    return registry.pk


# Before "/external_registry/{ref}": Django takes the first pattern that matches.
@router.put("/external_registry/test", response={200: dict, 202: dict}, summary="Test an external registry")
async def test_registry(request, payload: RegistryTestIn):
    """Log in and read ``image`` ("" checks the login only) on the worker, as the registry
    page's Test. ``status`` is 200 when it worked, 400 when it failed (Replicated's), with
    ``state`` and ``message``; 202 with ``pollUrl`` when the worker has not answered in 30 s."""
    pk = await sync_to_async(_test)(request, payload)
    registry = await wait_until(_reread(pk), lambda r: r is None or not r.is_busy)
    if registry is None:
        raise Http404("The registry was deleted meanwhile.")
    body = await sync_to_async(_outcome)(registry)
    if registry.is_busy:
        return Status(202, {"status": 202, "state": registry.status, "message": body["message"],
                     "pollUrl": body["pollUrl"]})
    ok = registry.status == "connected"
    return Status(200, {"status": 200 if ok else 400, "state": registry.status,
                        "message": registry.status_message})


@router.get("/external_registry/{ref}", response=dict, url_name="external-registry",
            summary="Get an external registry and its check")
def get_one_registry(request, ref: str):
    return _outcome(get_registry(request, ref))


@router.delete("/external_registry/{ref}", response={204: None}, summary="Remove an external registry")
def delete_registry(request, ref: str):
    require(request, MANAGE, team_level=True)
    registry = get_registry(request, ref)
    registry_services.registry_delete(registry=registry, user=request.access.user, request=request)
    return Status(204, None)


# --- mirror jobs ------------------------------------------------------------------------------


class MirrorIn(Schema):
    source: str = Field(..., max_length=1000)
    registry: str = Field(..., max_length=1000, description="The target: a linked registry's endpoint, name or id.")
    targetRepository: str = Field("", max_length=1000)
    targetTag: str = Field("", max_length=1000)
    prefix: str = Field("", max_length=1000)
    platforms: str = Field("", max_length=1000)
    pushUsername: str = Field("", max_length=1000)
    pushPassword: str = Field("", max_length=100_000)


class MirrorFilters(PageParams):
    status: str = Field("", max_length=20)


def mirror_out(job: MirrorJob) -> dict:
    """A job and its progress (never its push password)."""
    return {
        "id": str(job.pk), "source": job.source_reference, "registry": job.registry.endpoint,
        "targetRepository": job.target_repository, "targetTag": job.target_tag, "target": job.target_reference,
        "platforms": job.platforms, "state": job.status, "percent": job.percent,
        "bytesDone": job.bytes_done, "bytesTotal": job.bytes_total,
        "blobsDone": job.blobs_done, "blobsTotal": job.blobs_total,
        "digest": job.result_digest, "mirroredReference": job.mirrored_reference if job.result_digest else "",
        "skipped": job.result_skipped, "error": job.error, "pushCredentials": job.has_push_credentials,
        "createdAt": job.created_at, "startedAt": job.started_at, "finishedAt": job.finished_at,
        "pollUrl": reverse("vendor_api:mirror-job", kwargs={"job_id": job.pk}),
    }


def _jobs(request):
    return MirrorJob.objects.filter(team=request.team).select_related("registry")


@router.post("/mirror_job", response={201: dict}, summary="Mirror an image into a linked registry")
def create_mirror_job(request, payload: MirrorIn):
    """As "Mirror image": the worker copies it; poll ``pollUrl`` for its progress."""
    require(request, MANAGE, team_level=True)
    target = get_registry(request, payload.registry)

    def create():
        form = MirrorForm({"registry": target.pk, "source": payload.source, "prefix": payload.prefix,
                           "target_repository": payload.targetRepository, "target_tag": payload.targetTag,
                           "platforms": payload.platforms, "push_username": payload.pushUsername,
                           "push_password": payload.pushPassword},
                          registries=ExternalRegistry.objects.filter(team=request.team))
        if not form.is_valid():
            raise _form_errors(form, _MIRROR_NAMES)
        data = form.cleaned_data
        job = mirror_services.mirror_create(
            team=request.team, registry=data["registry"], source=data["source"],
            target_repository=data["target_repository"], target_tag=data["target_tag"],
            platforms=data["platforms"], push_username=data["push_username"],
            push_password=data["push_password"], user=request.access.user, request=request)
        return 201, {"mirror_job": {"id": str(job.pk)}}

    created = idempotent(request, create).value
    return Status(201, {"mirror_job": mirror_out(_jobs(request).get(pk=int(created["mirror_job"]["id"])))})


@router.get("/mirror_job/{job_id}", response=dict, url_name="mirror-job", summary="A mirror job and its progress")
def get_mirror_job(request, job_id: int):
    return {"mirror_job": mirror_out(get_object_or_404(_jobs(request), pk=job_id))}


@router.get("/mirror_jobs", response=dict, summary="List mirror jobs")
def list_mirror_jobs(request, filters: Query[MirrorFilters]):
    jobs = _jobs(request).order_by("-created_at", "-pk")
    if filters.status:
        jobs = jobs.filter(status=filters.status)
    page, total = paginate(jobs, filters)
    return {"mirror_jobs": [mirror_out(j) for j in page], "totalCount": total}


# --- a release's image checks -------------------------------------------------------------------


def _release(request, app: str, sequence: int, *, write: bool = False) -> Release:
    found = get_app(request, app, write=write)
    return get_object_or_404(Release.objects.select_related("app"), app=found, sequence=sequence)


def image_checks_out(release: Release) -> dict:
    """What the release page's image panel shows: each image's verdict, its pin once promoted."""
    rows = release_image_rows(release)
    images = []
    for ref, verdict, pin in rows["rows"]:
        images.append({
            "image": str(ref),
            "verdict": verdict.verdict if verdict else Verdict.CHECKING.value,
            "label": verdict.get_verdict_display() if verdict else Verdict.CHECKING.label,
            "message": verdict.message if verdict else "",
            "fails": bool(verdict and verdict.fails),
            "digest": verdict.digest if verdict else "",
            "checkedAt": verdict.checked_at if verdict else None,
            "pinnedDigest": pin.digest if pin else "",
        })
    return {"images": images, "pending": rows["pending"], "failing": rows["failing"],
            "pollUrl": reverse("vendor_api:image-checks", kwargs={"app": release.app.slug,
                                                                  "sequence": release.sequence})}


@router.get("/app/{app}/release/{sequence}/image-checks", response=dict, url_name="image-checks",
            summary="A release's image checks")
def get_image_checks(request, app: str, sequence: int):
    """Can customers pull each image? Public, private through the proxy, or failing. Viewing
    starts the check of images never checked (or checked long ago), as the release page does."""
    release = _release(request, app, sequence)
    release_checks_ensure(release)
    return image_checks_out(release)


def _recheck(request, app: str, sequence: int) -> Release:
    require(request, "can_edit_releases")
    release = _release(request, app, sequence)
    release_queue_image_check(release=release, force=True)
    return release


@router.post("/app/{app}/release/{sequence}/image-checks", response={200: dict, 202: dict},
             summary="Check a release's images again")
async def recheck_images(request, app: str, sequence: int):
    """Check every image again on the worker; answer when all verdicts are in (up to 30 s),
    else 202 with ``pollUrl``. ``failing`` counts the images customers will fail to pull."""
    release = await sync_to_async(_recheck)(request, app, sequence)
    body = await wait_until(lambda: image_checks_out(release), lambda b: not b["pending"])
    return Status(202 if body["pending"] else 200, body)

