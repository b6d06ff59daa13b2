"""Apps and channels (Replicated: ``/v3/apps``, ``/v3/app``, ``/v3/app/{app}/channels``, ...).

An app or channel in a path is its slug or its id (Replicated's CLI sends ids).
"""

from datetime import datetime

from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from releases import services
from releases.forms import AppForm, ChannelForm
from releases.models import App, Channel
from releases.selectors import channels_with_current

from .access import get_app, require, visible_apps
from .conventions import error_response, idempotent

router = Router(tags=["apps and channels"])


class ChannelOut(Schema):
    """Replicated's KotsChannel, plus the keys of its Channel (``releaseLabel``, ``isHelmOnly``),
    which is what ``/apps`` carries: one shape serves both."""
    id: str
    appId: str
    name: str
    channelSlug: str
    description: str = ""
    channelSequence: int | None = None
    releaseSequence: int | None = None
    currentVersion: str = ""
    releaseLabel: str = ""
    isArchived: bool
    isHelmOnly: bool = False
    created: datetime


class AppOut(Schema):
    id: str
    name: str
    slug: str
    teamId: str
    isArchived: bool
    created: datetime
    channels: list[ChannelOut] = []


class AppsOut(Schema):
    apps: list[AppOut]


class AppIn(Schema):
    name: str
    slug: str = ""


class AppCreated(Schema):
    app: AppOut


class ChannelsOut(Schema):
    channels: list[ChannelOut]


class ChannelIn(Schema):
    name: str
    description: str = ""


class ChannelOne(Schema):
    channel: ChannelOut


def channel_out(channel: Channel) -> dict:
    """A channel as Replicated's KotsChannel (``channels_with_current`` annotations, if any)."""
    label = getattr(channel, "current_label", None) or ""
    return {
        "id": str(channel.pk), "appId": str(channel.app_id), "name": channel.name,
        "channelSlug": channel.slug, "description": "",
        "channelSequence": getattr(channel, "current_channel_sequence", None),
        "releaseSequence": getattr(channel, "current_release", None),
        "currentVersion": label, "releaseLabel": label,
        "isArchived": channel.is_archived, "isHelmOnly": False, "created": channel.created_at,
    }


def app_out(app: App, channels=None) -> dict:
    return {
        "id": str(app.pk), "name": app.name, "slug": app.slug, "teamId": str(app.team_id),
        "isArchived": app.is_archived, "created": app.created_at,
        "channels": [channel_out(c) for c in (channels or [])],
    }


def _live_channels(app: App):
    return channels_with_current(app.channels.filter(archived_at__isnull=True))


def get_channel(app: App, ref: str) -> Channel:
    """The app's channel ``ref`` (id or slug), or 404."""
    channels = app.channels.all()
    match = channels.filter(slug=ref).first()
    if match is None and ref.isdigit():
        match = get_object_or_404(channels, pk=int(ref))
    if match is None:
        raise Http404("No such channel.")
    return match


@router.get("/apps", response=AppsOut, summary="List apps")
def list_apps(request, excludeChannels: bool = False):
    """The team's apps (the token's, for an app-scoped token), with their channels. Two queries."""
    apps = visible_apps(request).filter(archived_at__isnull=True).order_by("name")
    if not excludeChannels:
        apps = apps.prefetch_related(Prefetch(
            "channels", queryset=channels_with_current(Channel.objects.filter(archived_at__isnull=True)),
            to_attr="live_channels"))
    return {"apps": [app_out(a, getattr(a, "live_channels", None)) for a in apps]}


@router.post("/app", response={201: AppCreated}, summary="Create an app")
def create_app(request, payload: AppIn):
    """A new app with the channels Stable, Beta and Unstable (as "Create app" on the Apps page)."""
    require(request, "can_edit_releases", team_level=True)

    def create():
        form = AppForm({"name": payload.name, "slug": payload.slug}, team=request.team)
        if not form.is_valid():
            raise error_response(form)
        app = services.app_create(team=request.team, name=form.cleaned_data["name"],
                                  slug=form.cleaned_data["slug"], user=request.access.user, request=request)
        return 201, {"app": app_out(app, _live_channels(app))}

    return idempotent(request, create)


@router.get("/app/{app}/channels", response=ChannelsOut, summary="List channels")
def list_channels(request, app: str, channelName: str = ""):
    found = get_app(request, app)
    channels = _live_channels(found)
    if channelName:
        channels = channels.filter(name=channelName)
    return {"channels": [channel_out(c) for c in channels]}


@router.get("/app/{app}/channel/{channel}", response=ChannelOne, summary="Get a channel")
def get_one_channel(request, app: str, channel: str):
    found = get_app(request, app)
    ref = get_channel(found, channel)
    return {"channel": channel_out(channels_with_current(Channel.objects.filter(pk=ref.pk)).get())}


@router.post("/app/{app}/channel", response={201: ChannelOne}, summary="Create a channel")
def create_channel(request, app: str, payload: ChannelIn):
    require(request, "can_edit_releases")
    found = get_app(request, app, write=True)

    def create():
        form = ChannelForm({"name": payload.name}, app=found)
        if not form.is_valid():
            raise error_response(form)
        channel = services.channel_create(app=found, name=form.cleaned_data["name"], slug=form.slug,
                                          user=request.access.user, request=request)
        return 201, {"channel": channel_out(channel)}

    return idempotent(request, create)
