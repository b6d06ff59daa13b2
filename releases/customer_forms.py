"""Forms for customers (create, edit, search) and for the app's license fields."""

import re
from datetime import UTC, datetime, time

from django import forms

from portal.forms import AccessibleForm

from .licenses import BUILT_IN_NAMES, INT64, field_value
from .models import App, Channel, Customer, LicenseField, LicenseFieldType, LicenseType

FIELD_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
FIELD_PREFIX = "field_"
ONE_LINE = "A String is one line: choose Text for several lines."
INT64_RANGE = f"Licenses carry 64-bit integers: use a number from {INT64.start} to {INT64.stop - 1}."
# Bounds on what one value may hold: a license file stays far below the sign-in's upload limit.
MAX_STRING, MAX_TEXT = 1000, 10_000


def _one_line(value: str) -> None:
    if "\n" in value or "\r" in value:
        raise forms.ValidationError(ONE_LINE)


def value_field(field: LicenseField) -> forms.Field:
    """The typed input of ``field`` on the customer form; blank means "the default" for numbers."""
    label = field.title
    help_text = f"{field.name}{' · hidden from the customer' if field.is_hidden else ''}"
    if field.field_type == LicenseFieldType.INTEGER:
        return forms.IntegerField(
            required=False, label=label, help_text=f"{help_text} · blank for the default",
            min_value=INT64.start, max_value=INT64.stop - 1,
            error_messages={"min_value": INT64_RANGE, "max_value": INT64_RANGE})
    if field.field_type == LicenseFieldType.BOOLEAN:
        return forms.BooleanField(required=False, label=label, help_text=help_text)
    if field.field_type == LicenseFieldType.TEXT:
        return forms.CharField(required=False, label=label, help_text=help_text, max_length=MAX_TEXT,
                               widget=forms.Textarea(attrs={"rows": 3}))
    return forms.CharField(required=False, label=label, help_text=help_text, max_length=MAX_STRING,
                           validators=[_one_line])


def _normalised(field: LicenseField, value):
    """A cleaned input as the license carries it: None (blank number) is the default; browsers
    send a textarea's lines with CRLF."""
    if value is None:
        return field.default
    if field.field_type == LicenseFieldType.TEXT:
        return value.replace("\r\n", "\n")
    return value


class ChannelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, channel):
        return channel.name


class CustomerForm(AccessibleForm, forms.ModelForm):
    """Create (with an app) or edit (the app is fixed) a customer of ``team``."""

    expires_on = forms.DateField(
        required=False, label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Optional. The license stops working at 00:00 UTC on this date.",
    )
    channel = ChannelChoiceField(
        queryset=Channel.objects.none(), label="Channel",
        help_text="Which releases this customer receives.",
    )

    class Meta:
        model = Customer
        fields = ["name", "email", "app", "channel", "license_type", "is_airgap_supported"]
        labels = {"license_type": "License type", "email": "Email",
                  "is_airgap_supported": "May download air-gap bundles"}
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "off"})}

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        editing = self.instance.pk is not None
        if editing:
            del self.fields["app"]
            app = self.instance.app
            if self.instance.expires_at:
                self.initial.setdefault("expires_on", self.instance.expires_at.astimezone(UTC).date())
        else:
            apps = App.objects.filter(team=team, archived_at__isnull=True)
            self.fields["app"].queryset = apps
            self.fields["app"].empty_label = None
            app_id = self.data.get(self.add_prefix("app")) or self.initial.get("app")
            app = apps.filter(pk=app_id).first() if str(app_id or "").isdigit() else None
            app = app or apps.first()
            self.fields["app"].initial = app.pk if app else None
        channels = Channel.objects.filter(app=app, archived_at__isnull=True) if app else Channel.objects.none()
        self.fields["channel"].queryset = channels
        self.fields["channel"].empty_label = None
        if not editing and app and "channel" not in self.initial:
            # New customers start on Unstable, as in the walkthrough.
            default = next((c for c in channels if c.name == "Unstable"), None) or channels.first()
            self.initial["channel"] = default.pk if default else None
        self.fields["license_type"].help_text = "Development, trial, paid or community."
        self.fields["email"].required = False
        self.fields["name"].help_text = "The company or person this license is for."
        self.license_fields = list(app.license_fields.all()) if app else []
        values = self.instance.entitlements or {}
        for field in self.license_fields:
            self.fields[FIELD_PREFIX + field.name] = value_field(field)
            self.initial.setdefault(FIELD_PREFIX + field.name, field_value(field, values))
        self.describe_fields()

    def license_value_fields(self):
        """The bound inputs of the app's license fields, in the app's order."""
        return [self[FIELD_PREFIX + field.name] for field in self.license_fields]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter the customer's name.")
        return name

    def clean(self):
        cleaned = super().clean()
        app = cleaned.get("app") if "app" in self.fields else self.instance.app
        channel = cleaned.get("channel")
        if app and channel and channel.app_id != app.pk:
            self.add_error("channel", f"Choose a channel of {app.name}.")
        return cleaned

    def save(self, commit=True):
        customer = super().save(commit=False)
        day = self.cleaned_data.get("expires_on")
        customer.expires_at = datetime.combine(day, time.min, tzinfo=UTC) if day else None
        # Only values that differ from the default are kept: the others follow the default when
        # the vendor changes it. (licenseSequence is counted by the service that saves.)
        values = {}
        for field in self.license_fields:
            value = _normalised(field, self.cleaned_data.get(FIELD_PREFIX + field.name))
            if value != field.default or type(value) is not type(field.default):
                values[field.name] = value
        customer.entitlements = values
        if commit:
            customer.save()
        return customer


def parse_default(field_type: str, text: str):
    """The typed default of a field of ``field_type`` written as ``text``; ValidationError says what to fix."""
    text = text.replace("\r\n", "\n")
    if field_type == LicenseFieldType.INTEGER:
        if not re.fullmatch(r"[+-]?[0-9]{1,25}", text.strip()):
            raise forms.ValidationError("The default of an Integer field is a whole number, such as 10.")
        value = int(text)
        if value not in INT64:
            raise forms.ValidationError(INT64_RANGE)
        return value
    if field_type == LicenseFieldType.BOOLEAN:
        word = text.strip().lower()
        if word not in ("", "true", "false"):
            raise forms.ValidationError("The default of a Boolean field is true or false.")
        return word == "true"
    if field_type == LicenseFieldType.STRING:
        _one_line(text)
        if len(text) > MAX_STRING:
            raise forms.ValidationError(f"A String holds at most {MAX_STRING:,} characters.")
        return text
    if len(text) > MAX_TEXT:
        raise forms.ValidationError(f"A Text holds at most {MAX_TEXT:,} characters.")
    return text


def default_text(value) -> str:
    """A stored default as the form shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class LicenseFieldForm(AccessibleForm, forms.ModelForm):
    """Add (with ``app``) or edit a license field; ``default`` is typed as ``field_type`` says."""

    default = forms.CharField(
        required=False, strip=False, label="Default",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What a customer without a value gets: text, a whole number, or true/false.",
    )

    class Meta:
        model = LicenseField
        fields = ["name", "title", "field_type", "is_hidden"]
        labels = {"field_type": "Type", "is_hidden": "Hidden from the customer's page"}
        widgets = {"name": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"})}

    def __init__(self, *args, app, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self.fields["name"].help_text = ("The key in the license, such as seat_count: a letter, then letters, "
                                         "digits, _ or -.")
        self.fields["title"].help_text = "What people read, such as Seats."
        self.fields["is_hidden"].help_text = "Still in the license file the customer holds."
        if self.instance.pk is not None:
            self.initial.setdefault("default", default_text(self.instance.default))
        self.describe_fields()

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not FIELD_NAME_RE.fullmatch(name):
            raise forms.ValidationError("Start with a letter; then letters, digits, _ or - (such as seat_count).")
        if name.lower() in BUILT_IN_NAMES:
            raise forms.ValidationError(f"{name} is built into every license: choose another name.")
        taken = LicenseField.objects.filter(app=self.app, name__iexact=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"This app already has a field named {name}.")
        return name

    def clean_title(self):
        return self.cleaned_data["title"].strip()

    def clean(self):
        cleaned = super().clean()
        field_type = cleaned.get("field_type")
        if field_type and "default" not in self.errors:
            try:
                cleaned["default"] = parse_default(field_type, cleaned.get("default") or "")
            except forms.ValidationError as e:
                self.add_error("default", e)
        return cleaned

    def save(self, commit=True):
        field = super().save(commit=False)
        field.app = self.app
        field.default = self.cleaned_data["default"]
        if commit:
            field.save()
        return field


class CustomerSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=200,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or email"}))
    app = forms.ModelChoiceField(queryset=App.objects.none(), required=False, label="App",
                                 empty_label="All apps")
    archived = forms.BooleanField(required=False, label="Show archived")

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["app"].queryset = App.objects.filter(team=team)


LICENSE_TYPE_BADGES = {
    LicenseType.PAID: "ok",
    LicenseType.TRIAL: "warn",
    LicenseType.DEV: "info",
    LicenseType.COMMUNITY: "",
}
