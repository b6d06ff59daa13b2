"""Blob redirects passed on: customers download layers from where ECR sends them.

ECR answers a blob GET with a 307 to a pre-signed AWS S3 address. The proxy registry normally
follows it and streams the layer through the portal. When the linked registry allows it
(``ExternalRegistry.direct_downloads``: Amazon ECR only, off by default, because customers'
clusters must then reach S3 and a pre-signed address works for whoever holds it until it
expires), a blob GET is asked upstream without following redirects, and a redirect that
passes ``presigned_location`` is answered to the client as a 307 with the same Location: the
bytes then go from S3 to the customer, not through the portal.

This runs only after the proxy's own decision (license, app, entitlement to the digest: the
view checks them before ``_blob``), so a refused license gets its 403 and never a Location.
HEAD requests are answered from upstream as before. Anything that does not pass the rule is
followed and streamed as before (the blob is asked again with redirects followed: one extra
round trip to the registry, only for a registry with the option on that redirects elsewhere).

The Location is a credential for as long as it lives: it is never logged, neither in the pull
log (which records the blob as redirected, with the size its manifest gives) nor in log lines
or error messages.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urljoin, urlsplit

from django.http import HttpResponse

from registries.oci.transport import STREAM_ERRORS

from .access import Access
from .pull_log import record_pull

logger = logging.getLogger(__name__)

# 301 and 308 are permanent: a client may remember them past the address's expiry.
PASSED_STATUSES = (302, 303, 307)
# An upstream redirect's body is a line of HTML at most; read it so the connection is reused.
MAX_REDIRECT_BODY = 64 * 1024
REDIRECTED_NOTE = "redirected: downloaded from the registry's storage (AWS S3), not through the proxy"
UNKNOWN_SIZE_NOTE = REDIRECTED_NOTE + "; size unknown (no pinned manifest lists this blob)"


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (
        443 if parts.scheme == "https" else 80)


def aws_signed(query: str) -> bool:
    """The query of an AWS pre-signed address: a non-empty ``X-Amz-Signature``, or both
    ``X-Amz-Algorithm`` and ``X-Amz-Credential`` (names compared case-insensitively)."""
    params = {name.lower(): value for name, value in parse_qsl(query, keep_blank_values=True)}
    return bool(params.get("x-amz-signature")) or bool(
        params.get("x-amz-algorithm") and params.get("x-amz-credential"))


def presigned_location(upstream) -> str | None:
    """The absolute Location of ``upstream`` (an answer of ``Transport.aopen``) to pass on to
    the client, or None (then the proxy follows it).

    The rule: the upstream answered 302, 303 or 307 with a Location that, resolved against the
    address asked, is http(s) on another origin (scheme, host or port) than the registry's, is
    not plain HTTP when the registry was asked over HTTPS, and carries an AWS signature
    (``aws_signed``).
    """
    location = upstream.headers.get("location")
    if upstream.status_code not in PASSED_STATUSES or not location:
        return None
    asked = str(upstream.request.url)
    try:
        target = urljoin(asked, location)
        parts = urlsplit(target)
        origin = _origin(target)
    except ValueError:  # a malformed port or host
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if origin == _origin(asked):
        return None
    if parts.scheme == "http" and urlsplit(asked).scheme == "https":
        return None
    return target if aws_signed(parts.query) else None


async def open_blob(access: Access, method: str, path: str, *, headers: dict | None = None):
    """The upstream answer for a blob request (asked with ``headers``: a Range), as
    ``Transport.aopen`` gives it; or, when the registry allows direct downloads and redirected
    this GET to a pre-signed address, the 307 to send the client (already in the pull log; the
    client follows it with its own Range). Raises what ``aopen`` raises."""
    client = access.client
    if method != "GET" or not access.direct_downloads:
        return await client.aopen(method, path, repository=access.repository, headers=headers)
    upstream = await client.aopen(method, path, repository=access.repository,
                                  headers=headers, follow_redirects=False)
    if upstream.status_code not in (301, 302, 303, 307, 308):
        return upstream
    location = presigned_location(upstream)
    await _discard(upstream)
    if location is None:
        # Not an address the option covers: followed and streamed, as without it.
        logger.info("proxy: a blob redirect of %s was followed, not passed on (not a signed "
                    "address on another host)", access.image)
        return await client.aopen(method, path, repository=access.repository, headers=headers)
    return _passed_on(access, path.rsplit("/", 1)[-1], location)


async def _discard(upstream) -> None:
    try:
        length = upstream.headers.get("content-length", "")
        if length.isdigit() and int(length) <= MAX_REDIRECT_BODY:
            await upstream.aread()
    except STREAM_ERRORS:
        pass  # only the connection's reuse is lost
    finally:
        await upstream.aclose()


def _passed_on(access: Access, digest: str, location: str) -> HttpResponse:
    response = HttpResponse(b"", status=307)
    response["Location"] = location
    response["Docker-Distribution-API-Version"] = "registry/2.0"
    # The address is a short-lived credential: no cache keeps it.
    response["Cache-Control"] = "no-store"
    size = access.entitlement.sizes.get(digest, 0)
    record_pull(access, digest, "blob", "GET", 307, size, sent=0,
                note=REDIRECTED_NOTE if size else UNKNOWN_SIZE_NOTE)
    return response
