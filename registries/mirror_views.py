"""Mirroring pages (issue 4): "Mirror image" from a registry, the job page, the jobs list.

Developers and Admins start and cancel mirrors; Support sees jobs. No page renders a secret.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from portal.roles import team_required

from . import mirror_services
from .mirror_forms import MirrorForm
from .mirror_models import MirrorJob
from .models import ExternalRegistry


def _get_job_for_user(request, pk: int) -> MirrorJob:
    job = MirrorJob.objects.select_related("registry", "created_by").filter(
        team=request.team, pk=pk).first()
    if job is None:
        raise Http404("No such mirror job.")
    return job


@team_required("can_manage_registries")
def mirror_new(request, pk: int):
    registry = ExternalRegistry.objects.filter(team=request.team, pk=pk).first()
    if registry is None:
        raise Http404("No such registry.")
    form = MirrorForm(request.POST or None, initial={"prefix": request.GET.get("prefix", ""),
                                                     "source": request.GET.get("source", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        job = mirror_services.mirror_create(
            team=request.team, registry=registry, source=data["source"],
            target_repository=data["target_repository"], target_tag=data["target_tag"],
            platforms=data["platforms"], push_username=data["push_username"],
            push_password=data["push_password"], user=request.user, request=request)
        return redirect("registries-mirror-detail", pk=job.pk)
    return render(request, "registries/mirror_form.html",
                  {"nav": "registries", "registry": registry, "form": form})


@team_required()
def mirror_detail(request, pk: int):
    job = _get_job_for_user(request, pk)
    context = {"nav": "registries", "job": job,
               "blobs": [line for line in job.log if "digest" in line][::-1],
               "events": [line for line in job.log if "event" in line]}
    if request.htmx:
        html = render_to_string("registries/mirror_detail.html#job-progress", context,
                                request=request)
        return HttpResponseStopPolling(html) if job.is_finished else HttpResponse(html)
    return render(request, "registries/mirror_detail.html", context)


@require_POST
@team_required("can_manage_registries")
def mirror_cancel(request, pk: int):
    job = _get_job_for_user(request, pk)
    if not job.is_finished:
        mirror_services.mirror_cancel(job=job, request=request)
    if request.htmx:
        return HttpResponseClientRedirect(job_url(job))
    return redirect("registries-mirror-detail", pk=job.pk)


def job_url(job: MirrorJob) -> str:
    from django.urls import reverse

    return reverse("registries-mirror-detail", args=[job.pk])


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
    return render(request, "registries/mirror_list.html", {
        "nav": "registries", "page": page, "statuses": MirrorJob.Status.choices,
        "registries": ExternalRegistry.objects.filter(team=request.team),
        "status": status, "registry": registry, "q": q,
    })
