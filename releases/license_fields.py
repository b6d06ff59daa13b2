"""License fields of an app: list, add, edit, reorder, delete.

Everyone on the team reads them; only Admins (who manage customers and their licenses)
change them. Each change that alters what licenses say counts one more licenseSequence on
every license of the app (services.license_field_*). Another team's app is a 404.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.forms import form_status
from portal.roles import team_required

from . import services
from .customer_forms import LicenseFieldForm, default_text
from .models import App, LicenseField


class MoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])


def _get_app(request, slug, *, write=False) -> App:
    app = get_object_or_404(App, team=request.team, slug=slug)
    if write and not request.membership.can_manage_customers:
        raise PermissionDenied("Only Admins change license fields.")
    return app


def _get_field(request, slug, pk) -> LicenseField:
    app = _get_app(request, slug, write=True)
    return get_object_or_404(LicenseField.objects.select_related("app__team"), app=app, pk=pk)


def _render_list(request, app, form, *, status=200):
    fields = [(f, default_text(f.default)) for f in app.license_fields.all()]
    return render(request, "releases/license_fields.html",
                  {"nav": "apps", "app": app, "fields": fields, "form": form}, status=status)


@team_required()
def license_field_list(request, slug):
    """GET lists the fields (and the add form for Admins); POST adds one."""
    app = _get_app(request, slug, write=request.method == "POST")
    form = LicenseFieldForm(request.POST or None, app=app)
    if request.method == "POST" and form.is_valid():
        try:
            field = services.license_field_create(field=form.save(commit=False), user=request.user, request=request)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            messages.success(request, f"License field {field.name} added: every license of {app.name} carries it.")
            return redirect("releases-license-fields", slug=app.slug)
    return _render_list(request, app, form, status=form_status(form))


@team_required("can_manage_customers")
def license_field_edit(request, slug, pk):
    field = _get_field(request, slug, pk)
    form = LicenseFieldForm(request.POST or None, instance=field, app=field.app)
    if request.method == "POST" and form.is_valid():
        try:
            changes = services.license_field_update(field=form.save(commit=False), user=request.user,
                                                    request=request)
        except ValidationError as e:
            form.add_error(None, e)
        else:
            if changes:
                messages.success(request, f"License field {field.name} saved: licenses of {field.app.name} changed.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("releases-license-fields", slug=field.app.slug)
    return render(request, "releases/license_field_edit.html",
                  {"nav": "apps", "app": field.app, "field": field, "form": form}, status=form_status(form))


@require_POST
@team_required("can_manage_customers")
def license_field_delete(request, slug, pk):
    field = _get_field(request, slug, pk)
    services.license_field_delete(field=field, user=request.user, request=request)
    messages.success(request, f"License field {field.name} deleted: licenses no longer carry it.")
    return redirect("releases-license-fields", slug=slug)


@require_POST
@team_required("can_manage_customers")
def license_field_move(request, slug, pk):
    field = _get_field(request, slug, pk)
    form = MoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Move a field up or down.")
        return _render_list(request, field.app, LicenseFieldForm(app=field.app), status=400)
    services.license_field_move(field=field, up=form.cleaned_data["direction"] == "up", user=request.user,
                                request=request)
    return redirect("releases-license-fields", slug=slug)
