"""Vendor-side pages of delivery: the release's image check and the app's proxy
setting. The proxy registry itself is proxy/views.py; the pull logs are template tags
(proxy/templatetags/pull_log.py) on the registry and customer pages."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from portal.audit import audit_log
from portal.htmx import render_live
from portal.roles import team_required
from releases.models import Release
from releases.views import _get_app

from .forms import ProxyPublicForm
from .selectors import release_image_rows
from .services import release_checks_ensure, release_queue_image_check


@team_required()
@require_http_methods(["GET", "POST"])
def release_images(request, slug, sequence):
    """The image-check panel (polled by htmx while checks run); POST checks again."""
    app = _get_app(request, slug)
    release = get_object_or_404(Release, app=app, sequence=sequence)
    if request.method == "POST":
        if not request.membership.can_edit_releases:
            raise PermissionDenied("Your role does not allow this.")
        release_queue_image_check(release=release, force=True)
        if not request.htmx:
            return redirect("releases-release-detail", slug=app.slug, sequence=release.sequence)
    else:
        release_checks_ensure(release)
    context = {**release_image_rows(release), "release": release,
               "membership": request.membership}
    # One template for the page's panel and its polled fragment; polling stops when every
    # verdict is in.
    return render_live(request, "releases/_image_checks.html", context, done=not context["pending"])


@team_required("can_edit_releases")
@require_POST
def app_proxy_public(request, slug):
    """The app setting "Proxy public images too"."""
    app = _get_app(request, slug, write=True)
    form = ProxyPublicForm(request.POST)
    form.is_valid()  # a checkbox: absent or anything but "on"-like values mean False
    value = bool(form.cleaned_data.get("proxy_public_images"))
    if value != app.proxy_public_images:
        app.proxy_public_images = value
        app.save(update_fields=["proxy_public_images"])
        audit_log(request=request, team=request.team, action="app.proxy_public_images", obj=app,
                  detail={"proxy_public_images": value})
    messages.success(request, "Public images are proxied too." if value
                     else "Only private images are proxied.")
    return redirect("releases-app-edit", slug=app.slug)
