"""Forms of the release side: apps, channels, release files, promotion."""

from django import forms

from .manifests import file_name_error, problem_count, validate_file
from .models import SLUG_RE, App, Channel, slug_from_name
from .services import ImageProblem, promotion_image_problem

# Words the URLs use after /apps/ and /channels/.
RESERVED_SLUGS = {"new"}
SLUG_HELP = "Lowercase letters, digits and hyphens. Used in URLs, licenses and image names; fixed once a release is promoted."


def _clean_slug(value: str) -> str:
    value = value.strip()
    if not SLUG_RE.match(value):
        raise forms.ValidationError(
            "Use lowercase letters, digits and single hyphens between them (for example my-app)."
        )
    if value in RESERVED_SLUGS:
        raise forms.ValidationError(f"“{value}” is reserved: choose another slug.")
    return value


class AppForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autofocus": True}))
    slug = forms.CharField(
        max_length=60, required=False, help_text=SLUG_HELP + " Leave empty to derive it from the name."
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("name")
        slug = (cleaned.get("slug") or "").strip()
        if not slug and name:
            slug = slug_from_name(name)
            if not slug:
                self.add_error("slug", "The name has no letters or digits to derive a slug from: enter one.")
                return cleaned
        if not slug:
            return cleaned
        try:
            slug = _clean_slug(slug)
        except forms.ValidationError as error:
            self.add_error("slug", error)
            return cleaned
        if App.objects.filter(team=self.team, slug=slug).exists():
            self.add_error("slug", f"Your team already has an app with the slug “{slug}”: choose another.")
        cleaned["slug"] = slug
        return cleaned


class AppEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=60, help_text=SLUG_HELP)

    def __init__(self, *args, app, slug_fixed, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        if slug_fixed:
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = "Fixed: a release is promoted, so customers' licenses and image names use it."

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name

    def clean_slug(self):
        if self.fields["slug"].disabled:
            return self.app.slug
        slug = _clean_slug(self.cleaned_data["slug"])
        if App.objects.filter(team=self.app.team, slug=slug).exclude(pk=self.app.pk).exists():
            raise forms.ValidationError(f"Your team already has an app with the slug “{slug}”: choose another.")
        return slug


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100, label="Channel name")

    def __init__(self, *args, app, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        slug = slug_from_name(name)
        if not slug:
            raise forms.ValidationError("Use at least one letter or digit.")
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"“{name}” is reserved: choose another name.")
        if Channel.objects.filter(app=self.app, slug=slug).exists():
            raise forms.ValidationError(f"This app already has a channel “{name}” (slug {slug}).")
        self.slug = slug
        return name


class ReleaseFileForm(forms.Form):
    """One file of a draft: its (new) name and content. ``original_name`` is empty for a new file."""

    original_name = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    name = forms.CharField(
        label="File name", max_length=255,
        help_text="A relative name ending in .yaml or .yml, such as deployment.yaml.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    content = forms.CharField(
        label="Content", required=False, strip=False,
        widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false", "autocomplete": "off",
                                     "autocapitalize": "off", "wrap": "off", "rows": 28}),
    )

    def __init__(self, *args, names=(), **kwargs):
        """``names``: the release's file names; the file's own (``original_name``) may stay."""
        super().__init__(*args, **kwargs)
        self.names = set(names)
        self.problems = []

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        error = file_name_error(name)
        if error:
            raise forms.ValidationError(error)
        if name in self.names - {self.cleaned_data.get("original_name", "")}:
            raise forms.ValidationError(f"This release already has a file named {name}: choose another name.")
        return name

    def clean_content(self):
        # Browsers send CRLF line ends from a textarea; store LF as kubectl writes.
        return self.cleaned_data["content"].replace("\r\n", "\n")

    def clean(self):
        cleaned = super().clean()
        if "content" in cleaned:
            self.problems = validate_file(cleaned.get("name") or "", cleaned["content"])
            if self.problems:
                count = problem_count(self.problems)
                self.add_error(
                    "content",
                    f"The YAML has {count:,} problem{'s' if count > 1 else ''}: fix "
                    f"{'them' if count > 1 else 'it'} (see below) and save again.",
                )
        return cleaned


class ReleaseNewForm(forms.Form):
    """"Create new release" from the newest release or, with ``from``, from an older one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # ``from`` is a Python keyword, so the field is added here rather than declared.
        self.fields["from"] = forms.CharField(required=False, strip=False)

    def clean_from(self) -> int | None:
        """A release sequence, or None (anything but digits means the newest release)."""
        value = self.cleaned_data["from"]
        return int(value) if value.isascii() and value.isdigit() else None


class FileDeleteForm(forms.Form):
    name = forms.CharField(required=False, strip=False)


class PromoteForm(forms.Form):
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.none(), widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one channel."},
    )
    version_label = forms.CharField(
        max_length=100, help_text="What customers see, such as 1.0.1.",
        error_messages={"required": "Enter a version label, such as 1.0.1."},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    release_notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    is_required = forms.BooleanField(
        required=False, label="Required",
        help_text="Customers must install this release before any later one.",
    )

    promote_anyway = forms.BooleanField(
        required=False, label="Promote anyway: customers will fail to pull these images",
    )

    # The page's remedy for each image problem; the vendor API words its own (``promoteAnyway``).
    IMAGE_REFUSALS = {
        ImageProblem.FAILING: "Tick \"Promote anyway\" to promote a release whose images customers will "
                              "fail to pull, or link their registry first.",
        ImageProblem.PENDING: "The image checks shown above are still running: wait for them, or tick "
                              "\"Promote anyway\".",
    }

    def __init__(self, *args, app, failing_images=(), pending_images=(), image_refusals=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_refusals = image_refusals or self.IMAGE_REFUSALS
        self.fields["channels"].queryset = app.channels.filter(archived_at__isnull=True)
        self.fields["channels"].label_from_instance = lambda c: c.name
        # Images the private-image check says customers cannot pull, or is still checking (the
        # first promotion pins what the check resolved): promoting takes an explicit confirmation.
        self.failing_images = list(failing_images)
        self.pending_images = list(pending_images)
        if not self.failing_images and not self.pending_images:
            del self.fields["promote_anyway"]
        elif not self.failing_images:
            self.fields["promote_anyway"].label = (
                "Promote anyway: images not checked yet are pinned at their first pull")

    def clean(self):
        cleaned = super().clean()
        problem = promotion_image_problem(failing_images=self.failing_images, pending_images=self.pending_images,
                                          anyway=bool(cleaned.get("promote_anyway")))
        if problem:
            self.add_error("promote_anyway", self.image_refusals[problem])
        return cleaned

    def clean_version_label(self):
        label = self.cleaned_data["version_label"].strip()
        if not label:
            raise forms.ValidationError("Enter a version label, such as 1.0.1.")
        return label
