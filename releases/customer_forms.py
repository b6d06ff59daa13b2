"""Forms for customers: create, edit, search."""

from datetime import UTC, datetime, time

from django import forms

from portal.forms import AccessibleForm

from .models import App, Channel, Customer, LicenseType


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
        fields = ["name", "email", "app", "channel", "license_type"]
        labels = {"license_type": "License type", "email": "Email"}
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
        self.describe_fields()

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
        if self.instance.pk is not None and self.has_changed():
            # The license says something new: KOTS's licenseSequence counts such changes.
            customer.license_sequence += 1
        if commit:
            customer.save()
        return customer


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
