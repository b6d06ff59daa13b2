"""Mirroring pages: "Mirror image" from a registry or a release, the job page, the jobs list.

Developers and Admins start and cancel mirrors; Support sees jobs. No page renders a secret.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.forms import form_status
from portal.htmx import render_live
from portal.roles import team_required

from ..models import ExternalRegistry
from . import services as mirror_services
from .forms import MirrorForm, origin_app
from .models import MirrorJob


def _get_job_for_user(request, pk: int) -> MirrorJob:
    job = MirrorJob.objects.select_related("registry", "created_by").filter(
        team=request.team, pk=pk).first()
    if job is None:
        raise Http404("No such mirror job.")
    return job


@team_required("can_manage_registries")
def mirror_new(request, pk: int):
    """Mirror an image into this registry (its page's "Mirror image")."""
    registry = ExternalRegistry.objects.filter(team=request.team, pk=pk).first()
    if registry is None:
        raise Http404("No such registry.")
    return _mirror_form(request, registry=registry)


@team_required("can_manage_registries")
def mirror_new_any(request):
    """Mirror an image, choosing the target registry (from a release's image list)."""
    return _mirror_form(request, registry=None)


def _mirror_form(request, *, registry: ExternalRegistry | None):
    registries = None if registry else ExternalRegistry.objects.filter(team=request.team).order_by("endpoint", "pk")
    initial = {key: request.GET.get(key, "") for key in ("prefix", "source", "app")}
    form = MirrorForm(request.POST or None, initial=initial, registries=registries)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        job = mirror_services.mirror_create(
            team=request.team, registry=registry or data["registry"], source=data["source"],
            target_repository=data["target_repository"], target_tag=data["target_tag"],
            platforms=data["platforms"], push_username=data["push_username"],
            push_password=data["push_password"], user=request.user, request=request)
        return redirect(job_url(job, app=data["app"]))
    return render(request, "registries/mirror/form.html", {
        "nav": "registries", "registry": registry, "form": form,
        "no_registries": registries is not None and not registries.exists(),
        "any_ecr": registry.is_ecr if registry else any(r.is_ecr for r in registries),
        "origin_app": origin_app(form["app"].value()),
    }, status=form_status(form))


@team_required()
def mirror_detail(request, pk: int):
    job = _get_job_for_user(request, pk)
    context = {"nav": "registries", "job": job, "origin_app": origin_app(request.GET.get("app")),
               "blobs": [line for line in job.log if "digest" in line][::-1],
               "events": [line for line in job.log if "event" in line]}
    return render_live(request, "registries/mirror/detail.html", context, partial="job-progress",
                       done=job.is_finished)


@require_POST
@team_required("can_manage_registries")
def mirror_cancel(request, pk: int):
    job = _get_job_for_user(request, pk)
    if not job.is_finished:
        mirror_services.mirror_cancel(job=job, request=request)
    if request.htmx:
        return HttpResponseClientRedirect(job_url(job))
    return redirect("registries-mirror-detail", pk=job.pk)


def job_url(job: MirrorJob, *, app: str = "") -> str:
    url = reverse("registries-mirror-detail", args=[job.pk])
    return f"{url}?{urlencode({'app': app})}" if app else url


@team_required()
def mirror_list(request):
    jobs = MirrorJob.objects.filter(team=request.team).select_related("registry", "created_by")
    status = request.GET.get("status", "")
    registry = request.GET.get("registry", "")
    q = request.GET.get("q", "").strip()
    if status in MirrorJob.Status.values:
        jobs = jobs.filter(status=status)
    if registry.isdigit():
        jobs = jobs.filter(registry_id=int(registry))
    if q:
        jobs = jobs.filter(source_reference__icontains=q) | jobs.filter(
            target_repository__icontains=q)
    page = Paginator(jobs.order_by("-created_at", "-pk"), 25).get_page(request.GET.get("page"))
    return render(request, "registries/mirror/list.html", {
        "nav": "registries", "page": page, "statuses": MirrorJob.Status.choices,
        "registries": ExternalRegistry.objects.filter(team=request.team),
        "status": status, "registry": registry, "q": q,
    })
