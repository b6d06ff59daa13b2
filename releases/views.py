"""Apps, channels, releases, promotion, history and diffs.

Everyone on the team reads; Developers and Admins (``can_edit_releases``) change things.
Another team's app, channel or release is a 404. Only the newest release, while no channel
has it, is a draft edited in place; a promoted release is frozen and "Create new release"
copies its files into the next sequence.
"""

import threading
from collections import OrderedDict

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone, translation
from django.views.decorators.http import require_POST

from portal.forms import form_status
from portal.htmx import render_live
from portal.roles import team_required

from . import services
from .diff import diff_files
from .forms import (
    AppEditForm,
    AppForm,
    ChannelForm,
    FileDeleteForm,
    PromoteForm,
    ReleaseFileForm,
    ReleaseNewForm,
)
from .image_check.selectors import (
    release_failing_images,
    release_image_rows,
    release_pending_images,
)
from .image_check.services import release_checks_ensure
from .kustomize import tar_gz
from .manifests import images_in, problem_count, unique_images, validate_file
from .models import App, Channel, Promotion, Release, ReleaseFile, slug_from_name
from .selectors import (
    app_release_count,
    channel_promotion_count,
    channels_with_current,
    release_history_rows,
    team_app,
)
from .services import DraftExists, ReleaseFrozen, release_is_editable

PAGE_SIZE = 25
LATEST_RELEASES = 5
# Rendered release rows kept per process (a few KB each), least recently used dropped first.
RENDERED_ROWS = 2_000


# --- access helpers -----------------------------------------------------------------------


def _get_app(request, slug, *, write=False) -> App:
    """The team's app ``slug`` or 404; with ``write``, refuse an archived app."""
    return team_app(team=request.team, slug=slug, write=write)


def _get_release(request, slug, sequence) -> Release:
    return get_object_or_404(
        Release.objects.select_related("app", "created_by"),
        app__team=request.team, app__slug=slug, sequence=sequence,
    )


def _get_channel(app, channel_slug) -> Channel:
    return get_object_or_404(Channel, app=app, slug=channel_slug)


def _channels_with_current(app_filter: dict):
    """Channels annotated with their current (newest, not demoted) promotion, in one query."""
    return channels_with_current(Channel.objects.filter(archived_at__isnull=True, **app_filter))


def _channel_tabs(app):
    """The app's channels for ``_app_tabs.html``: their slugs and names only (no model instances,
    a tenth of a millisecond less on every history page)."""
    return app.channels.filter(archived_at__isnull=True).values("slug", "name")


def _newest_release(app) -> Release | None:
    return app.releases.order_by("-sequence").first()


_rendered_rows: OrderedDict[tuple, str] = OrderedDict()
_rendered_rows_lock = threading.Lock()


def _render_rows(app, rows) -> None:
    """Give each row its ``html``: the ``release-row`` partial of ``_release_table.html``.

    Rendering the rows is most of a history page's time, and a promoted release's row hardly ever
    changes, so a row rendered once is reused. The key is everything the partial reads (the row's
    values and promotions, the app's slug, the time zone, language and script prefix that shape
    dates and links): a changed row is a new key, never a stale entry, and nothing needs invalidating.
    """
    scope = (app.slug, timezone.get_current_timezone_name(), translation.get_language(), get_script_prefix())
    for r in rows:
        key = (scope, *(v for k, v in r.items() if k != "promotions"), *(tuple(p.values()) for p in r["promotions"]))
        with _rendered_rows_lock:
            html = _rendered_rows.get(key)
            if html is not None:
                _rendered_rows.move_to_end(key)
        if html is None:
            html = render_to_string("releases/_release_table.html#release-row", {"app": app, "r": r})
            with _rendered_rows_lock:
                _rendered_rows[key] = html
                while len(_rendered_rows) > RENDERED_ROWS:
                    _rendered_rows.popitem(last=False)
        r["html"] = html


def _release_rows(app, sequences: range, *, can_edit) -> list[dict]:
    """The releases with ``sequences`` as dicts with their promotions and rendered ``html``, for
    ``_release_table.html``; ``editable`` marks the newest release while it is a draft, for those
    who may edit it (sequences are gapless: the newest is the app's release count)."""
    rows = release_history_rows(app, sequences)
    newest = app_release_count(app)
    for r in rows:
        r["editable"] = r["promoted_at"] is None and can_edit and r["sequence"] == newest
    _render_rows(app, rows)
    return rows


def _sequence_page(request, count: int):
    """A page of the sequences ``count`` … 1, newest first (``count``: ``app_release_count`` or
    ``channel_promotion_count``).

    Releases and promotions are never deleted and their sequences are gapless, so a page of a
    history is a range of sequences: its rows are found by sequence on the unique (app, sequence)
    or (channel, channel sequence) index, with no COUNT(*) and no OFFSET (which the database walks
    through, growing with the page number).
    """
    return Paginator(range(count, 0, -1), PAGE_SIZE).get_page(request.GET.get("page"))


# --- apps ---------------------------------------------------------------------------------


@team_required()
def app_list(request):
    apps = (
        App.objects.filter(team=request.team, archived_at__isnull=True)
        .annotate(release_count=Count("releases", distinct=True))
        .prefetch_related(Prefetch("channels", queryset=_channels_with_current({}), to_attr="live_channels"))
        .order_by("name")
    )
    return render(request, "releases/app_list.html", {"nav": "apps", "apps": apps})


@team_required("can_edit_releases")
def app_create(request):
    if request.htmx and request.htmx.target == "slug-preview":
        # Live preview of the slug derived from the name being typed.
        return render(request, "releases/app_form.html#slug-preview",
                      {"derived_slug": slug_from_name(request.GET.get("name", ""))})
    form = AppForm(request.POST or None, team=request.team)
    if request.method == "POST" and form.is_valid():
        try:
            app = services.app_create(team=request.team, name=form.cleaned_data["name"],
                                      slug=form.cleaned_data["slug"], user=request.user, request=request)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"App {app.name} created with the channels Stable, Beta and Unstable.")
            return redirect("releases-app-detail", slug=app.slug)
    return render(request, "releases/app_form.html", {"nav": "apps", "form": form,
                                                      "derived_slug": slug_from_name(form["name"].value() or "")},
                  status=form_status(form))


def _app_detail_context(request, app, channel_form=None):
    newest = _newest_release(app)
    count = app_release_count(app)
    latest = _release_rows(app, range(count, max(count - LATEST_RELEASES, 0), -1),
                           can_edit=request.membership.can_edit_releases)
    channels = list(_channels_with_current({"app": app}).annotate(
        customer_count=Count("customers", distinct=True)))
    return {
        "nav": "apps", "app": app, "channels": channels, "latest": latest, "newest": newest,
        "newest_is_draft": newest is not None and newest.is_draft,
        "channel_form": channel_form or ChannelForm(app=app),
        "release_count": count,
    }


@team_required()
def app_detail(request, slug):
    app = _get_app(request, slug)
    return render(request, "releases/app_detail.html", _app_detail_context(request, app))


@team_required("can_edit_releases")
def app_edit(request, slug):
    """Rename the app; change its slug until a release is promoted (then it is in licenses)."""
    app = _get_app(request, slug, write=True)
    slug_fixed = app.slug_is_fixed
    form = AppEditForm(request.POST or None, app=app, slug_fixed=slug_fixed,
                       initial={"name": app.name, "slug": app.slug})
    if request.method == "POST" and form.is_valid():
        try:
            changes = services.app_update(app=app, name=form.cleaned_data["name"], slug=form.cleaned_data["slug"],
                                          user=request.user, request=request)
        except ValidationError as error:
            form.add_error(None, error)
            return render(request, "releases/app_edit.html", {"nav": "apps", "app": app, "form": form,
                                                              "slug_fixed": slug_fixed}, status=400)
        if changes:
            messages.success(request, f"App {app.name} saved.")
        return redirect("releases-app-detail", slug=app.slug)
    return render(request, "releases/app_edit.html", {"nav": "apps", "app": app, "form": form,
                                                      "slug_fixed": slug_fixed}, status=form_status(form))


@require_POST
@team_required("can_edit_releases")
def app_archive(request, slug):
    app = _get_app(request, slug, write=True)
    services.app_archive(app=app, user=request.user, request=request)
    messages.success(request, f"App {app.name} archived. Its releases and customers are kept.")
    return redirect("releases-app-list")


# --- channels -----------------------------------------------------------------------------


@require_POST
@team_required("can_edit_releases")
def channel_create(request, slug):
    app = _get_app(request, slug, write=True)
    form = ChannelForm(request.POST, app=app)
    if form.is_valid():
        try:
            channel = services.channel_create(app=app, name=form.cleaned_data["name"], slug=form.slug,
                                              user=request.user, request=request)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Channel {channel.name} added.")
            return redirect("releases-app-detail", slug=app.slug)
    return render(request, "releases/app_detail.html", _app_detail_context(request, app, channel_form=form),
                  status=form_status(form))


@require_POST
@team_required("can_edit_releases")
def channel_archive(request, slug, channel_slug):
    app = _get_app(request, slug, write=True)
    channel = _get_channel(app, channel_slug)
    try:
        archived = services.channel_archive(channel=channel, user=request.user, request=request)
    except ValidationError as error:
        messages.error(request, error.message)
    else:
        if archived:
            messages.success(request, f"Channel {channel.name} archived.")
    return redirect("releases-app-detail", slug=app.slug)


# --- releases: create, edit, validate -----------------------------------------------------


@require_POST
@team_required("can_edit_releases")
def release_new(request, slug):
    """Start a draft: the newest release's files (or the default files) in the next sequence."""
    app = _get_app(request, slug, write=True)
    form = ReleaseNewForm(request.POST)
    from_sequence = form.cleaned_data["from"] if form.is_valid() else None
    try:
        release, base = services.release_create_draft(app=app, user=request.user, from_sequence=from_sequence,
                                                      request=request)
    except DraftExists as draft:
        messages.info(request, f"Release {draft.release.sequence} is already a draft: edit it.")
        return redirect("releases-release-edit", slug=app.slug, sequence=draft.release.sequence)
    messages.success(request, f"Release {release.sequence} is a new draft"
                              f"{f' with the files of release {base.sequence}' if base else ''}.")
    return redirect("releases-release-edit", slug=app.slug, sequence=release.sequence)


def _editor_context(request, release, form, current_name, extra_problems=()):
    files = list(release.files.all())
    # The images of the release as it would be with the file being edited.
    text = form["content"].value() if form.is_bound else None
    pairs = []
    for f in files:
        if f.name == current_name and text is not None:
            continue
        pairs.append((f.name, f.content))
    if text is not None:
        pairs.append((form["name"].value() or current_name or "new file", text.replace("\r\n", "\n")))
    problems = list(getattr(form, "problems", [])) or list(extra_problems)
    return {
        "nav": "apps", "app": release.app, "release": release, "files": files, "form": form,
        "current_name": current_name, "images": unique_images(images_in(pairs)),
        "problems": problems, "problem_count": problem_count(problems), "checked": form.is_bound,
    }


def _editable_or_redirect(request, release):
    if release_is_editable(release):
        return None
    return _frozen(request, release)


def _frozen(request, release):
    """Say why ``release`` cannot be edited, and show it."""
    if release.is_draft:
        messages.info(request, f"Release {release.sequence} is not the newest release, so it is frozen.")
    else:
        messages.info(request, f"Release {release.sequence} is promoted, so it is frozen: "
                               "create a new release to change it.")
    return redirect("releases-release-detail", slug=release.app.slug, sequence=release.sequence)


@team_required("can_edit_releases")
def release_edit(request, slug, sequence):
    release = _get_release(request, slug, sequence)
    if release.app.is_archived:
        raise PermissionDenied("This app is archived.")
    if (response := _editable_or_redirect(request, release)) is not None:
        return response
    files = list(release.files.all())
    if request.method == "POST":
        form = ReleaseFileForm(request.POST, names=[f.name for f in files])
        if form.is_valid():
            return _save_file(request, release, form)
        current = form.cleaned_data.get("original_name", "")
    else:
        current = request.GET.get("file", "")
        if request.GET.get("new") or not files:
            form = ReleaseFileForm(initial={"name": "", "content": ""})
            current = ""
        else:
            file = next((f for f in files if f.name == current), files[0])
            current = file.name
            form = ReleaseFileForm(initial={"original_name": file.name, "name": file.name, "content": file.content})
    return render(request, "releases/release_edit.html", _editor_context(request, release, form, current),
                  status=form_status(form))


def _save_file(request, release, form):
    name = form.cleaned_data["name"]
    try:
        _file, changed = services.release_file_save(
            release=release, original_name=form.cleaned_data["original_name"], name=name,
            content=form.cleaned_data["content"], user=request.user, request=request)
    except ReleaseFrozen:
        messages.error(request, f"Release {release.sequence} was promoted meanwhile: your change was not saved. "
                                "Create a new release and apply it there.")
        return redirect("releases-release-detail", slug=release.app.slug, sequence=release.sequence)
    except ReleaseFile.DoesNotExist:
        raise Http404("No such file.") from None
    if changed:
        messages.success(request, f"Saved {name}.")
    else:
        messages.info(request, f"{name} had no changes.")
    url = reverse("releases-release-edit", kwargs={"slug": release.app.slug, "sequence": release.sequence})
    return redirect(f"{url}?file={name}")


@require_POST
@team_required("can_edit_releases")
def release_validate(request, slug, sequence):
    """Check the file being typed: the problems and the release's images (htmx partial)."""
    release = _get_release(request, slug, sequence)
    form = ReleaseFileForm(request.POST, names=[f.name for f in release.files.all()])
    form.is_valid()
    context = _editor_context(request, release, form, form.cleaned_data.get("original_name", ""))
    if request.htmx:
        return render(request, "releases/release_edit.html#yaml-check", context, status=form_status(form))
    return render(request, "releases/release_edit.html", context, status=form_status(form))


@require_POST
@team_required("can_edit_releases")
def file_delete(request, slug, sequence):
    release = _get_release(request, slug, sequence)
    if release.app.is_archived:
        raise PermissionDenied("This app is archived.")
    form = FileDeleteForm(request.POST)
    name = form.cleaned_data["name"] if form.is_valid() else ""
    try:
        services.release_file_delete(release=release, name=name, user=request.user, request=request)
    except ReleaseFrozen as frozen:
        return _frozen(request, frozen.release)
    except ReleaseFile.DoesNotExist:
        raise Http404("No such file.") from None
    messages.success(request, f"Deleted {name}.")
    return redirect("releases-release-edit", slug=release.app.slug, sequence=release.sequence)


# --- release pages: detail, diff, download ----------------------------------------------------------


@team_required()
def release_detail(request, slug, sequence):
    release = _get_release(request, slug, sequence)
    release_checks_ensure(release)  # viewing a release starts its image check
    files = list(release.files.all())
    problems = {f.name: validate_file(f.name, f.content) for f in files}
    return render(request, "releases/release_detail.html", {
        "nav": "apps", "app": release.app, "release": release, "files": files,
        "problems": {k: v for k, v in problems.items() if v},
        "images": images_in(files),
        "promotions": release.promotions.select_related("channel", "promoted_by").order_by("channel__position"),
        "editable": release_is_editable(release), "previous": release.previous(),
    })


@team_required()
def release_diff(request, slug, sequence):
    release = _get_release(request, slug, sequence)
    against = release.previous()
    if request.GET.get("against", "").isdigit():
        against = get_object_or_404(Release, app=release.app, sequence=int(request.GET["against"]))
    old = {f.name: f.content for f in against.files.all()} if against else {}
    new = {f.name: f.content for f in release.files.all()}
    diffs = diff_files(old, new)
    return render(request, "releases/release_diff.html", {
        "nav": "apps", "app": release.app, "release": release, "against": against, "diffs": diffs,
        "changed": [d for d in diffs if d.status != "unchanged"],
    })


@team_required()
def release_download(request, slug, sequence):
    """The release's files as written, as a tar.gz under one folder named after app and release.

    The same builder as the customer's download; every timestamp is the release's last change,
    so a release downloads as the same bytes every time.
    """
    release = _get_release(request, slug, sequence)
    name = f"{release.app.slug}-release-{release.sequence}"
    files = {f.name: f.content for f in release.files.all()}
    response = HttpResponse(tar_gz(files, root=name, mtime=int(release.updated_at.timestamp())),
                            content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
    return response


# --- promotion ----------------------------------------------------------------------------


@team_required("can_edit_releases")
def release_promote(request, slug, sequence):
    """The promote page. Its first promotion pins what the image check resolved, so stale or
    missing verdicts are checked again first; the page polls its checks panel until they answer."""
    release = _get_release(request, slug, sequence)
    app = release.app
    if app.is_archived:
        raise PermissionDenied("This app is archived.")
    release_checks_ensure(release)  # re-checks verdicts older than their time-to-live
    checks = release_image_rows(release)
    # A pinned release keeps its pins: there is nothing to wait for.
    pending = release_pending_images(release) if release.pinned_at is None else []
    context = {"nav": "apps", "app": app, "release": release, "rows": checks["rows"],
               "missing": checks["missing"], "failing_count": checks["failing"],
               "pending": bool(pending)}
    if request.htmx and request.method == "GET":
        return render_live(request, "releases/release_promote.html", context,
                           partial="promote-checks", done=not pending)
    files = list(release.files.all())
    blockers = services.release_promote_blockers(release)
    initial = {"channels": list(app.channels.filter(archived_at__isnull=True, slug="unstable")[:1])}
    failing = release_failing_images(release)
    form = PromoteForm(request.POST or None, app=app, initial=initial, failing_images=failing,
                       pending_images=pending)
    if request.method == "POST" and not blockers and form.is_valid():
        data = form.cleaned_data
        promotions = services.release_promote(
            release=release, channels=data["channels"], user=request.user, version_label=data["version_label"],
            release_notes=data["release_notes"], is_required=data["is_required"], failing_images=failing,
            request=request)
        names = ", ".join(p.channel.name for p in promotions)
        messages.success(request, f"Release {release.sequence} promoted to {names} as {data['version_label']}.")
        return redirect("releases-app-detail", slug=app.slug)
    return render(request, "releases/release_promote.html", {
        **context, "form": form, "blockers": blockers,
        "images": unique_images(images_in(files)), "failing": failing,
    }, status=400 if request.method == "POST" else 200)


@require_POST
@team_required("can_edit_releases")
def promotion_demote(request, slug, pk):
    app = _get_app(request, slug, write=True)
    promotion = get_object_or_404(Promotion.objects.select_related("channel", "release"), channel__app=app, pk=pk)
    if services.promotion_demote(promotion=promotion, user=request.user, request=request):
        messages.success(request, f"{promotion.version_label} demoted from {promotion.channel.name}: "
                                  "customers on the channel no longer see it.")
    return redirect("releases-channel-history", slug=app.slug, channel_slug=promotion.channel.slug)


# --- history ------------------------------------------------------------------------------


@team_required()
def release_history(request, slug):
    app = _get_app(request, slug)
    page = _sequence_page(request, app_release_count(app))
    rows = _release_rows(app, page.object_list, can_edit=request.membership.can_edit_releases)
    return render(request, "releases/history.html", {
        "nav": "apps", "app": app, "page": page, "rows": rows,
        "channels": _channel_tabs(app),
    })


@team_required()
def channel_history(request, slug, channel_slug):
    app = _get_app(request, slug)
    channel = _get_channel(app, channel_slug)
    page = _sequence_page(request, channel_promotion_count(channel))
    promotions = (
        channel.promotions.select_related("release", "promoted_by", "demoted_by")
        .filter(channel_sequence__range=(min(page.object_list, default=0), max(page.object_list, default=0)))
        .order_by("-channel_sequence")
    )
    current = channel.current_promotion()
    return render(request, "releases/channel_history.html", {
        "nav": "apps", "app": app, "channel": channel, "page": page, "promotions": promotions,
        "current": current, "channels": _channel_tabs(app),
        "grace_days": settings.PORTAL_ENTITLEMENT_GRACE_DAYS,
    })
