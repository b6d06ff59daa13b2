"""Delivery to customers: the customer page.

``/customer/`` is the update check (api.py) for people: entered with the license ID or the
license file, which is kept in the session.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal import throttle
from portal.forms import form_status

from ..downstream import downstream_for
from ..licenses import field_value, license_filename, license_yaml, proxy_domain
from .access import SESSION_KEY, check_license
from .forms import LicenseForm, parse_sequence
from .selectors import (
    channel_release,
    channel_releases,
    image_statuses,
    pending_releases,
    release_archive_name,
)

# --- the customer page ------------------------------------------------------------------------

# The licenseSequence of the license the signed-in customer holds, to offer a newer one.
SEQUENCE_SESSION_KEY = "customer_license_sequence"


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


def _history_context(customer) -> dict:
    """The version history, newest first (marked Latest), and the sequence the next check asks after."""
    releases = list(channel_releases(customer))
    return {"releases": list(reversed(releases)),
            "newest_sequence": releases[-1].channel_sequence if releases else 0}


def _images_context(release, downstream) -> dict:
    return {"downstream": downstream,
            "images": image_statuses(release=release, downstream=downstream, proxy_host=proxy_domain())}


@require_http_methods(["GET", "POST"])
def customer_home(request):
    customer = _session_customer(request)
    if request.method == "POST":
        form = LicenseForm(request.POST, request.FILES)
        if form.is_valid():
            request.session.cycle_key()
            request.session[SESSION_KEY] = form.cleaned_data["customer"].license_id
            request.session[SEQUENCE_SESSION_KEY] = form.cleaned_data["license_sequence"]
            return redirect("releases-portal-home")
        # A failed sign-in counts towards the address's throttle (shared with the update API
        # and the proxy registry); past it, failures get 429 and a valid license still works.
        seconds = throttle.record_failure(throttle.client_address(request))
        if seconds is not None:
            form.add_error(None, throttle.refusal_message(seconds))
            response = render(request, "customer/sign_in.html", {"form": form}, status=429)
            response["Retry-After"] = str(seconds)
            return response
    elif customer is None:
        form = LicenseForm()
    if customer is None or request.method == "POST":
        return render(request, "customer/sign_in.html", {"form": form}, status=form_status(form))

    history = _history_context(customer)
    latest = history["releases"][0] if history["releases"] else None
    images = {}
    if latest:
        images = _images_context(latest.release, downstream_for(customer=customer, release=latest.release))
    return render(request, "customer/home.html", _customer_context(
        customer, latest=latest, grace_days=settings.PORTAL_ENTITLEMENT_GRACE_DAYS,
        **history, **images, **_license_context(request, customer),
    ))


def _license_context(request, customer) -> dict:
    """The license as the customer's page shows it: the fields not hidden, and whether the
    vendor changed it since the customer's copy (the sequence recorded at sign-in)."""
    values = customer.entitlements or {}
    held = request.session.get(SEQUENCE_SESSION_KEY, customer.license_sequence)
    return {
        "license_values": [(f, field_value(f, values)) for f in customer.app.license_fields.all() if not f.is_hidden],
        "held_license_sequence": held,
        "newer_license": isinstance(held, int) and customer.license_sequence > held,
    }


@require_GET
def customer_license(request):
    """The current license file; the page stops offering it once downloaded."""
    customer = _session_customer(request)
    if customer is None:
        return redirect("releases-portal-home")
    response = HttpResponse(license_yaml(customer), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{license_filename(customer)}"'
    response["Cache-Control"] = "no-store"
    request.session[SEQUENCE_SESSION_KEY] = customer.license_sequence
    return response


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
    pending = pending_releases(customer=customer, after=after)
    context = _customer_context(customer, pending=pending, after=after, checked=True)
    template = "customer/updates.html"
    if request.htmx:
        template += "#pending"
        if pending:
            # The page below the answer still shows the old history: replace it (and the
            # next check's sequence) out of band, so only the newest release reads Latest.
            context.update(_history_context(customer), history_oob=True)
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
        **_images_context(promotion.release, downstream),
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
