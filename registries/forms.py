"""Forms of the registries pages: every input validated and normalised, with a message to act on."""

from __future__ import annotations

import json
import re

from django import forms
from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html

from .models import ExternalRegistry, Provider
from .reference import InvalidReference, normalize_endpoint, parse_repository

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Provider presets (REFERENCE.md, the vendor CLI's registry_add_*.go). "endpoint"/"username" fill
# a blank field; the help texts replace the generic ones. Labels stay Endpoint/Username/Password.
PRESETS: dict[str, dict[str, str]] = {
    Provider.ECR: {
        "endpoint": "",
        "endpoint_placeholder": "123456789012.dkr.ecr.us-east-2.amazonaws.com",
        "endpoint_help": "<12-digit account>.dkr.ecr.<region>.amazonaws.com, as shown in the ECR console.",
        "username": "",
        "username_help": "AWS Access Key ID (of a read-only user, e.g. AmazonEC2ContainerRegistryReadOnly).",
        "password_help": "AWS Secret Access Key.",
    },
    Provider.DOCKERHUB: {
        "endpoint": "docker.io",
        "endpoint_placeholder": "docker.io",
        "endpoint_help": "Docker Hub: index.docker.io, registry-1.docker.io and docker.io are one registry.",
        "username": "",
        "username_help": "Docker Hub username.",
        "password_help": "A Docker Hub personal access token with read-only access.",
    },
    Provider.GHCR: {
        "endpoint": "ghcr.io",
        "endpoint_placeholder": "ghcr.io",
        "endpoint_help": "GitHub Container Registry: ghcr.io.",
        "username": "",
        "username_help": "GitHub username.",
        "password_help": "A GitHub personal access token with read:packages.",
    },
    Provider.GAR: {
        "endpoint": "",
        "endpoint_placeholder": "us-docker.pkg.dev",
        "endpoint_help": "<region>-docker.pkg.dev (or gcr.io).",
        "username": "_json_key",
        "username_help": "_json_key for a service account JSON key (oauth2accesstoken for an access token).",
        "password_help": "The service account's JSON key (role Artifact Registry Reader), pasted whole.",
    },
    Provider.QUAY: {
        "endpoint": "quay.io",
        "endpoint_placeholder": "quay.io",
        "endpoint_help": "Quay: quay.io, or your Quay server's host.",
        "username": "",
        "username_help": "Quay username or robot account (organization+robot).",
        "password_help": "The password or the robot account's token.",
    },
    Provider.OTHER: {
        "endpoint": "",
        "endpoint_placeholder": "registry.example.com or registry.example.com:5000",
        "endpoint_help": "The registry's host with an optional :port, without https:// or a path.",
        "username": "",
        "username_help": "Registry username.",
        "password_help": "Registry password or access token.",
    },
}


# The largest secret a provider hands out is a Google service account's JSON key (~2.3 KB);
# access tokens, AWS secret keys and robot tokens are under 2 KB. Anything longer is a paste gone
# wrong, and would only be encrypted, stored and sent upstream on every login.
PASSWORD_MAX_LENGTH = 4096
USERNAME_MAX_LENGTH = 255  # the column's size; AWS Access Key IDs have at most 128


def endpoint_has_port(endpoint: str) -> bool:
    return ":" in endpoint.rsplit("]", 1)[-1]



def clean_repository(value: str) -> str:
    """A repository with optional tag or digest in the registry (`demo-apps/nginx:latest`)."""
    value = value.strip()
    if value:
        try:
            parse_repository(value)
        except InvalidReference as e:
            raise forms.ValidationError(str(e)) from None
    return value

class RegistryForm(forms.Form):
    provider = forms.ChoiceField(label="Provider", choices=Provider.choices, initial=Provider.ECR)
    endpoint = forms.CharField(label="Endpoint", max_length=255, required=False)
    username = forms.CharField(
        label="Username", max_length=USERNAME_MAX_LENGTH, required=False,
        error_messages={"max_length": f"Enter at most {USERNAME_MAX_LENGTH} characters: a user "
                                      "name, robot account or AWS Access Key ID."},
    )
    # Never rendered back: the stored secret is not shown to anyone, not even its owner.
    password = forms.CharField(
        label="Password", required=False, strip=False, max_length=PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        error_messages={"max_length": "Paste only the password, token or key: at most "
                                      f"{PASSWORD_MAX_LENGTH} characters (a Google service "
                                      "account's JSON key is about 2.3 KB)."},
    )
    name = forms.CharField(
        label="Name", max_length=63, required=False,
        help_text="Optional short name (lower-case letters, digits and '-'); required when the endpoint has a port.",
    )
    test_image = forms.CharField(
        label="Test image", max_length=255, required=False,
        help_text="Optional: an image in this registry the credentials must be able to read, e.g. demo-apps/nginx:latest.",
    )
    apps = forms.ModelMultipleChoiceField(
        label="Apps", queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Which apps may use this registry. None ticked: all apps.",
    )
    insecure = forms.BooleanField(label="Insecure registry (plain HTTP)", required=False)
    direct_downloads = forms.BooleanField(
        label="Let customers download layers directly from AWS S3", required=False,
        help_text="The proxy registry still checks every license, then sends the customer's "
                  "cluster to the pre-signed AWS S3 address ECR gives for each layer instead of "
                  "streaming the layer itself. Customers' clusters must then reach AWS S3 "
                  "(*.s3.<region>.amazonaws.com), not only the proxy, and a pre-signed address "
                  "works for whoever holds it until it expires (minutes).",
    )
    skip_validation = forms.BooleanField(label="Skip validation", required=False)

    def __init__(self, *args, team, apps, instance: ExternalRegistry | None = None, **kwargs):
        self.team = team
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "provider": instance.provider, "endpoint": instance.endpoint,
                "username": instance.username, "name": instance.name,
                "test_image": instance.test_image, "insecure": instance.insecure,
                "direct_downloads": instance.direct_downloads, "apps": list(instance.apps.all()),
            }
        super().__init__(*args, **kwargs)
        # No maxlength in the page: a browser would cut a pasted key silently, and the
        # truncated secret would fail later with a less helpful message.
        self.fields["password"].widget.attrs.pop("maxlength", None)
        self.fields["apps"].queryset = apps
        provider = self._current_provider()
        preset = PRESETS.get(provider, PRESETS[Provider.OTHER])
        self.fields["endpoint"].help_text = preset["endpoint_help"]
        self.fields["endpoint"].widget.attrs["placeholder"] = preset["endpoint_placeholder"]
        self.fields["username"].help_text = preset["username_help"]
        password_help = preset["password_help"]
        if instance is not None and instance.has_secret:
            password_help += (" Leave blank to keep the stored one (required again if you "
                              "change the endpoint or Insecure registry).")
        self.fields["password"].help_text = password_help
        # For the few lines of JS that switch help texts and fill blank fields on provider change.
        self.fields["provider"].widget.attrs["data-presets"] = json.dumps(PRESETS)
        if instance is not None:
            self.fields.pop("skip_validation")
        self.is_ecr = provider == Provider.ECR  # the page shows direct_downloads for ECR only

    def _current_provider(self) -> str:
        if self.is_bound:
            value = self.data.get(self.add_prefix("provider"), "")
            if value in Provider.values:
                return value
        if self.instance is not None:
            return self.instance.provider
        return self.initial.get("provider") or Provider.ECR

    # --- fields -----------------------------------------------------------------------------

    def clean_endpoint(self):
        value = self.cleaned_data["endpoint"].strip()
        if not value:
            return ""  # a preset may fill it in clean()
        try:
            return normalize_endpoint(value)
        except ValueError as e:
            raise forms.ValidationError(str(e)) from None

    def clean_name(self):
        value = self.cleaned_data["name"].strip()
        if value and not NAME_RE.fullmatch(value):
            raise forms.ValidationError(
                "Use lower-case letters, digits and '-' (not at the start or end), up to 63 characters."
            )
        return value

    def clean_test_image(self):
        return clean_repository(self.cleaned_data["test_image"])

    def clean(self):
        data = super().clean()
        provider = data.get("provider")
        if not provider:
            return data
        preset = PRESETS[provider]
        endpoint = data.get("endpoint")
        if "endpoint" in data and not endpoint:
            if preset["endpoint"]:
                endpoint = data["endpoint"] = preset["endpoint"]
            else:
                self.add_error("endpoint", f"Enter the registry's endpoint, like {preset['endpoint_placeholder']}.")
        if not data.get("username") and preset["username"]:
            data["username"] = preset["username"]

        if endpoint:
            self._clean_endpoint_for_provider(data, provider, endpoint)
            self._clean_unique(data, endpoint)
        self._clean_credentials(data, provider, endpoint)
        if provider == Provider.ECR and data.get("insecure"):
            self.add_error("insecure", "Amazon ECR speaks HTTPS only: untick Insecure registry.")
        if provider != Provider.ECR and data.get("direct_downloads"):
            self.add_error("direct_downloads", "Only Amazon ECR sends layers from AWS S3: untick "
                                               "Let customers download layers directly from AWS "
                                               "S3, or choose Amazon ECR as Provider.")
        return data

    def _clean_endpoint_for_provider(self, data, provider, endpoint):
        self.ecr_account = self.ecr_region = ""
        looks_ecr = ".dkr.ecr." in endpoint
        if provider == Provider.ECR:
            from .ecr import parse_ecr_endpoint

            try:
                self.ecr_account, self.ecr_region = parse_ecr_endpoint(endpoint)
            except ValueError as e:
                self.add_error("endpoint", str(e))
        elif looks_ecr:
            self.add_error("provider", "This endpoint is an Amazon ECR registry: choose Amazon ECR as Provider.")
        if endpoint_has_port(endpoint) and not data.get("name") and "name" not in self.errors:
            self.add_error("name", "Give this registry a name: its endpoint has a port, and image names "
                                   "cannot carry a port everywhere.")

    def _clean_unique(self, data, endpoint):
        others = ExternalRegistry.objects.filter(team=self.team)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        existing = others.filter(endpoint=endpoint).first()
        if existing is not None:
            # A link rather than a bare refusal: the vendor most likely wants that registry.
            self.add_error("endpoint", format_html(
                '{} is already linked: <a href="{}">open it</a>.', endpoint,
                reverse("registries-detail", args=[existing.pk])))
        name = data.get("name")
        if name and others.filter(name=name).exists():
            self.add_error("name", f"Another registry is named {name!r}: choose another name.")

    def _clean_credentials(self, data, provider, endpoint):
        username, password = data.get("username", ""), data.get("password", "")
        ambient = provider == Provider.ECR and settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS
        if ambient and not username and not password:
            data["password_action"] = "clear"
            return
        keep = (
            self.instance is not None and self.instance.has_secret and not password
        )
        if keep and endpoint and endpoint != self.instance.endpoint:
            self.add_error("password", "The endpoint changed: type the password again (stored "
                                       "credentials are only sent to the endpoint they were saved for).")
            return
        if keep and bool(data.get("insecure")) != self.instance.insecure:
            self.add_error("password", "Insecure registry (plain HTTP) changed: type the password "
                                       "again (stored credentials are only sent the way they were "
                                       "saved for, never newly over plain HTTP).")
            return
        if not username:
            self.add_error("username", f"Enter the {'AWS Access Key ID' if provider == Provider.ECR else 'username'}.")
        if not password and not keep:
            self.add_error("password", f"Enter the {'AWS Secret Access Key' if provider == Provider.ECR else 'password'}.")
        data["password_action"] = "keep" if keep else "set"

    # --- applying -----------------------------------------------------------------------------

    def apply(self, registry: ExternalRegistry) -> list[str]:
        """Copy the cleaned data onto ``registry`` (unsaved); the names of the fields that changed.

        "password" is listed when a new secret was typed, never its value.
        """
        data = self.cleaned_data
        changed = []
        for field in ("provider", "endpoint", "username", "name", "test_image", "insecure",
                      "direct_downloads"):
            if getattr(registry, field) != data[field]:
                changed.append(field)
                setattr(registry, field, data[field])
        action = data.get("password_action")
        if action == "set":
            registry.secret = data["password"]
            changed.append("password")
        elif action == "clear" and registry.has_secret:
            registry.secret_encrypted = ""
            changed.append("password")
        registry.ecr_account = getattr(self, "ecr_account", "")
        registry.ecr_region = getattr(self, "ecr_region", "")
        if registry.pk and {"provider", "endpoint", "username", "password", "insecure"} & set(changed):
            registry.bump_revision()
        return changed


class TestImageForm(forms.Form):
    image = forms.CharField(
        label="Image", max_length=255, required=False,
        help_text="An image in this registry, e.g. demo-apps/nginx:latest. Blank: only check the login.",
    )

    def clean_image(self):
        return clean_repository(self.cleaned_data["image"])
