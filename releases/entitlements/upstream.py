"""Which upstream repository a proxied name stands for: one rule for the proxy registry (which
resolves the path a customer pulls) and for the private-image check and the pins (which meet
images the vendor wrote on the portal's own proxy host, ``<proxy>/proxy/<app slug>/<name>``).

``name`` (the path after ``/proxy/<app slug>/``) resolves as follows: its first part is a
team registry's Name first, else a host (it has a dot), else Docker Hub (``nginx`` is
``docker.io/library/nginx``).
"""

from __future__ import annotations

from registries.reference import DOCKER_HUB, Reference, canonical_registry

from ..licenses import proxy_domain


def resolve(app, name: str, team_registries) -> tuple[Reference, object | None]:
    """The upstream repository of ``name`` (the path after /proxy/<slug>/) and its registry
    among ``team_registries`` (None: not a registry of the team)."""
    first, _, rest = name.partition("/")
    by_name = {r.name: r for r in team_registries if r.name}
    if first in by_name and rest:
        registry = by_name[first]
        return Reference(domain=registry.endpoint, path=rest), registry
    if "." in first and rest:
        domain, path = canonical_registry(first.lower()), rest
    else:
        domain, path = DOCKER_HUB, name if "/" in name else f"library/{name}"
    registry = next((r for r in team_registries if r.endpoint == domain), None)
    return Reference(domain=domain, path=path), registry


class OtherApp(Exception):
    """An image on the portal's proxy host under another app's slug: never resolved."""


def proxied_path(ref: Reference, *, app_slug: str) -> str | None:
    """For an image written on the portal's own proxy host, the name after
    ``/proxy/<app_slug>/`` (OtherApp when it names another app); None for any other image."""
    if ref.domain != proxy_domain():
        return None
    prefix, _, name = ref.path.partition("/")
    slug, _, name = name.partition("/")
    if prefix != "proxy" or not name:
        return None
    if slug != app_slug:
        raise OtherApp(f"{ref.name()} is another application's image on this portal's proxy.")
    return name


def upstream_of(app, ref: Reference, team_registries) -> Reference:
    """``ref`` itself, or for an image on the portal's own proxy host the upstream image behind
    it (same tag and digest); OtherApp for another app's."""
    name = proxied_path(ref, app_slug=app.slug)
    if name is None:
        return ref
    upstream, _registry = resolve(app, name, team_registries)
    return Reference(domain=upstream.domain, path=upstream.path, tag=ref.tag, digest=ref.digest)
