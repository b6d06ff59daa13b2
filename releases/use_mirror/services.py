"""Point a release at a mirrored image: "Use it in the draft release" of a mirror job.

The release side builds on registries/: it reads a finished MirrorJob and rewrites
every container ``image:`` of the app's newest release that names the job's source (compared
after normalisation, so ``nginx`` matches ``docker.io/library/nginx:latest``). A draft is
changed in place; a promoted release is frozen, so a new draft is created from its files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from portal.audit import audit_log
from registries.mirror.models import MirrorJob
from registries.reference import InvalidReference, parse

from ..manifests import image_spans
from ..models import App, Release

PINS = (("tag", "Tag"), ("digest", "Digest"))


@dataclass(frozen=True)
class ImageChange:
    file: str
    line: int        # 1-based
    before: str      # the image as written
    after: str


@dataclass
class Plan:
    """What using the mirror would change in ``base`` (the app's newest release)."""

    base: Release | None
    new_image: str
    changes: list[ImageChange] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # every file, rewritten

    @property
    def creates_draft(self) -> bool:
        return self.base is not None and not self.base.is_draft

    @property
    def changed_files(self) -> list[str]:
        return list(dict.fromkeys(c.file for c in self.changes))


class CannotUseMirror(Exception):
    """The job cannot be used (not finished well); ``str(e)`` says why."""


def mirrored_image(job: MirrorJob, *, pin: str = "tag") -> str:
    """``<endpoint>/<repository>:<tag>``, or pinned ``<endpoint>/<repository>@<digest>``."""
    if job.status != MirrorJob.Status.SUCCEEDED or not job.result_digest:
        raise CannotUseMirror("This mirror has not finished copying: use it once it succeeded.")
    name = f"{job.registry.endpoint}/{job.target_repository}"
    return f"{name}@{job.result_digest}" if pin == "digest" else f"{name}:{job.target_tag}"


def _same_image(written: str, source: str) -> bool:
    try:
        return str(parse(written)) == source
    except InvalidReference:
        return False


def rewrite(name: str, text: str, *, source: str, new_image: str) -> tuple[str, list[ImageChange]]:
    """``text`` with every container image that is ``source`` (normalised) replaced by
    ``new_image``, keeping the quoting and everything else byte for byte."""
    changes, pieces, last = [], [], 0
    for start, end, image in image_spans(text):
        if not _same_image(image, source) or image == new_image:
            continue
        written = text[start:end]
        quote = written[0] if written[:1] in ("'", '"') else ""
        pieces += [text[last:start], f"{quote}{new_image}{quote}"]
        last = end
        changes.append(ImageChange(name, text.count("\n", 0, start) + 1, image, new_image))
    pieces.append(text[last:])
    return "".join(pieces), changes


def plan_use_mirror(*, app: App, job: MirrorJob, pin: str = "tag") -> Plan:
    new_image = mirrored_image(job, pin=pin)
    base = app.releases.order_by("-sequence").first()
    plan = Plan(base=base, new_image=new_image)
    if base is None:
        return plan
    for f in base.files.all():
        content, changes = rewrite(f.name, f.content, source=job.source_reference, new_image=new_image)
        plan.files.append((f.name, content))
        plan.changes += changes
    return plan


def release_use_mirror(*, app: App, job: MirrorJob, user, pin: str = "tag", request=None) -> tuple[Release | None, Plan]:
    """Apply the plan to the app's draft, or to a new draft when the newest release is promoted.

    Returns the changed release (None when nothing used the source image) and the plan applied.
    """
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=app.pk).first()  # one new draft at a time
        plan = plan_use_mirror(app=app, job=job, pin=pin)
        if not plan.changes:
            return None, plan
        base = Release.objects.select_for_update().get(pk=plan.base.pk)
        if base.is_draft:
            contents = dict(plan.files)
            for f in base.files.filter(name__in=plan.changed_files):
                f.content = contents[f.name]
                f.save(update_fields=["content"])
            base.save(update_fields=["updated_at"])
            release = base
        else:
            release = Release.create_next(app=app, user=user, files=plan.files)
    audit_log(request=request, team=app.team, action="update", obj=release, actor=user,
              detail={"app": app.slug, "release": release.sequence, "mirror_job": job.pk,
                      "from": job.source_reference, "to": plan.new_image,
                      "files": plan.changed_files, "changes": len(plan.changes),
                      "new_draft_from": base.sequence if release.pk != base.pk else None})
    return release, plan


__all__ = ["CannotUseMirror", "ImageChange", "PINS", "Plan", "mirrored_image",
           "plan_use_mirror", "release_use_mirror", "rewrite"]
