"""Customers (Replicated: ``/v3/customer``, ``/v3/app/{app}/customers``, ``.../license-download``).

Bodies are Replicated's (``CreateCustomerRequest``, ``UpdateCustomerRequest``) and are checked
by the customer page's form (``CustomerForm``), saved by the same services (an update that
changes what the license says raises ``licenseSequence`` by one). A customer has one channel:
the one of ``channels`` (or ``add_channels``) marked ``is_default_for_customer``, else the first.

License IDs are customers' credentials: a customer carries ``licenseId`` only when asked
(``?showLicenseId=true``), and only roles that manage customers may ask; the license file comes
from ``license-download``. Lists never carry them by default, so CI logs do not collect them.
"""

from __future__ import annotations

from datetime import UTC, time, timedelta

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_date, parse_datetime
from ninja import Field, Query, Router, Schema, Status

from portal.audit import audit_log
from releases import services
from releases.customer_forms import FIELD_PREFIX, CustomerForm
from releases.licenses import field_value, license_filename, license_yaml
from releases.models import Channel, Customer, LicenseFieldType
from releases.selectors import channels_with_current

from .access import get_app, require
from .apps import get_channel
from .conventions import PageParams, error_response, idempotent, paginate

router = Router(tags=["customers"])

MANAGE = "can_manage_customers"
LICENSE_ID_REFUSED = "Only roles that manage customers may see license IDs: leave out showLicenseId."
# The form's field names as Replicated's bodies spell them.
_BODY_NAMES = {"license_type": "type", "is_airgap_supported": "is_airgap_enabled", "expires_on": "expires_at",
               "channel": "channels", "app": "app_id"}


class CustomerChannelIn(Schema):
    channel_id: str
    pinned_channel_sequence: int | None = None
    is_default_for_customer: bool = False


class EntitlementValueIn(Schema):
    name: str
    value: str | int | bool | None = None


class CustomerIn(Schema):
    name: str
    app_id: str
    channels: list[CustomerChannelIn] = Field(default_factory=list, max_length=100)
    custom_id: str = ""
    type: str = "dev"
    expires_at: str = ""
    is_airgap_enabled: bool = False
    email: str = ""
    entitlementValues: list[EntitlementValueIn] = Field(default_factory=list, max_length=1000)


class CustomerPatch(Schema):
    name: str | None = None
    add_channels: list[CustomerChannelIn] = Field(default_factory=list, max_length=100)
    remove_channels: list[str] = Field(default_factory=list, max_length=100)
    custom_id: str | None = None
    type: str | None = None
    expires_at: str | None = None
    is_airgap_enabled: bool | None = None
    email: str | None = None
    entitlementValues: list[EntitlementValueIn] | None = Field(None, max_length=1000)


class CustomerFilters(PageParams):
    q: str = Field("", max_length=200, description="Part of the name or email.")
    type: str = Field("", max_length=20, description="dev, trial, paid or community.")
    channel: str = Field("", max_length=100, description="A channel's id or slug.")
    includeArchived: bool = False
    showLicenseId: bool = False


# --- shapes -------------------------------------------------------------------------------------


def _text(value) -> str:
    """A license value as Replicated's entitlements carry it: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _channel_out(channel: Channel) -> dict:
    """Replicated's ``Channel`` (of ``channels_with_current``)."""
    return {"id": str(channel.pk), "name": channel.name, "description": "", "channelSlug": channel.slug,
            "releaseSequence": getattr(channel, "current_release", None),
            "releaseLabel": getattr(channel, "current_label", None) or "",
            "channelSequence": getattr(channel, "current_channel_sequence", None) or 0,
            "isArchived": channel.is_archived, "isHelmOnly": False}


def customer_out(customer: Customer, *, fields, channels: dict, license_id: bool = False) -> dict:
    """Replicated's ``Customer``; ``fields`` the app's license fields, ``channels`` {pk: annotated channel}."""
    values = customer.entitlements or {}
    channel = channels.get(customer.channel_id) or customer.channel
    out = {
        "id": str(customer.pk), "customId": "", "name": customer.name, "email": customer.email,
        "channels": [_channel_out(channel)], "type": customer.license_type,
        "expiresAt": customer.expires_at.isoformat().replace("+00:00", "Z") if customer.expires_at else None,
        "instances": [], "installationId": "",
        "entitlements": [{"isDefault": f.name not in values, "name": f.name, "value": _text(field_value(f, values))}
                         for f in fields],
        "airgap": customer.is_airgap_supported,
        "appId": str(customer.app_id), "licenseSequence": customer.license_sequence,
        "isArchived": customer.is_archived, "createdAt": customer.created_at.isoformat(),
    }
    if license_id:
        out["licenseId"] = customer.license_id
    return out


def _one(customer: Customer, *, license_id: bool = False) -> dict:
    app = customer.app
    channels = {c.pk: c for c in channels_with_current(Channel.objects.filter(pk=customer.channel_id))}
    return {"customer": customer_out(customer, fields=list(app.license_fields.all()), channels=channels,
                                     license_id=license_id)}


# --- parsing --------------------------------------------------------------------------------------


def _expires_on(text: str) -> str:
    """The form's "expires on" day of Replicated's ``expires_at`` ("" for none).

    Licenses stop at 00:00 UTC of a day (as on the page): a time within a day rounds up to the
    next midnight, so a license never stops earlier than asked."""
    text = text.strip()
    if not text:
        return ""
    day = parse_date(text) if len(text) == 10 else None
    if day is not None:
        return day.isoformat()
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DjangoValidationError({"expires_at": "Send a date (2030-01-31) or a UTC time "
                                                   "(2030-01-31T00:00:00Z)."})
    moment = moment.astimezone(UTC)
    day = moment.date()
    if moment.timetz() != time(0, tzinfo=UTC):
        day += timedelta(days=1)
    return day.isoformat()


def _channel_for(app, channels: list[CustomerChannelIn]) -> Channel | None:
    if not channels:
        return None
    chosen = next((c for c in channels if c.is_default_for_customer), channels[0])
    try:
        return get_channel(app, chosen.channel_id)
    except Http404:
        raise DjangoValidationError({"channels": f"{app.name} has no channel {chosen.channel_id}."}) from None


def _form_values(fields, current: dict, given: list[EntitlementValueIn] | None) -> dict:
    """The form's license-field inputs: ``given`` (Replicated's entitlementValues) over ``current``."""
    by_name = {f.name: f for f in fields}
    data = {FIELD_PREFIX + f.name: field_value(f, current) for f in fields}
    errors = {}
    for item in given or []:
        field = by_name.get(item.name)
        if field is None:
            errors.setdefault("entitlementValues", []).append(
                f"This app has no license field named {item.name}: define it first (license fields).")
            continue
        value = item.value
        if field.field_type == LicenseFieldType.BOOLEAN:
            word = _text(value).strip().lower()
            if word not in ("true", "false"):
                errors[f"entitlementValues.{field.name}"] = ["A Boolean field is true or false."]
                continue
            value = word == "true"
        elif field.field_type == LicenseFieldType.INTEGER:
            value = _text(value)
        data[FIELD_PREFIX + field.name] = "" if value is None else value
    if errors:
        raise DjangoValidationError(errors)
    return data


def _bound_form(*, team, data: dict, instance: Customer | None = None) -> CustomerForm:
    """The page's form, bound to ``data``; its errors under the body's names, or the form."""
    form = CustomerForm(data, instance=instance, team=team)
    if not form.is_valid():
        errors = {}
        for name, messages in form.errors.items():
            if name.startswith(FIELD_PREFIX):
                name = "entitlementValues." + name[len(FIELD_PREFIX):]
            errors[_BODY_NAMES.get(name, name)] = [str(m) for m in messages]
        raise error_response(DjangoValidationError(errors))
    return form


def get_customer(request, pk: int) -> Customer:
    """The team's customer ``pk`` of an app the token may see, or 404."""
    customers = Customer.objects.select_related("app", "channel").filter(app__team=request.team)
    if request.access.app_ids is not None:
        customers = customers.filter(app_id__in=request.access.app_ids)
    return get_object_or_404(customers, pk=pk)


def _may_see_license_ids(request, asked: bool) -> bool:
    if asked and not request.membership.can_manage_customers:
        raise PermissionDenied(LICENSE_ID_REFUSED)
    return asked


# --- routes ---------------------------------------------------------------------------------------


@router.post("/customer", response={201: dict}, summary="Create a customer")
def create_customer(request, payload: CustomerIn):
    """As "New customer" on the Customers page (Admins): name, channel, email, license type,
    expiry, air-gap and the app's license field values (others get their default)."""
    require(request, MANAGE)
    app = get_app(request, payload.app_id, write=True)

    def create():
        try:
            channel = _channel_for(app, payload.channels)
            data = {"name": payload.name, "email": payload.email, "app": app.pk,
                    "channel": channel.pk if channel else "", "license_type": payload.type,
                    "is_airgap_supported": payload.is_airgap_enabled,
                    "expires_on": _expires_on(payload.expires_at),
                    **_form_values(list(app.license_fields.all()), {}, payload.entitlementValues)}
        except DjangoValidationError as e:
            raise error_response(e) from None
        if channel is None:
            # No channel given: the page's default for a new customer.
            data["channel"] = CustomerForm(team=request.team, initial={"app": app.pk}).initial.get("channel") or ""
        form = _bound_form(team=request.team, data=data)
        customer = services.customer_create(customer=form.save(commit=False), user=request.access.user,
                                            request=request)
        return 201, _one(customer)

    return idempotent(request, create)


@router.get("/app/{app}/customers", response=dict, summary="List customers")
def list_customers(request, app: str, filters: Query[CustomerFilters]):
    """A page of the app's customers by name (``pageSize``, ``currentPage``); ``totalCustomers``
    (Replicated's) and ``totalCount`` count them all. Four queries, whatever the page holds."""
    found = get_app(request, app)
    show = _may_see_license_ids(request, filters.showLicenseId)
    customers = Customer.objects.filter(app=found)
    if not filters.includeArchived:
        customers = customers.filter(archived_at__isnull=True)
    if filters.q.strip():
        query = filters.q.strip()
        customers = customers.filter(Q(name__icontains=query) | Q(email__icontains=query))
    if filters.type:
        customers = customers.filter(license_type=filters.type)
    if filters.channel:
        customers = customers.filter(channel=get_channel(found, filters.channel))
    page, total = paginate(customers.order_by("name", "id"), filters)
    fields = list(found.license_fields.all())
    channels = {c.pk: c for c in channels_with_current(found.channels.all())}
    return {"customers": [customer_out(c, fields=fields, channels=channels, license_id=show) for c in page],
            "totalCustomers": total, "totalCount": total}


@router.get("/customer/{customer_id}", response=dict, summary="Get a customer")
def get_one_customer(request, customer_id: int, showLicenseId: bool = False):
    customer = get_customer(request, customer_id)
    return _one(customer, license_id=_may_see_license_ids(request, showLicenseId))


@router.patch("/customer/{customer_id}", response=dict, summary="Update a customer")
def update_customer(request, customer_id: int, payload: CustomerPatch):
    """What is sent changes, the rest stays (Replicated's PATCH). A change of what the license
    says raises ``licenseSequence`` by one, as the page's Save does."""
    require(request, MANAGE)
    customer = get_customer(request, customer_id)
    app = customer.app
    try:
        channel = _channel_for(app, payload.add_channels) or customer.channel
        if str(channel.pk) in payload.remove_channels or channel.slug in payload.remove_channels:
            raise DjangoValidationError({"remove_channels": "A customer keeps one channel: add the new one "
                                                            "in add_channels instead of removing this one."})
        expires = (_expires_on(payload.expires_at) if payload.expires_at is not None
                   else customer.expires_at.astimezone(UTC).date().isoformat() if customer.expires_at else "")
        data = {"name": customer.name if payload.name is None else payload.name,
                "email": customer.email if payload.email is None else payload.email,
                "channel": channel.pk, "license_type": payload.type or customer.license_type,
                "is_airgap_supported": (customer.is_airgap_supported if payload.is_airgap_enabled is None
                                        else payload.is_airgap_enabled),
                "expires_on": expires,
                **_form_values(list(app.license_fields.all()), customer.entitlements or {},
                               payload.entitlementValues)}
    except DjangoValidationError as e:
        raise error_response(e) from None
    form = _bound_form(team=request.team, data=data, instance=customer)
    customer = form.save(commit=False)
    services.customer_update(customer=customer, user=request.access.user, request=request)
    customer.refresh_from_db()
    return _one(customer)


@router.post("/customer/{customer_id}/archive", response={204: None}, summary="Archive a customer")
def archive_customer(request, customer_id: int):
    """Its license stops working (the proxy, the update check, the customer's page)."""
    require(request, MANAGE)
    customer = get_customer(request, customer_id)
    services.customer_archive(customer=customer, user=request.access.user, request=request)
    return Status(204, None)


@router.post("/customer/{customer_id}/unarchive", response={204: None}, summary="Restore an archived customer")
def unarchive_customer(request, customer_id: int):
    require(request, MANAGE)
    customer = get_customer(request, customer_id)
    services.customer_restore(customer=customer, user=request.access.user, request=request)
    return Status(204, None)


@router.get("/app/{app}/customer/{customer_id}/license-download", summary="Download the license file",
            response={200: None})
def download_license(request, app: str, customer_id: int):
    """The signed license file (YAML), as "Download license" on the customer's page."""
    require(request, MANAGE)
    found = get_app(request, app)
    customer = get_customer(request, customer_id)
    if customer.app_id != found.pk:
        raise Http404("No such customer of this app.")
    response = HttpResponse(license_yaml(customer), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{license_filename(customer)}"'
    # The file holds the customer's credential: keep it out of caches.
    response["Cache-Control"] = "no-store"
    audit_log(request=request, team=request.team, action="download_license", obj=customer,
              actor=request.access.user, detail={"license_sequence": customer.license_sequence})
    return response

