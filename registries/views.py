"""The registries pages: list, add, detail, edit, test, delete.

Developers and Admins manage registries; Support sees them. No page ever renders a secret.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from portal.audit import audit_log
from portal.forms import form_status
from portal.htmx import render_live
from portal.roles import team_required
from releases.selectors import registry_image_uses

from . import iam, services
from .forms import PRESETS, RegistryForm, TestImageForm
from .models import POLL_SCHEDULE, POLL_SLOW, ExternalRegistry

_POLL_PACES = [interval for _, interval in POLL_SCHEDULE] + [POLL_SLOW]  # fastest first


def _poll_interval(busy: list[ExternalRegistry]) -> str:
    """The page polls at the pace of its youngest validation ("" when nothing is busy)."""
    now = timezone.now()
    return min((r.poll_interval(now) for r in busy), key=_POLL_PACES.index, default="")


def _get_registry_for_user(request: HttpRequest, pk: int) -> ExternalRegistry:
    """The team's registry or 404 (another team's registry does not exist for this user)."""
    registry = ExternalRegistry.objects.filter(team=request.team, pk=pk).first()
    if registry is None:
        raise Http404("No such registry.")
    return registry


def _team_apps(request):
    return request.team.apps.filter(archived_at__isnull=True).order_by("name")


# --- pages ------------------------------------------------------------------------------------


@team_required()
def registry_list(request):
    registries = list(request.team.external_registries.all())
    busy = [r for r in registries if r.is_busy]
    context = {"nav": "registries", "registries": registries, "busy": bool(busy),
               "poll": _poll_interval(busy)}
    return render_live(request, "registries/list.html", context, partial="registry-table", done=not busy)


def _form_context(request, form, registry=None):
    return {"nav": "registries", "form": form, "registry": registry, "presets": PRESETS}


@team_required("can_manage_registries")
@require_http_methods(["GET", "POST"])
def registry_add(request):
    form = RegistryForm(request.POST or None, team=request.team, apps=_team_apps(request))
    if request.method == "POST" and form.is_valid():
        registry = ExternalRegistry(team=request.team)
        form.apply(registry)
        skip = form.cleaned_data["skip_validation"]
        try:
            services.registry_create(registry=registry, apps=form.cleaned_data["apps"],
                                     skip_validation=skip, user=request.user, request=request)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(request, f"Added {registry.endpoint}." + ("" if skip else " Validating it now."))
            return redirect("registries-list")
    return render(request, "registries/form.html", _form_context(request, form), status=form_status(form))


@team_required()
def registry_detail(request, pk: int):
    registry = _get_registry_for_user(request, pk)
    context = {"nav": "registries", "registry": registry, "busy": registry.is_busy,
               "poll": _poll_interval([registry] if registry.is_busy else [])}
    if not request.htmx and registry.is_ecr and registry.ecr_account:
        repositories = sorted({u.repository for u in registry_image_uses(team=request.team, endpoint=registry.endpoint)})
        context["repositories"] = repositories
        context["policy_json"] = iam.pull_policy_json(
            account=registry.ecr_account, region=registry.ecr_region, repositories=repositories
        )
    return render_live(request, "registries/detail.html", context, partial="status-panel", done=not registry.is_busy)


@team_required("can_manage_registries")
@require_http_methods(["GET", "POST"])
def registry_edit(request, pk: int):
    registry = _get_registry_for_user(request, pk)
    form = RegistryForm(request.POST or None, team=request.team, apps=_team_apps(request), instance=registry)
    if request.method == "POST" and form.is_valid():
        old_revision = registry.revision
        changed = form.apply(registry)
        old_apps = set(registry.apps.values_list("pk", flat=True))
        new_apps = {a.pk for a in form.cleaned_data["apps"]}
        if old_apps != new_apps:
            changed.append("apps")
        try:
            with transaction.atomic():
                registry.save()
                registry.apps.set(form.cleaned_data["apps"])
                if changed:
                    audit_log(request=request, team=request.team, action="update", obj=registry,
                              detail=services.registry_audit_detail(registry, changed=changed))
                if registry.revision != old_revision or "test_image" in changed:
                    services.registry_queue_validation(registry=registry)
        except IntegrityError:
            form.add_error("endpoint", services.ENDPOINT_TAKEN)
        else:
            messages.success(request, f"Saved {registry.endpoint}." if changed else "Nothing changed.")
            return redirect("registries-detail", pk=registry.pk)
    return render(request, "registries/form.html", _form_context(request, form, registry),
                  status=form_status(form))


@team_required("can_manage_registries")
@require_http_methods(["GET", "POST"])
def registry_test(request, pk: int):
    registry = _get_registry_for_user(request, pk)
    form = TestImageForm(request.POST or None, initial={"image": registry.test_image})
    if request.method == "POST" and form.is_valid():
        image = form.cleaned_data["image"]
        services.registry_test(registry=registry, image=image, user=request.user, request=request)
        messages.info(request, f"Testing {registry.endpoint}" + (f" with {image}." if image else "."))
        return redirect("registries-detail", pk=registry.pk)
    return render(request, "registries/test.html", {"nav": "registries", "registry": registry, "form": form},
                  status=form_status(form))


@team_required("can_manage_registries")
@require_http_methods(["GET", "POST"])
def registry_delete(request, pk: int):
    registry = _get_registry_for_user(request, pk)
    if request.method == "POST":
        services.registry_delete(registry=registry, user=request.user, request=request)
        messages.success(request, f"Deleted {registry.endpoint}.")
        return redirect("registries-list")
    promoted = [u for u in registry_image_uses(team=request.team, endpoint=registry.endpoint) if u.promoted]
    return render(request, "registries/delete.html",
                  {"nav": "registries", "registry": registry, "promoted_uses": promoted})
