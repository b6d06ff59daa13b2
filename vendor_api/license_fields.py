"""An app's license fields (no Replicated v3 equivalent: its entitlement specs are YAML).

Checked by the License fields page's form (``LicenseFieldForm``) and saved by the same
services: every change that alters what licenses say raises the ``licenseSequence`` of every
license of the app. Everyone on the team reads them; only roles that manage customers change them.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status

from releases import services
from releases.customer_forms import LicenseFieldForm, default_text
from releases.models import LicenseField

from .access import get_app, require
from .conventions import error_response, idempotent

router = Router(tags=["license fields"])

MANAGE = "can_manage_customers"
_BODY_NAMES = {"field_type": "type", "is_hidden": "isHidden"}


class LicenseFieldIn(Schema):
    name: str = Field(..., max_length=200)
    title: str = Field("", max_length=500)
    type: str = Field("String", max_length=20, description="String, Text, Integer or Boolean.")
    default: str | int | bool | None = None
    isHidden: bool = False


class LicenseFieldPatch(Schema):
    name: str | None = Field(None, max_length=200)
    title: str | None = Field(None, max_length=500)
    type: str | None = Field(None, max_length=20)
    default: str | int | bool | None = None
    isHidden: bool | None = None


def field_out(field: LicenseField) -> dict:
    return {"id": str(field.pk), "name": field.name, "title": field.title, "type": field.field_type,
            "default": field.default, "isHidden": field.is_hidden, "position": field.position}


def _form(app, data: dict, instance: LicenseField | None = None) -> LicenseFieldForm:
    form = LicenseFieldForm(data, instance=instance, app=app)
    if not form.is_valid():
        errors = {_BODY_NAMES.get(k, k): [str(m) for m in v] for k, v in form.errors.items()}
        raise error_response(DjangoValidationError(errors))
    return form


def _default(value) -> str:
    """The form's default text of a JSON value (true, 10, "gold")."""
    return default_text(value)


@router.get("/app/{app}/license-fields", response=dict, summary="List an app's license fields")
def list_fields(request, app: str):
    found = get_app(request, app)
    return {"licenseFields": [field_out(f) for f in found.license_fields.all()]}


@router.post("/app/{app}/license-field", response={201: dict}, summary="Define a license field")
def create_field(request, app: str, payload: LicenseFieldIn):
    require(request, MANAGE)
    found = get_app(request, app, write=True)

    def create():
        form = _form(found, {"name": payload.name, "title": payload.title or payload.name,
                             "field_type": payload.type, "default": _default(payload.default),
                             "is_hidden": payload.isHidden})
        field = services.license_field_create(field=form.save(commit=False), user=request.access.user,
                                              request=request)
        return 201, {"licenseField": field_out(field)}

    return idempotent(request, create)


def _get_field(request, app: str, field_id: int) -> LicenseField:
    require(request, MANAGE)
    found = get_app(request, app, write=True)
    return get_object_or_404(LicenseField.objects.select_related("app__team"), app=found, pk=field_id)


@router.put("/app/{app}/license-field/{field_id}", response=dict, summary="Update a license field")
def update_field(request, app: str, field_id: int, payload: LicenseFieldPatch):
    """What is sent changes, the rest stays. A rename carries the customers' values along."""
    field = _get_field(request, app, field_id)
    sent = payload.model_dump(exclude_unset=True)
    data = {"name": sent.get("name", field.name), "title": sent.get("title", field.title),
            "field_type": sent.get("type", field.field_type),
            "default": _default(sent["default"] if "default" in sent else field.default),
            "is_hidden": sent.get("isHidden", field.is_hidden)}
    form = _form(field.app, data, instance=field)
    services.license_field_update(field=form.save(commit=False), user=request.access.user, request=request)
    field.refresh_from_db()
    return {"licenseField": field_out(field)}


@router.delete("/app/{app}/license-field/{field_id}", response={204: None}, summary="Delete a license field")
def delete_field(request, app: str, field_id: int):
    """Licenses no longer carry it; the customers' values of it are deleted."""
    field = _get_field(request, app, field_id)
    services.license_field_delete(field=field, user=request.access.user, request=request)
    return Status(204, None)
