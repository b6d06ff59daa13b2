"""Customers: list, create, edit, archive, regenerate the license ID, download the license.

Everyone on the team reads customers; only Admins change them or see license IDs (the
customer's credential). Another team's customer is a 404.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.audit import audit_log
from portal.forms import form_status
from portal.roles import team_required

from . import services
from .customer_forms import CustomerForm, CustomerSearchForm
from .customer_portal.selectors import sign_in_url
from .licenses import field_value, license_filename, license_yaml
from .models import App, Channel, Customer, LicenseType

PAGE_SIZE = 25


def _get_customer(request, pk) -> Customer:
    """The team's customer ``pk``, or 404 (another team's customer does not exist for you)."""
    return get_object_or_404(Customer.objects.select_related("app", "channel").filter(app__team=request.team), pk=pk)


_ROW_FIELDS = ("pk", "name", "email", "app__name", "channel_name", "license_type", "expires_at", "archived_at")
_LICENSE_LABELS = dict(LicenseType.choices)
_LICENSE_BADGES = {LicenseType.PAID: "ok", LicenseType.TRIAL: "warn", LicenseType.DEV: "info"}


def _customer_rows(page) -> list[dict]:
    """The page's customers (dicts of ``_ROW_FIELDS``) with their license's label and badge, and whether it expired."""
    now = timezone.now()
    rows = list(page)
    for c in rows:
        c["license_label"] = _LICENSE_LABELS.get(c["license_type"], c["license_type"])
        c["license_badge"] = _LICENSE_BADGES.get(c["license_type"], "")
        c["is_expired"] = c["expires_at"] is not None and c["expires_at"] <= now
    return rows


@team_required()
def customer_list(request):
    form = CustomerSearchForm(request.GET or None, team=request.team)
    customers = Customer.objects.filter(app__team=request.team)
    query = ""
    if form.is_valid():
        query = form.cleaned_data["q"].strip()
        if query:
            customers = customers.filter(Q(name__icontains=query) | Q(email__icontains=query))
        if form.cleaned_data["app"]:
            customers = customers.filter(app=form.cleaned_data["app"])
        if not form.cleaned_data["archived"]:
            customers = customers.filter(archived_at__isnull=True)
    else:
        customers = customers.filter(archived_at__isnull=True)
    # The channel's name as a subquery (not a JOIN), so the paginator's COUNT(*) joins only the app.
    channel_name = Channel.objects.filter(pk=OuterRef("channel_id")).values("name")[:1]
    rows = customers.annotate(channel_name=Subquery(channel_name)).order_by("name", "id").values(*_ROW_FIELDS)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "nav": "customers",
        "form": form,
        "page": page,
        "rows": _customer_rows(page),
        "query": query,
        "params": params.urlencode(),
        "has_apps": App.objects.filter(team=request.team, archived_at__isnull=True).exists(),
        # Only asked when the page is empty, to say "all archived" rather than "none yet".
        "has_archived": not page.paginator.count
        and Customer.objects.filter(app__team=request.team, archived_at__isnull=False).exists(),
    }
    template = "releases/customer_list.html"
    if request.htmx and request.htmx.target == "customer-results":
        template += "#results"
    return render(request, template, context)


@team_required("can_manage_customers")
def customer_create(request):
    initial = {"app": request.GET.get("app")} if request.GET.get("app") else None
    if request.method == "POST":
        form = CustomerForm(request.POST, team=request.team)
        if form.is_valid():
            customer = services.customer_create(customer=form.save(commit=False), user=request.user, request=request)
            messages.success(request, f"Customer {customer.name} created on {customer.channel.name}.")
            return redirect("releases-customer-detail", pk=customer.pk)
    else:
        form = CustomerForm(team=request.team, initial=initial)
    if request.htmx and request.htmx.target == "channel-field":
        # The app changed: offer that app's channels.
        return render(request, "releases/customer_form.html#channel-field", {"form": form})
    return render(request, "releases/customer_form.html", {"nav": "customers", "form": form, "customer": None},
                  status=form_status(form))


@team_required()
def customer_detail(request, pk):
    customer = _get_customer(request, pk)
    values = customer.entitlements or {}
    license_values = [(f, field_value(f, values)) for f in customer.app.license_fields.all()]
    return render(request, "releases/customer_detail.html",
                  {"nav": "customers", "customer": customer, "customer_portal_url": sign_in_url(),
                   "license_values": license_values})


@team_required("can_manage_customers")
def customer_edit(request, pk):
    customer = _get_customer(request, pk)
    if request.method == "POST":
        form = CustomerForm(request.POST, instance=customer, team=request.team)
        if form.is_valid():
            customer = form.save(commit=False)
            if services.customer_update(customer=customer, user=request.user, request=request):
                messages.success(request, f"Customer {customer.name} saved.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("releases-customer-detail", pk=customer.pk)
    else:
        form = CustomerForm(instance=customer, team=request.team)
    return render(request, "releases/customer_form.html", {"nav": "customers", "form": form, "customer": customer},
                  status=form_status(form))


@require_POST
@team_required("can_manage_customers")
def customer_archive(request, pk):
    customer = _get_customer(request, pk)
    if services.customer_archive(customer=customer, user=request.user, request=request):
        messages.success(request, f"Customer {customer.name} archived: the license no longer works.")
    return redirect("releases-customer-detail", pk=customer.pk)


@require_POST
@team_required("can_manage_customers")
def customer_unarchive(request, pk):
    customer = _get_customer(request, pk)
    if services.customer_restore(customer=customer, user=request.user, request=request):
        messages.success(request, f"Customer {customer.name} restored.")
    return redirect("releases-customer-detail", pk=customer.pk)


@team_required("can_manage_customers")
def customer_regenerate(request, pk):
    """GET asks for confirmation; POST replaces the license ID (the old one stops at once)."""
    customer = _get_customer(request, pk)
    if request.method != "POST":
        return render(request, "releases/customer_regenerate.html", {"nav": "customers", "customer": customer})
    services.license_regenerate(customer=customer, user=request.user, request=request)
    messages.success(request, f"New license ID for {customer.name}. The old one no longer works: "
                              "send the customer the new license file.")
    return redirect("releases-customer-detail", pk=customer.pk)


@team_required("can_manage_customers")
def customer_license(request, pk):
    customer = _get_customer(request, pk)
    response = HttpResponse(license_yaml(customer), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{license_filename(customer)}"'
    # The file holds the customer's credential: keep it out of caches.
    response["Cache-Control"] = "no-store"
    audit_log(request=request, team=request.team, action="download_license", obj=customer,
              detail={"license_sequence": customer.license_sequence})
    return response

