"""The rendered downstream of a customer's release, and the proxy's allow-list, from the
database: which files, which registries and names, which images are proxied (the private-image
check's verdicts), which digests the release's images were pinned to at promotion, and the
pull secret from the license. The rendering itself is kustomize.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from registries.reference import Reference

from . import kustomize
from .entitlements.models import ImagePin
from .image_check.selectors import verdict_predicate
from .licenses import proxy_domain
from .selectors import registries_for_app


def release_pins(release) -> dict[str, str]:
    """{normalised reference: digest} of the release's pinned images (resolved ones only: an
    image not resolved yet is delivered as written until its first pull pins it)."""
    return dict(ImagePin.objects.filter(release=release).exclude(digest="")
                .values_list("reference", "digest"))


def downstream_for(*, customer, release, is_proxied: Callable[[Reference], bool] | None = None
                   ) -> kustomize.Downstream:
    """The downstream ``customer`` receives for ``release`` (proxy host from the settings)."""
    app = release.app
    registries = list(registries_for_app(app))
    if is_proxied is None:
        is_proxied = verdict_predicate(app, registries=registries)
    return kustomize.render_downstream(
        files=[(f.name, f.content) for f in release.files.all()],
        app_slug=app.slug,
        license_id=customer.license_id,
        proxy_host=proxy_domain(),
        is_proxied=is_proxied,
        registry_names={r.endpoint: r.name for r in registries if r.name},
        pins=release_pins(release),
    )


def proxied_repositories(app, *, registries: Iterable | None = None,
                         is_proxied: Callable[[Reference], bool] | None = None) -> dict[str, Reference]:
    """{path after ``/proxy/<slug>/``: upstream image} for the app's promoted releases.

    The names the downstreams of those releases proxy, read from their files with the same
    decisions as ``downstream_for``. The proxy registry's rule for a live release promoted
    before pins existed (``proxy.access._legacy_allow_list``, on just those releases) reads the
    same; pinned releases are allowed by their pins instead (``entitlements.selectors``).
    ``registries``: the app's registries (``registries_for_app``) when the caller has them.
    """
    registries = list(registries_for_app(app) if registries is None else registries)
    if is_proxied is None:
        is_proxied = verdict_predicate(app, registries=registries)
    names = {r.endpoint: r.name for r in registries if r.name}
    files = [(f.name, f.content) for release in
             app.releases.filter(promoted_at__isnull=False).prefetch_related("files")
             for f in release.files.all()]
    return kustomize.proxied_repositories(files, app_slug=app.slug, proxy_host=proxy_domain(),
                                          is_proxied=is_proxied, registry_names=names)
