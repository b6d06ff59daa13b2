"""The "Mirror image" form: validates and normalises every input, keeps what was typed."""

from __future__ import annotations

import re

from django import forms

from ..reference import REMOTE_NAME_PATTERN, TAG_PATTERN, InvalidReference, parse
from .services import default_target

# distribution's repository grammar: lowercase path components separated by "/".
_REPOSITORY = re.compile(REMOTE_NAME_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
# An app slug carried through from a release's image list (plain text: registries/ does not
# import releases/); the job page offers to point that app's draft at the mirrored image.
APP_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def origin_app(value: str | None) -> str:
    """The app slug of a querystring or hidden field, or "" when it is not a slug."""
    value = (value or "").strip()
    return value if len(value) <= 60 and APP_SLUG.fullmatch(value) else ""


class MirrorForm(forms.Form):
    source = forms.CharField(
        label="Source image", max_length=500,
        help_text="nginx, docker.io/library/nginx:1.27, ghcr.io/org/app@sha256:…, or an image "
                  "in one of your linked registries.",
        widget=forms.TextInput(attrs={"placeholder": "nginx", "autofocus": True}))
    prefix = forms.CharField(
        label="Target prefix", max_length=200, required=False,
        help_text="Put before the image name when the target repository is blank: "
                  "nginx with prefix demo-apps becomes demo-apps/nginx.")
    target_repository = forms.CharField(
        label="Target repository", max_length=255, required=False,
        help_text="Blank: the prefix plus the source's last path component.")
    target_tag = forms.CharField(label="Target tag", max_length=128, required=False,
                                 help_text="Blank: the source's tag (latest if it has none).")
    platforms = forms.CharField(
        label="Platforms", max_length=255, required=False,
        help_text="Blank copies every platform with identical digests. Or a list like "
                  "linux/amd64, linux/arm64 (a subset gets a new index digest).")
    push_username = forms.CharField(
        label="Push username", max_length=255, required=False,
        help_text="Optional: credentials with write access for this job only (for ECR: an AWS "
                  "Access Key ID). Blank uses the registry's stored credentials.")
    push_password = forms.CharField(
        label="Push password", max_length=4096, required=False, strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted on the job and wiped when it ends (for ECR: the AWS Secret "
                  "Access Key).")

    app = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, registries=None, **kwargs):
        """With ``registries`` (the team-level page), the user picks the target among them."""
        super().__init__(*args, **kwargs)
        if registries is not None:
            several = len(registries) > 1
            self.fields = {"registry": forms.ModelChoiceField(
                label="Target registry", queryset=registries,
                empty_label="Choose a linked registry…" if several else None,
                help_text="The linked registry the image is copied into.",
                error_messages={"required": "Choose the registry to copy the image into.",
                                "invalid_choice": "Choose one of your linked registries."}),
                **self.fields}

    def clean_app(self):
        return origin_app(self.cleaned_data.get("app"))

    def clean_source(self):
        try:
            self.reference = parse(self.cleaned_data["source"].strip())
        except InvalidReference as e:
            raise forms.ValidationError(str(e)) from None
        return str(self.reference)

    def clean_prefix(self):
        prefix = self.cleaned_data["prefix"].strip().strip("/")
        if prefix and not _REPOSITORY.fullmatch(prefix):
            raise forms.ValidationError(
                "Use lowercase letters, digits, and . _ - separated by /, like demo-apps.")
        return prefix

    def clean_target_repository(self):
        repo = self.cleaned_data["target_repository"].strip().strip("/")
        if repo and not _REPOSITORY.fullmatch(repo):
            raise forms.ValidationError(
                "A repository is lowercase letters, digits, and . _ - in parts separated by /, "
                "like demo-apps/nginx (no host, no tag).")
        return repo

    def clean_target_tag(self):
        tag = self.cleaned_data["target_tag"].strip()
        if tag and not _TAG.fullmatch(tag):
            raise forms.ValidationError(
                "A tag is up to 128 letters, digits, _ . and -, not starting with . or -.")
        return tag

    def clean_platforms(self):
        items = [p.strip() for p in self.cleaned_data["platforms"].split(",") if p.strip()]
        bad = [p for p in items if not _PLATFORM.fullmatch(p)]
        if bad:
            raise forms.ValidationError(f"{', '.join(bad)}: write a platform as os/architecture[/variant], "
                                        "like linux/amd64 or linux/arm64/v8.")
        return ",".join(items)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        repo, tag = default_target(self.reference, prefix=data.get("prefix", ""))
        data["target_repository"] = data.get("target_repository") or repo
        data["target_tag"] = data.get("target_tag") or tag
        if bool(data.get("push_username")) and not data.get("push_password"):
            self.add_error("push_password", "Type the push password too, or clear the push username.")
        if data.get("push_password") and not data.get("push_username"):
            self.add_error("push_username", "Type the push username too, or clear the password.")
        return data
