"""Delivery to customers: the update check API and the customer page.

``GET /release/<app slug>/pending?channelSequence=N`` and ``GET /release/<app slug>?channelSequence=N``
are what the admin console's "Check for Updates" calls (KOTS ``pkg/upstream/replicated.go``),
authenticated with HTTP Basic ``licenseID:licenseID``. ``/customer/`` is the same for people:
entered with the license ID or the license file, which is kept in the session.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal import throttle
from portal.forms import form_status

from .customer_portal import (
    SESSION_KEY,
    LicenseForm,
    channel_release,
    channel_release_json,
    channel_releases,
    check_basic_auth,
    check_license,
    parse_sequence,
    pending_releases,
    release_archive_name,
)
from .downstream import downstream_for
from .kustomize import tar_gz
from .licenses import proxy_domain

# --- the update check API ---------------------------------------------------------------------


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
        address = throttle.client_address(request)
        if throttle.is_throttled(address):
            seconds = throttle.retry_after(address)
            return None, _json_error(429, throttle.refusal_message(seconds), retry_after=seconds)
        throttle.count_failure(address)
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
    """The release's files as written, as a tar.gz (the newest when no channelSequence)."""
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
    files = {f.name: f.content for f in promotion.release.files.all()}
    name = release_archive_name(promotion, customer.app.slug)
    response = HttpResponse(tar_gz(files), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
    return response


# --- the customer page ------------------------------------------------------------------------


def _session_customer(request):
    """The signed-in license holder, or None (a license that stopped working signs out)."""
    license_id = request.session.get(SESSION_KEY)
    if not license_id:
        return None
    check = check_license(license_id)
    if not check.ok:
        request.session.pop(SESSION_KEY, None)
        messages.error(request, check.error)
        return None
    return check.customer


def _customer_context(customer, **extra):
    return {"customer": customer, "app": customer.app, "channel": customer.channel,
            "proxy_host": proxy_domain(), **extra}


@require_http_methods(["GET", "POST"])
def customer_home(request):
    customer = _session_customer(request)
    if request.method == "POST":
        form = LicenseForm(request.POST, request.FILES)
        if form.is_valid():
            request.session.cycle_key()
            request.session[SESSION_KEY] = form.cleaned_data["customer"].license_id
            return redirect("releases-portal-home")
        # A failed sign-in counts towards the address's throttle (shared with the update API
        # and the proxy registry); past it, failures get 429 and a valid license still works.
        address = throttle.client_address(request)
        if throttle.is_throttled(address):
            seconds = throttle.retry_after(address)
            form.add_error(None, throttle.refusal_message(seconds))
            response = render(request, "customer/sign_in.html", {"form": form}, status=429)
            response["Retry-After"] = str(seconds)
            return response
        throttle.count_failure(address)
    elif customer is None:
        form = LicenseForm()
    if customer is None or request.method == "POST":
        return render(request, "customer/sign_in.html", {"form": form}, status=form_status(form))

    releases = list(channel_releases(customer))
    latest = releases[-1] if releases else None
    downstream = downstream_for(customer=customer, release=latest.release) if latest else None
    return render(request, "customer/home.html", _customer_context(
        customer,
        releases=list(reversed(releases)),
        latest=latest,
        newest_sequence=latest.channel_sequence if latest else 0,
        downstream=downstream,
    ))


@require_POST
def customer_sign_out(request):
    request.session.pop(SESSION_KEY, None)
    return redirect("releases-portal-home")


@require_GET
def customer_updates(request):
    """"Check for Updates": the channel releases newer than the one the page showed."""
    customer = _session_customer(request)
    if customer is None:
        return redirect("releases-portal-home")
    try:
        after = parse_sequence(request.GET.get("channelSequence"))
    except ValueError:
        after = 0
    context = _customer_context(customer, pending=pending_releases(customer=customer, after=after),
                                after=after, checked=True)
    template = "customer/updates.html"
    if request.htmx:
        template += "#pending"
    return render(request, template, context)


def _customer_release(request, channel_sequence):
    customer = _session_customer(request)
    if customer is None:
        return None, None
    promotion = channel_release(customer=customer, channel_sequence=channel_sequence)
    if promotion is None:
        raise Http404("No such release on your channel.")
    return customer, promotion


@require_GET
def customer_files(request, channel_sequence):
    """"View Files": the upstream and the downstream this customer receives."""
    customer, promotion = _customer_release(request, channel_sequence)
    if customer is None:
        return redirect("releases-portal-home")
    downstream = downstream_for(customer=customer, release=promotion.release)
    return render(request, "customer/files.html", _customer_context(
        customer,
        promotion=promotion,
        downstream=downstream,
        upstream_files=downstream.tree("upstream"),
        downstream_files=[(p, t) for p, t in downstream.files.items() if not p.startswith("upstream/")],
        download_url=reverse("releases-portal-download", args=[promotion.channel_sequence]),
    ))


@require_GET
def customer_download(request, channel_sequence):
    customer, promotion = _customer_release(request, channel_sequence)
    if customer is None:
        return redirect("releases-portal-home")
    downstream = downstream_for(customer=customer, release=promotion.release)
    name = release_archive_name(promotion, customer.app.slug)
    response = HttpResponse(downstream.tar_gz(root=name), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
    return response
