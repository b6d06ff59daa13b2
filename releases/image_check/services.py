"""The private-image check at release time: is each image public, private and
proxied, or private and out of the portal's reach?

KOTS finds out at the customer's site (``IsPrivateImage``: an anonymous manifest fetch; success
means public). The portal asks the same question when a release is saved or promoted, so the
vendor learns before a customer does:

1. an anonymous manifest fetch succeeds (Docker Hub with its anonymous token): **public**;
2. else the image's registry is linked to the team, available to this app, and its stored
   credentials can read the manifest: **private**, customers pull it through the proxy;
3. else **private and not linked**: customers will fail to pull it.

A transient failure of step 2 (timeout, 5xx) is "could not check", never a false alarm.
The read that decides it is a HEAD and then the manifest tree (``registries.oci.tree``: one
GET per manifest, no blob; skipped when the digest is the one the last check read), so the
verdict also records what the reference resolved to: the digest, media type and size of its top
manifest and every node under it. A release's first promotion
pins exactly that (``releases.entitlements.services``).

An image written on the portal's own proxy host (``<proxy>/proxy/<this app>/<name>``) is
checked as the upstream image behind it, which is what the proxy will pull; under another
app's slug it fails: a license of this app cannot pull another app's images.
Verdicts are rows (``ImageVerdict``) per app and normalised reference, reused for
``VERDICT_TTL``; ``verdict_predicate`` turns them into the downstream's "is it proxied?"
decision, falling back to "on a linked registry" for images not checked yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from portal.publish import publish
from registries.credentials import registry_pull_client
from registries.errors import RegistryError
from registries.models import ExternalRegistry
from registries.oci.tree import manifest_tree
from registries.reference import InvalidReference, Reference, parse
from registries.services import unexpected_error_message
from releases.models import Release

from ..entitlements.upstream import OtherApp, upstream_of
from ..selectors import registries_for_app
from .models import ImageVerdict, Verdict
from .selectors import release_references, release_verdicts, verdicts_needing_queue

# Queued by name: the tasks module calls these services (the names they were registered under).
CHECK_RELEASE_TASK = "releases.tasks.check_release_images"
CHECK_VERDICT_TASK = "releases.tasks.check_image_verdict"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    verdict: str
    message: str
    registry: object | None = None
    # The manifest tree the reference resolved to (top first); empty when it could not be read.
    tree: list = field(default_factory=list)


def _resolve(client, upstream: Reference, known: list) -> list:
    """The tree under ``upstream`` read with ``client``: a HEAD, then one GET per manifest unless
    ``known`` (the tree an earlier check read) is the tree of the same digest. A re-check of an
    unchanged image costs one HEAD, which Docker Hub does not count as a pull."""
    digest = client.head_manifest(upstream.path, upstream.reference).digest
    if known and known[0].get("digest") == digest:
        return known
    # By digest: the tag may move between the HEAD and the GETs.
    return manifest_tree(client, upstream.path, digest)


def check_image(*, app, ref: Reference, known: list = ()) -> CheckResult:
    """What one image of ``app`` is, and what it resolves to. Talks to the registries."""
    try:
        upstream = upstream_of(app, ref, ExternalRegistry.objects.filter(team_id=app.team_id))
    except OtherApp as e:
        return CheckResult(Verdict.UNLINKED,
                           f"{e} Customers of this app cannot pull it: write the image's own "
                           f"name, or its path under /proxy/{app.slug}/.")
    registry = next((r for r in registries_for_app(app) if r.endpoint == upstream.domain), None)
    insecure = registry.insecure if registry is not None else False
    try:
        anonymous = registry_pull_client(registry=None, endpoint=upstream.domain,
                                         insecure=insecure)
        tree = _resolve(anonymous, upstream, list(known))
        return CheckResult(Verdict.PUBLIC, "Anyone can pull it.", None, tree)
    except RegistryError as e:
        anonymous_error = e
    if registry is None:
        return CheckResult(
            Verdict.UNLINKED,
            f"It cannot be pulled anonymously ({anonymous_error.message}) and {upstream.domain} "
            "is not a registry linked to this team and app: customers will fail to pull it. "
            "Link the registry under External registries.")
    try:
        tree = _resolve(registry_pull_client(registry=registry), upstream, list(known))
    except RegistryError as e:
        if not e.permanent or e.code == "bad_endpoint":
            return CheckResult(Verdict.ERROR, f"Could not check it: {e.message}", registry)
        return CheckResult(
            Verdict.UNLINKED,
            f"It is private and the linked registry's credentials cannot read it: {e.message} "
            "Customers will fail to pull it.", registry)
    return CheckResult(Verdict.PRIVATE,
                       f"Private: customers pull it through the proxy ({registry}).", registry,
                       tree)


def release_check_images(*, release_id: int, force: bool = False) -> int:
    """Check every image of a release whose verdict is missing or stale; the number checked."""
    release = Release.objects.select_related("app").filter(pk=release_id).first()
    if release is None:
        return 0
    app = release.app
    checked = 0
    for ref in release_references(release):
        row, _ = ImageVerdict.objects.get_or_create(app=app, reference=str(ref))
        if row.is_fresh and not force:
            continue
        _check_row(row, app=app, ref=ref)
        checked += 1
    return checked


def _check_row(row: ImageVerdict, *, app, ref: Reference) -> str:
    try:
        result = check_image(app=app, ref=ref, known=row.tree)
    except Exception as e:
        # Whatever went wrong, the row must leave Checking (the page polls until it does); the
        # traceback is for the worker's log, the page gets the error's type only.
        logger.exception("image check: app %s: %s crashed", app.pk, ref)
        result = CheckResult(Verdict.ERROR, unexpected_error_message(e))
    top = result.tree[0] if result.tree else {}
    # Short write, outside any network wait. A verdict that read nothing clears what an
    # earlier one resolved: a pin is only ever taken from a tree read now.
    ImageVerdict.objects.filter(pk=row.pk).update(
        verdict=result.verdict, message=result.message, registry=result.registry,
        checked_at=timezone.now(), queued_at=None, digest=top.get("digest", ""),
        media_type=top.get("mediaType", ""), size=top.get("size", 0), tree=result.tree)
    logger.info("image check: app %s: %s -> %s", app.pk, ref, result.verdict)
    return result.verdict


def verdict_check(*, verdict_id: int) -> str | None:
    """Check one verdict row's image (the sweep's unit of work); None when there is nothing to do."""
    row = ImageVerdict.objects.select_related("app").filter(pk=verdict_id).first()
    if row is None or row.is_fresh:
        return None
    try:
        ref = parse(row.reference)
    except InvalidReference:  # cannot happen for rows we wrote; never loop on it
        row.delete()
        return None
    return _check_row(row, app=row.app, ref=ref)


def release_queue_image_check(*, release, force: bool = False) -> None:
    """Mark the release's missing or stale verdicts Checking and queue the check after commit."""
    stale = []
    for ref, row in release_verdicts(release):
        if row is None:
            ImageVerdict.objects.get_or_create(app_id=release.app_id, reference=str(ref))
            stale.append(ref)
        elif force or not row.is_fresh:
            ImageVerdict.objects.filter(pk=row.pk).update(verdict=Verdict.CHECKING)
            stale.append(ref)
    if stale:
        transaction.on_commit(lambda: _send(release.pk, force))


def _send(release_id: int, force: bool) -> None:
    # A broker that is down leaves the rows Checking with no ``queued_at``: beat's sweep
    # (``verdicts_sweep_pending``) queues them once the broker answers.
    if publish(CHECK_RELEASE_TASK, release_id, force=force):
        release = Release.objects.filter(pk=release_id).first()
        if release is not None:
            refs = [str(ref) for ref in release_references(release)]
            ImageVerdict.objects.filter(app_id=release.app_id, reference__in=refs,
                                        verdict=Verdict.CHECKING).update(queued_at=timezone.now())


def verdicts_sweep_pending() -> int:
    """Beat: queue the checks that were never queued (broker down) or were lost; the number."""
    queued = 0
    for row in verdicts_needing_queue().only("pk", "queued_at"):
        now = timezone.now()
        # Claim the row (a conditional update): two sweeps never queue the same row twice.
        claimed = ImageVerdict.objects.filter(pk=row.pk, queued_at=row.queued_at,
                                              verdict=Verdict.CHECKING).update(queued_at=now)
        if not claimed:
            continue
        if not publish(CHECK_VERDICT_TASK, row.pk):
            ImageVerdict.objects.filter(pk=row.pk, queued_at=now).update(queued_at=row.queued_at)
            break  # the broker is down: the next sweep tries again
        queued += 1
    return queued


def release_checks_ensure(release) -> None:
    """Before a page shows the release's checks: queue the images never checked (or checked
    long ago), so viewing a release starts its check."""
    if any(row is None or (not row.is_fresh and row.verdict != Verdict.CHECKING)
           for _, row in release_verdicts(release)):
        release_queue_image_check(release=release)
