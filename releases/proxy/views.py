"""The proxy registry: the OCI distribution pull API, served by the portal.

    GET      /v2/                                                     401 + Basic challenge, or 200
    GET/HEAD /v2/proxy/<app slug>/<name>/manifests/<tag or digest>
    GET/HEAD /v2/proxy/<app slug>/<name>/blobs/<digest>
    GET      /v2/proxy/<app slug>/<name>/tags/list                   the channel's tags only

Async views under uvicorn (docs/architecture.md, "Proxy registry"): a pull is mostly waiting
on the upstream registry, so an event loop serves many pulls at once without a thread each.
They are ``@lean``: served without the page middleware (portal/lane.py).
The rules (license, entitlement, resolution, throttling) are sync ORM code in ``access.py``,
called through ``sync_db`` in one thread hop, and only when no recent decision is cached
(``cached_access``); each reference is then checked against the decision's pins
(``manifest_target``, ``blob_refusal``: lookups). The pull log is queued to one writer thread
(``record_pull`` never blocks).
The upstream transfer is httpx.AsyncClient
(``RegistryClient.aopen``). Manifests are read whole (at most 4 MB) and returned with their
exact bytes, Content-Type and Docker-Content-Digest, and kept in memory by digest
(``manifest_cache``: a digest's bytes never change); blobs are streamed chunk by chunk, one
byte range of them when a GET asks for one (``ranges``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from portal.lane import lean, sync_db
from portal.observability import metrics
from portal.throttle import client_address
from registries.errors import RegistryError
from registries.oci.media import ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES, manifest_digest
from registries.oci.transport import STREAM_ERRORS, stream_error
from registries.reference import REMOTE_NAME_PATTERN, SHA256_DIGEST_PATTERN, TAG_PATTERN

from ..models import App
from . import blob_cache, manifest_cache, ranges
from .access import (
    Access,
    ManifestTarget,
    Refusal,
    allowed_tags,
    blob_refusal,
    check_login,
    freeze_first_pull,
    manifest_target,
)
from .decisions import authorize, cached_access, forget_decisions
from .pull_log import pull_log_writer, record_pull
from .redirects import open_blob

logger = logging.getLogger(__name__)

REALM = "Vendor Portal registry"
_NAME = REMOTE_NAME_PATTERN
_DIGEST = SHA256_DIGEST_PATTERN
MANIFEST_PATH = re.compile(rf"^(?P<name>{_NAME})/manifests/(?P<reference>{TAG_PATTERN}|{_DIGEST})$")
BLOB_PATH = re.compile(rf"^(?P<name>{_NAME})/blobs/(?P<digest>{_DIGEST})$")
TAGS_PATH = re.compile(rf"^(?P<name>{_NAME})/tags/list$")
UNAVAILABLE_CODES = {"refused", "dns"}
# Upstream reads arrive in socket-sized pieces (64-256 KB); each piece sent on is a trip through
# Django's and uvicorn's send path, so pieces are joined into messages of about this size.
SEND_BYTES = 1 << 20


def oci_error(status: int, code: str, message: str, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"errors": [{"code": code, "message": message, "detail": {}}]},
                            status=status)
    response["Docker-Distribution-API-Version"] = "registry/2.0"
    if status == 401:
        response["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def oci_view(view):
    """Every answer under /v2/ is OCI JSON: an unexpected error is a 500 "internal error" with
    the traceback in the server's log only (never Django's HTML page, never to the client)."""

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        try:
            return await view(request, *args, **kwargs)
        except Exception:
            logger.exception("proxy: internal error on %s %s", request.method,
                             request.path.split("/blobs/")[0])
            return oci_error(500, "UNKNOWN", "Internal error in the proxy registry: try again "
                                             "later.")

    return wrapper


def _refused(refusal: Refusal, *, app: str = "", counted: bool = True) -> JsonResponse:
    if counted:
        metrics.proxy_refusals.labels(app, refusal.code.lower()).inc()
    return oci_error(refusal.status, refusal.code, refusal.message, retry_after=refusal.retry_after)


@lean  # served without the page middleware (portal/lane.py)
@csrf_exempt  # no cookies, no sessions: Basic auth on every request
@oci_view
async def v2_root(request):
    """The API version check: clients learn here that they must log in with Basic."""
    if request.method not in ("GET", "HEAD"):
        return oci_error(405, "UNSUPPORTED", "The proxy registry is read-only.")
    header = request.headers.get("Authorization", "")
    refusal = await sync_db(check_login)(header=header, address=client_address(request))
    if refusal is not None:
        # The anonymous probe every client starts with is a challenge, not a refusal.
        return _refused(refusal, counted=bool(header))
    response = JsonResponse({})
    response["Docker-Distribution-API-Version"] = "registry/2.0"
    return response


@lean  # served without the page middleware (portal/lane.py)
@csrf_exempt  # no cookies, no sessions: Basic auth on every request
@oci_view
async def v2_other(request, rest=""):
    """Anything else under /v2/ (catalog, tags, uploads, other names) does not exist here."""
    return oci_error(404, "NAME_UNKNOWN", "Only /v2/proxy/<app>/<image> is served here.")


@lean  # served without the page middleware (portal/lane.py)
@csrf_exempt  # no cookies, no sessions: Basic auth on every request
@oci_view
async def proxy(request, app_slug: str, rest: str):
    if request.method not in ("GET", "HEAD"):
        return oci_error(405, "UNSUPPORTED", "The proxy registry is read-only.")
    manifest, blob, tags = MANIFEST_PATH.match(rest), BLOB_PATH.match(rest), TAGS_PATH.match(rest)
    match = manifest or blob or tags
    if match is None:
        return oci_error(404, "NAME_UNKNOWN", "Not a manifest, blob or tags address.")
    header, address = request.headers.get("Authorization", ""), client_address(request)
    # A cached decision was allowed: valid credentials pass even from a throttled address.
    access = cached_access(header=header, app_slug=app_slug, name=match["name"])
    if access is None:
        access = await sync_db(authorize)(
            header=header, address=address, app_slug=app_slug, name=match["name"])
    if isinstance(access, Refusal):
        return _refused(access, app=await _existing_app(app_slug))
    if tags:
        return await _tags(request, access)

    def check(access):
        if manifest:
            return manifest_target(access, manifest["reference"])
        return blob_refusal(access, blob["digest"])

    verdict = check(access)
    if isinstance(verdict, Refusal) and access.entitlement.unresolved:
        # An image pinned at its first pull, maybe by another process since this decision:
        # decide again from the database before refusing.
        access = await sync_db(authorize)(
            header=header, address=address, app_slug=app_slug, name=match["name"])
        if isinstance(access, Refusal):
            return _refused(access, app=await _existing_app(app_slug))
        verdict = check(access)
    if isinstance(verdict, Refusal):
        return _refused(verdict, app=access.app.slug)
    if manifest:
        return await _manifest(request, access, manifest["reference"], verdict)
    return await _blob(request, access, blob["digest"])


async def _existing_app(app_slug: str) -> str:
    """The URL's app slug as a metric label only when such an app exists: the refused client
    chose it, and labels must stay few."""
    return app_slug if await sync_db(App.objects.filter(slug=app_slug).exists)() else ""


def _count_lookup(access: Access, result: str) -> None:
    try:
        metrics.proxy_blob_cache_lookups.labels(access.app.slug, result).inc()
    except Exception:  # the metrics never fail a pull
        logger.exception("metrics: could not count a blob cache lookup")


def _upstream_failure(status: int, kind: str) -> tuple[int, str, str]:
    """(status, OCI code, message) for an upstream answer other than 200."""
    if status == 404:
        code = "MANIFEST_UNKNOWN" if kind == "manifest" else "BLOB_UNKNOWN"
        return 404, code, f"The {kind} is not in the vendor's registry."
    if status in (401, 403):
        return 502, "UNKNOWN", ("The vendor's registry refused the portal's credentials: "
                                "ask the vendor to check the linked registry.")
    if status == 429:
        return 503, "TOOMANYREQUESTS", "The vendor's registry is rate limiting: try again later."
    if status >= 500:
        return 502, "UNAVAILABLE", f"The vendor's registry is failing (HTTP {status})."
    return 502, "UNKNOWN", f"The vendor's registry answered HTTP {status}."


def _registry_error(e: Exception) -> JsonResponse:
    """An upstream failure (one of STREAM_ERRORS): 502, 503 or 504, never 500."""
    code = stream_error(e).code
    if code == "timeout":
        return oci_error(504, "UNAVAILABLE", "The vendor's registry did not answer in time.")
    if code in UNAVAILABLE_CODES:
        return oci_error(503, "UNAVAILABLE", "The vendor's registry cannot be reached right now.")
    return oci_error(502, "UNAVAILABLE", "The vendor's registry failed to answer.")


async def _manifest(request, access: Access, asked: str, target: ManifestTarget):
    """``asked`` (a tag or digest) fetched upstream as ``target.reference``: a tag resolved to
    its pin is fetched by the pinned digest, so a tag moved upstream still gives what was
    promoted."""
    method = request.method
    reference = target.reference
    accept = request.headers.get("Accept", "")
    if not accept or "*/*" in accept:
        accept = ACCEPT_MANIFESTS  # "anything": ask for every manifest type, indexes included
    path = f"{access.repository}/manifests/{reference}"
    release_id = target.pin.release_id if target.pin is not None else None
    tag_check = None
    if target.pin is not None and target.pin.digest:
        tag_check = _watch_tag(access, target.tag, target.pin.digest)
    cached = manifest_cache.get(reference) if reference.startswith("sha256:") else None
    if cached is not None:
        media_type, body = cached
        digest, length = reference, str(len(body))
        if method == "HEAD":
            body = b""
    else:
        fetched = await _fetch_manifest(access, asked, method, path, accept, release_id)
        if isinstance(fetched, HttpResponse):
            return fetched
        body, media_type, digest, length = fetched
        if method == "GET":
            verified = manifest_digest(body, reference=reference, claimed=digest)
            if verified is None:
                record_pull(access, asked, "manifest", method, 502, 0, release_id=release_id)
                return oci_error(502, "UNKNOWN", "The vendor's registry returned a manifest "
                                                 "that does not match its digest.")
            digest = verified
            length = str(len(body))
            manifest_cache.put(digest, media_type, body)
    if reference.startswith("sha256:") and method == "HEAD":
        digest = reference  # what was asked by digest is what the registry answered for
    pins = access.entitlement.manifest_pins.get(digest, ())
    if target.pin is not None and not target.pin.digest and digest:
        # The first pull of an image unresolved at promotion: pin it (and its tree) now, so the
        # blobs of this same pull are allowed; a concurrent first pull that won keeps its pin.
        frozen = await sync_db(_freeze)(access, target, digest)
        if frozen and frozen != digest:
            return await _manifest(request, access, asked,
                                   ManifestTarget(reference=frozen, tag=target.tag,
                                                  pin=target.pin))
        pins = (target.pin.pin_id,) if frozen else ()
    response = HttpResponse(body, content_type=media_type)
    if digest:
        response["Docker-Content-Digest"] = digest
    if length:
        response["Content-Length"] = length
    response["Docker-Distribution-API-Version"] = "registry/2.0"
    if tag_check is not None:
        # Started with the GET, so usually done by now; the pull never waits long for it.
        await asyncio.wait({tag_check}, timeout=DRIFT_WAIT_SECONDS)
    record_pull(access, asked, "manifest", method, 200, len(body), release_id=release_id,
         note=_drift_note(access, target), pins=pins)
    return response


async def _fetch_manifest(access: Access, asked: str, method: str, path: str, accept: str,
                          release_id):
    """(body, media type, claimed digest, length) from upstream, or the error response (logged)."""
    try:
        upstream = await access.client.aopen(method, path, repository=access.repository,
                                             headers={"Accept": accept})
    except RegistryError as e:
        response = _registry_error(e)
        record_pull(access, asked, "manifest", method, response.status_code, 0, release_id=release_id)
        return response
    try:
        if upstream.status_code != 200:
            await upstream.aread()
            status, code, message = _upstream_failure(upstream.status_code, "manifest")
            record_pull(access, asked, "manifest", method, status, 0, release_id=release_id)
            return oci_error(status, code, message)
        body = b""
        if method == "GET":
            chunks, total = [], 0
            async for chunk in upstream.aiter_bytes():
                total += len(chunk)
                if total > MAX_MANIFEST_BYTES:
                    record_pull(access, asked, "manifest", method, 502, 0, release_id=release_id)
                    return oci_error(502, "UNKNOWN", "The manifest is larger than 4 MB.")
                chunks.append(chunk)
            body = b"".join(chunks)
        media_type = upstream.headers.get("content-type", "application/octet-stream")
        digest = upstream.headers.get("docker-content-digest", "")
        length = upstream.headers.get("content-length", "")
    except STREAM_ERRORS as e:
        response = _registry_error(e)
        record_pull(access, asked, "manifest", method, response.status_code, 0, release_id=release_id)
        return response
    finally:
        await upstream.aclose()
    return body, media_type, digest, length


def _freeze(access: Access, target: ManifestTarget, digest: str) -> str:
    frozen = freeze_first_pull(access, target.pin, digest)
    if frozen:
        forget_decisions()  # a queryset update sends no signal
    return frozen


# --- drift: a pinned tag moved upstream ---------------------------------------------------------

# (repository, tag) -> (checked at, the digest upstream's tag named then). A tag is HEADed at
# most once per DRIFT_CHECK_SECONDS per process, in the background: the pull never waits for it.
DRIFT_CHECK_SECONDS = 60.0
DRIFT_WAIT_SECONDS = 0.25
_tag_heads: dict[tuple[str, str], tuple[float, str]] = {}
_tag_checks: set[asyncio.Task] = set()


def _watch_tag(access: Access, tag: str, pinned: str) -> asyncio.Task | None:
    """HEAD the tag upstream (a task) unless it was checked less than DRIFT_CHECK_SECONDS ago."""
    key = (access.image, tag)
    seen = _tag_heads.get(key)
    if seen is not None and time.monotonic() - seen[0] < DRIFT_CHECK_SECONDS:
        return None
    _tag_heads[key] = (time.monotonic(), seen[1] if seen else pinned)
    task = asyncio.get_running_loop().create_task(_head_tag(access, tag, key))
    _tag_checks.add(task)
    task.add_done_callback(_tag_checks.discard)
    return task


async def _head_tag(access: Access, tag: str, key: tuple[str, str]) -> None:
    try:
        upstream = await access.client.aopen(
            "HEAD", f"{access.repository}/manifests/{tag}", repository=access.repository,
            headers={"Accept": ACCEPT_MANIFESTS})
        await upstream.aclose()
    except Exception as e:  # a failed check is no drift to report, and never fails a pull
        logger.info("proxy: could not check a tag upstream (%s)", type(e).__name__)
        return
    digest = upstream.headers.get("docker-content-digest", "")
    if upstream.status_code == 200 and digest:
        _tag_heads[key] = (time.monotonic(), digest)


def _drift_note(access: Access, target: ManifestTarget) -> str:
    """What the pull log says when the tag now names another digest upstream than its pin."""
    if target.pin is None or not target.pin.digest:
        return ""
    seen = _tag_heads.get((access.image, target.tag))
    if seen is None or seen[1] == target.pin.digest:
        return ""
    # The row's release says which release's pin was served.
    return f"tag {target.tag} moved upstream to {seen[1]}; served the pinned {target.pin.digest}"


async def _tags(request, access: Access):
    """The tags the license's channel allows (``skopeo inspect`` lists them); the upstream's
    list only for a legacy release, which allows every tag. Not logged as a pull."""
    if request.method != "GET":
        return oci_error(405, "UNSUPPORTED", "Use GET for the tags list.")
    name = f"proxy/{access.app.slug}/{access.name}"  # our name, not the upstream's
    tags = allowed_tags(access)
    if tags is not None:
        return JsonResponse({"name": name, "tags": tags})
    path = f"{access.repository}/tags/list"
    try:
        upstream = await access.client.aopen("GET", path, repository=access.repository)
        try:
            body = await upstream.aread()
        finally:
            await upstream.aclose()
    except STREAM_ERRORS as e:
        return _registry_error(e)
    if upstream.status_code != 200:
        status, code, message = _upstream_failure(upstream.status_code, "repository")
        return oci_error(status, "NAME_UNKNOWN" if status == 404 else code, message)
    try:
        tags = json.loads(body).get("tags") or []
    except (ValueError, AttributeError, RecursionError):  # RecursionError: absurdly deep JSON
        return oci_error(502, "UNKNOWN", "The vendor's registry returned an invalid tags list.")
    # Pagination is not passed on.
    return JsonResponse({"name": name, "tags": tags})


async def _blob(request, access: Access, digest: str):
    method = request.method
    # Read only here, after every check a whole GET must pass; HEAD ignores Range.
    wanted = ranges.requested(request.headers, digest) if method == "GET" else None
    cache = blob_cache.store()
    cached = await cache.claim(digest, method=method)
    if cache.enabled:
        _count_lookup(access, "hit" if isinstance(cached, blob_cache.CachedBlob) else "miss")
    if isinstance(cached, blob_cache.CachedBlob):
        return _cached_blob(access, digest, method, cached, wanted)
    path = f"{access.repository}/blobs/{digest}"
    asked = None
    if wanted is not None:
        # The same range upstream. Identity: a Content-Range counts the bytes as sent, and
        # httpx would decode a compressed body under it.
        asked = {"Range": wanted.header(), "Accept-Encoding": "identity"}
    try:
        upstream = await open_blob(access, method, path, headers=asked)
    except RegistryError as e:
        response = _registry_error(e)
        record_pull(access, digest, "blob", method, response.status_code, 0)
        return response
    if isinstance(upstream, HttpResponse):  # a redirect passed on to the client, logged
        return upstream
    partial = wanted is not None and upstream.status_code == 206
    refusal = None
    if wanted is not None and upstream.status_code == 416:
        refusal = _unsatisfiable(wanted, ranges.unsatisfied_size(
            upstream.headers.get("content-range", "")))
    elif partial and not _passable_part(upstream):
        refusal = oci_error(502, "UNKNOWN", "The vendor's registry answered the range with a "
                                            "Content-Range the proxy cannot pass on: ask for the "
                                            "whole blob.")
    elif upstream.status_code != 200 and not partial:
        status, code, message = _upstream_failure(upstream.status_code, "blob")
        refusal = oci_error(status, code, message)
    if refusal is not None:
        try:
            await upstream.aread()
        except Exception:
            pass
        finally:
            await upstream.aclose()
        record_pull(access, digest, "blob", method, refusal.status_code, 0)
        return refusal
    headers = {"Docker-Content-Digest": digest, "Docker-Distribution-API-Version": "registry/2.0",
               "ETag": f'"{digest}"'}
    length = upstream.headers.get("content-length", "")
    if length and not upstream.headers.get("content-encoding"):
        headers["Content-Length"] = length
    if partial or upstream.headers.get("accept-ranges", "").strip().lower() == "bytes":
        headers["Accept-Ranges"] = "bytes"
    if partial:
        headers["Content-Range"] = upstream.headers["content-range"].strip()
        if cached is not None:
            cached.release()  # a part of the blob never fills the cache: let another request
            cached = None
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    if method == "HEAD":
        await upstream.aclose()
        response = HttpResponse(b"", content_type=content_type, headers=headers)
        record_pull(access, digest, "blob", method, 200, 0)
        return response
    answered = upstream.status_code

    async def body():
        # 499: cut short, because the client went away or the server stopped (a stop cancels
        # the streams still running after --timeout-graceful-shutdown).
        sent, status = 0, 499
        parts, size = [], 0
        token = object()
        _streams.add(token)
        try:
            chunks = upstream.aiter_bytes()
            if cached is not None:  # this request fills the cache: copied while it streams
                chunks = cached.tee(chunks, upstream.headers.get("content-length", ""))
            async for chunk in chunks:
                parts.append(chunk)
                size += len(chunk)
                if size >= SEND_BYTES:
                    sent += size
                    yield b"".join(parts)
                    parts, size = [], 0
            if parts:
                sent += size
                yield b"".join(parts)
            status = answered
        except RegistryError:
            status = 502
            raise
        except Exception as e:
            status = 502
            logger.warning("proxy: blob stream from upstream broke (%s)", type(e).__name__)
            raise
        finally:
            # After the stream, with the byte count; queued before anything else can be
            # interrupted, so it survives a cancellation.
            record_pull(access, digest, "blob", method, status, sent)
            _streams.discard(token)
            await upstream.aclose()

    return StreamingHttpResponse(body(), status=answered, content_type=content_type,
                                 headers=headers)


def _passable_part(upstream) -> bool:
    """Whether an upstream 206 can be sent on as it is: one well-formed Content-Range, no
    Content-Encoding (the range would count encoded bytes), a Content-Length (if any) that is
    the range's."""
    span = ranges.content_range(upstream.headers.get("content-range", ""))
    if span is None or upstream.headers.get("content-encoding"):
        return False
    length = upstream.headers.get("content-length")
    return length is None or length.strip() == str(span[1] - span[0] + 1)


def _unsatisfiable(wanted: ranges.Requested, size: int | None) -> JsonResponse:
    """416 for a range past the end of a blob of ``size`` bytes (None: the upstream's 416 did not
    say)."""
    if size is None:
        return oci_error(416, "RANGE_INVALID", f"The range {wanted.header()} is outside the "
                                               "blob: ask for a range that starts before its end.")
    response = oci_error(416, "RANGE_INVALID", wanted.unsatisfiable(size))
    response["Content-Range"] = f"bytes */{size}"
    return response


def _cached_blob(access: Access, digest: str, method: str, blob: blob_cache.CachedBlob,
                 wanted: ranges.Requested | None):
    """A blob from the cache: no upstream request, HEAD answered from the file's size, a range
    read from the file."""
    headers = {"Docker-Content-Digest": digest, "Docker-Distribution-API-Version": "registry/2.0",
               "Content-Length": str(blob.size), "Accept-Ranges": "bytes",
               "ETag": f'"{digest}"'}
    span = wanted.resolve(blob.size) if wanted is not None else None
    if method == "HEAD":
        blob.close()
        record_pull(access, digest, "blob", method, 200, 0, note="from cache")
        return HttpResponse(b"", content_type="application/octet-stream", headers=headers)
    if settings.PORTAL_BLOB_CACHE_X_ACCEL:
        # The front server sends the verified file (deploy/Caddyfile), and answers the Range
        # itself: no byte moves here. The row counts what it is asked to send: a client gone
        # mid-way is the front server's to see.
        blob.close()
        status, size = 200, blob.size
        if wanted is not None:
            status, size = (206, span[1] - span[0] + 1) if span else (416, 0)
        record_pull(access, digest, "blob", method, status, size, note="from cache, sent by the "
                                                                "front server")
        del headers["Content-Length"]
        headers["X-Accel-Redirect"] = f"/blobs/{digest.removeprefix('sha256:')}"
        return HttpResponse(b"", content_type="application/octet-stream", headers=headers)
    if wanted is not None and span is None:
        blob.close()
        record_pull(access, digest, "blob", method, 416, 0, note="from cache")
        return _unsatisfiable(wanted, blob.size)
    answered = 200
    if span is not None:
        answered = 206
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{blob.size}"
        headers["Content-Length"] = str(span[1] - span[0] + 1)
    first, last = span if span is not None else (0, None)

    async def body():
        sent, status = 0, 499
        token = object()
        _streams.add(token)
        try:
            async for chunk in blob.chunks(first, last):
                sent += len(chunk)
                yield chunk
            status = answered
        except OSError as e:
            status = 500
            logger.warning("proxy: reading a cached blob failed (%s)", type(e).__name__)
            raise
        finally:
            record_pull(access, digest, "blob", method, status, sent, note="from cache")
            _streams.discard(token)

    return StreamingHttpResponse(body(), status=answered, content_type="application/octet-stream",
                                 headers=headers)


# --- stopping -----------------------------------------------------------------------------------

# The blob streams of this process (event loop only: no lock). A stream leaves the set once its
# pull log row is queued.
_streams: set[object] = set()
# The server stop waits this long for cancelled streams to queue their rows and for the writer
# to write them: with uvicorn's 3 s graceful timeout it stays within the 5 s a process manager
# such as honcho grants before it kills.
STOP_FLUSH_SECONDS = 1.5


async def flush_pull_log_on_stop(**kwargs) -> None:
    """Write the pull log before the process exits (``server_stopping``, connected in
    ``ProxyConfig.ready()``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_FLUSH_SECONDS
    logger.info("server stopping: writing the pull log (%d blob streams cut short)",
                len(_streams))
    while _streams and loop.time() < deadline:
        await asyncio.sleep(0.02)  # cancelled streams run their ``finally`` on this loop
    left = max(deadline - loop.time(), 0.1)
    if _streams or not await asyncio.to_thread(pull_log_writer.flush, left):
        logger.warning("pull log: the server stopped before every row was written")

