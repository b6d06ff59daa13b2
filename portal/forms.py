"""Forms for the team page, the audit log filter and the shared field helpers."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model, password_validation
from django.core import validators

from .models import Role

# Long enough for any passphrase or password manager; short enough that hashing and the
# similarity check (quadratic in the length) stay cheap whatever a stranger sends.
MAX_PASSWORD_LENGTH = 1024
PASSWORD_TOO_LONG = f"Use at most {MAX_PASSWORD_LENGTH:,} characters."


def bound_password_fields(form, *names) -> None:
    """Cap the length of ``form``'s password fields (checked before anything hashes them)."""
    for name in names:
        field = form.fields[name]
        field.max_length = MAX_PASSWORD_LENGTH
        field.validators.append(validators.MaxLengthValidator(MAX_PASSWORD_LENGTH, PASSWORD_TOO_LONG))


def form_status(*forms) -> int:
    """400 when a submitted form is shown again with its errors, else 200.

    A refusal reads as one to every client (scripts, monitoring, the hostile-input tests), and
    the page still shows what was typed beside what to fix; htmx swaps 400 and 422 responses
    (base.html's htmx-config), so live fragments keep working.
    """
    return 400 if any(f is not None and f.is_bound and f.errors for f in forms) else 200


class AccessibleForm:
    """Tie each input to its help and errors (aria-describedby) and flag errors (aria-invalid).

    Mix into a Form and call ``self.describe_fields()`` at the end of ``__init__``; errors are
    flagged in ``full_clean``.
    """

    def describe_fields(self):
        for name, field in self.fields.items():
            if field.help_text:
                field.widget.attrs["aria-describedby"] = f"{self.auto_id % self.add_prefix(name)}_help"

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                error_id = f"{self.auto_id % self.add_prefix(name)}_errors"
                attrs["aria-describedby"] = " ".join(filter(None, [attrs.get("aria-describedby"), error_id]))


class AddMemberForm(AccessibleForm, forms.Form):
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False)
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not entirely numeric, not a common password.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER,
                             help_text="Admins manage customers and the team; Developers edit releases "
                                       "and promote; Support reads.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs["autocomplete"] = "off"
        bound_password_fields(self, "password")
        self.describe_fields()

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        user_model.username_validator(username)
        if user_model.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken. Choose another.")
        return username

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            user = get_user_model()(username=cleaned.get("username", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as e:
                self.add_error("password", e)
        return cleaned


class SetPasswordForm(AccessibleForm, forms.Form):
    password = forms.CharField(
        label="New password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not entirely numeric, not a common password.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        bound_password_fields(self, "password")
        self.describe_fields()

    def clean_password(self):
        password = self.cleaned_data["password"]
        password_validation.validate_password(password, self.user)
        return password


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(AccessibleForm, forms.Form):
    action = forms.ChoiceField(required=False)
    actor = forms.ChoiceField(required=False)
    object_type = forms.ChoiceField(required=False, label="Object type")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, actions=(), actors=(), object_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "All actions")] + [(a, a.replace("_", " ")) for a in actions]
        self.fields["actor"].choices = [("", "Everyone")] + [(a, a) for a in actors]
        self.fields["object_type"].choices = [("", "All objects")] + [(t, t) for t in object_types]
        self.describe_fields()

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def filter(self, events):
        data = self.cleaned_data
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("actor"):
            events = events.filter(actor_name=data["actor"])
        if data.get("object_type"):
            events = events.filter(object_type=data["object_type"])
        if data.get("since"):
            events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tzinfo=UTC))
        if data.get("until"):
            end = datetime.combine(data["until"], time.min, tzinfo=UTC) + timedelta(days=1)
            events = events.filter(created_at__lt=end)
        return events


class LoginForm(auth_forms.AuthenticationForm):
    """Django's login form with a bounded password (the username is bounded already)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bound_password_fields(self, "password")


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bound_password_fields(self, "old_password", "new_password1", "new_password2")
