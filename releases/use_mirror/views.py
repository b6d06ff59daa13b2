"""Use a finished mirror in a release: preview the image changes, then apply them.

Developers and Admins (``can_edit_releases``); Support gets 403, another team's app or job 404.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from portal.roles import team_required
from registries.mirror.models import MirrorJob

from ..models import App
from . import services
from .forms import PinForm
from .services import PINS, CannotUseMirror, plan_use_mirror


def _get_job(request, job_id) -> MirrorJob:
    job = MirrorJob.objects.select_related("registry").filter(team=request.team, pk=job_id).first()
    if job is None:
        raise Http404("No such mirror job.")
    return job


def _pin(request) -> str:
    """How the draft names the mirrored image (by tag or digest); anything else is "tag"."""
    form = PinForm(request.POST if "pin" in request.POST else request.GET)
    return form.cleaned_data["pin"] if form.is_valid() else "tag"


@team_required("can_edit_releases")
def release_use_mirror(request, slug, job_id):
    """GET: what would change in the app's newest release; POST: change it (audited)."""
    app = get_object_or_404(App, team=request.team, slug=slug)
    job = _get_job(request, job_id)
    if app.is_archived:
        raise PermissionDenied("This app is archived.")
    pin = _pin(request)
    try:
        if request.method == "POST":
            release, plan = services.release_use_mirror(app=app, job=job, user=request.user, pin=pin, request=request)
        else:
            release, plan = None, plan_use_mirror(app=app, job=job, pin=pin)
    except CannotUseMirror as e:
        return render(request, "releases/use_mirror.html",
                      {"nav": "apps", "app": app, "job": job, "error": str(e)})
    if release is not None:
        where = ", ".join(f"{c.file} line {c.line}" for c in plan.changes)
        created = f" (a new draft from release {plan.base.sequence})" if release.pk != plan.base.pk else ""
        messages.success(request, f"Release {release.sequence}{created} now uses {plan.new_image} "
                                  f"instead of {plan.changes[0].before}: {where}.")
        url = reverse("releases-release-edit", kwargs={"slug": app.slug, "sequence": release.sequence})
        return redirect(f"{url}?{urlencode({'file': plan.changed_files[0]})}")
    if request.method == "POST":
        messages.info(request, "Nothing changed: no container image of the newest release is "
                               f"{job.source_reference}.")
    return render(request, "releases/use_mirror.html", {
        "nav": "apps", "app": app, "job": job, "plan": plan, "pin": pin, "pins": PINS,
    })


@team_required("can_edit_releases")
def use_mirror_pick(request, job_id):
    """The apps whose newest release uses the mirror's source image, to choose one."""
    job = _get_job(request, job_id)
    rows, error = [], ""
    for app in App.objects.filter(team=request.team, archived_at__isnull=True).order_by("name"):
        try:
            plan = plan_use_mirror(app=app, job=job)
        except CannotUseMirror as e:
            error = str(e)
            break
        if plan.changes:
            rows.append((app, plan))
    return render(request, "releases/use_mirror.html",
                  {"nav": "apps", "job": job, "rows": rows, "pick": True, "error": error})
