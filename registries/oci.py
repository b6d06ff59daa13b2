"""A small OCI distribution client over httpx (sync): ping, manifests, blobs, pushes.

Authentication follows the registry's challenge on ``/v2/`` (or on any 401):

- ``Basic``: the stored username and password, sent to the registry's own origin only.
- ``Bearer realm=…,service=…``: a token from the realm for ``scope=repository:<repo>:<actions>``,
  asked with Basic credentials when there are some, anonymously otherwise (Docker Hub, GHCR,
  Quay). Tokens are cached per scope until shortly before ``expires_in``.

Redirects are followed by hand: the Authorization header goes to the registry's origin only,
never to another host (ECR sends blob downloads to S3). Every connection goes through
netguard (host map, SSRF guard, trust store). Failures become RegistryError with a stable code
and a message a user can act on; ``request()`` is the low-level door for the mirror and proxy.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import ssl
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from . import netguard
from .errors import RegistryError
from .reference import DOCKER_HUB, canonical_registry, normalize_endpoint

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
INDEX_MEDIA_TYPES = {OCI_INDEX, DOCKER_LIST}
MAX_MANIFEST_BYTES = 4 << 20  # distribution refuses larger manifests too
MAX_REDIRECTS = 5
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes
    size: int

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass
class Challenge:
    scheme: str = ""  # "basic", "bearer" or "" (the registry asked for nothing)
    params: dict[str, str] = field(default_factory=dict)


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str | None) -> Challenge:
    """``Bearer realm="…",service="…",scope="…"`` -> Challenge("bearer", {...})."""
    if not header:
        return Challenge()
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def api_host(endpoint: str) -> str:
    """The host that serves the registry API: Docker Hub's is registry-1.docker.io."""
    return DOCKER_HUB_API if canonical_registry(endpoint) == DOCKER_HUB else endpoint


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip()


def _error_codes(response: httpx.Response) -> list[str]:
    """The OCI error codes in a response body (``{"errors": [{"code": …}]}``), if any."""
    try:
        body = response.json()
    except Exception:
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [str(e.get("code", "")).upper() for e in body["errors"] if isinstance(e, dict)]


def _is_tls_error(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# What reading a streamed answer's body may raise: the connection closed, reset or timed out
# mid-body (``aopen`` and ``stream_blob`` hand the body to the caller).
STREAM_ERRORS = (RegistryError, httpx.HTTPError)


def stream_error(error: Exception) -> RegistryError:
    """One of STREAM_ERRORS as a RegistryError (transient: a retry may get the whole body)."""
    if isinstance(error, RegistryError):
        return error
    if isinstance(error, httpx.TimeoutException):
        return RegistryError("The registry stopped sending in the middle of an answer.",
                             permanent=False, code="timeout")
    return RegistryError("The registry closed the connection in the middle of an answer.",
                         permanent=False, code="upstream")


class RegistryClient:
    """One registry, one set of credentials. Thread-safe; close it (or use ``with``)."""

    def __init__(self, endpoint: str, *, username: str = "", password: str = "",
                 insecure: bool = False, timeout: float = 10.0):
        self.endpoint = canonical_registry(endpoint.strip().lower())
        try:
            # Rows saved before the form refused such spellings still reach here.
            normalize_endpoint(self.endpoint)
        except ValueError as e:
            raise RegistryError(f"{e} Edit the registry's endpoint.", permanent=True,
                                code="bad_endpoint") from None
        self.insecure = insecure
        self._username = username
        self._password = password
        try:
            mapping = netguard.host_map()
        except ValueError as e:
            raise RegistryError(str(e), permanent=True, code="bad_endpoint") from None
        host = api_host(self.endpoint)
        self.base_url = (mapping.get(self.endpoint) or mapping.get(host)
                         or f"{'http' if insecure else 'https'}://{host}")
        self._origin = _origin(self.base_url)
        self._http = netguard.guarded_client(timeout=httpx.Timeout(timeout), follow_redirects=False)
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def has_credentials(self) -> bool:
        return bool(self._username or self._password)

    # --- the low-level door -----------------------------------------------------------------

    def request(self, method: str, path: str, *, repository: str, actions: str = "pull",
                headers: dict | None = None, content=None, stream: bool = False,
                follow_redirects: bool = True, extra_scopes: Iterable[str] = ()) -> httpx.Response:
        """An authenticated request to ``/v2/<path>`` (or to an absolute upload location).

        Handles the challenge, asks a token for ``repository:<repository>:<actions>`` (plus
        ``extra_scopes``), retries once on 401 with a fresh token, and follows redirects without
        the Authorization header on other hosts. Maps connection failures to RegistryError;
        HTTP errors are returned for the caller to interpret. With ``stream=True`` the caller
        closes the response.
        """
        url = self._url(path)
        scopes = ([f"repository:{repository}:{actions}"] if repository else []) + list(extra_scopes)
        replayable = content is None or isinstance(content, (bytes, str))
        if not replayable and self._challenge is None:
            # A streamed body can be sent only once: learn the challenge before sending it.
            self._discover()
        response = self._send_authed(method, url, scopes, headers, content, stream,
                                     follow_redirects, fresh=False)
        if response.status_code == 401 and replayable:
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if challenge.scheme in ("basic", "bearer"):
                response.close()
                self._challenge = challenge
                response = self._send_authed(method, url, scopes, headers, content, stream,
                                             follow_redirects, fresh=True)
        return response

    # --- the async door (proxy registry) --------------------------------------------------------

    def auth_headers(self, repository: str, *, actions: str = "pull",
                     fresh: bool = False) -> dict[str, str]:
        """The Authorization header for ``repository`` (learns the challenge first). Blocking."""
        if self._challenge is None:
            self._discover()
        return self._auth_headers([f"repository:{repository}:{actions}"] if repository else [],
                                  fresh)

    def cached_auth_headers(self, repository: str, *, actions: str = "pull") -> dict | None:
        """The Authorization header when it needs no network and no lock (the challenge is
        known and, for a bearer challenge, an unexpired token is cached); else None."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "bearer":
            scopes = [f"repository:{repository}:{actions}"] if repository else []
            cached = self._tokens.get(" ".join(scopes))  # one dict read: no lock needed
            if cached is None or cached[1] <= time.monotonic():
                return None
            return {"Authorization": f"Bearer {cached[0]}"}
        return self._auth_headers([], False)  # basic or none: no network

    async def aopen(self, method: str, path: str, *, repository: str,
                    headers: dict | None = None) -> httpx.Response:
        """The async twin of ``request()`` for GET and HEAD, always streamed (caller closes).

        The challenge and token logic is the sync code above, run in a thread (it is cached, so
        it rarely touches the network; with a cached token it is not even a thread hop, see
        ``cached_auth_headers``); only the transfer itself is async, on one shared
        httpx.AsyncClient per event loop. A 401 is retried once with a fresh token; redirects
        are followed without the Authorization header on other hosts (ECR -> S3).
        """
        url = self._url(path)
        for fresh in (False, True):
            auth = None if fresh else self.cached_auth_headers(repository)
            if auth is None:
                auth = await asyncio.to_thread(self.auth_headers, repository, fresh=fresh)
            response = await self._asend_following(method, url, dict(headers or {}), auth)
            if response.status_code != 401 or fresh:
                return response
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if challenge.scheme not in ("basic", "bearer"):
                return response
            await response.aclose()
            self._challenge = challenge
        raise AssertionError("unreachable")

    async def _asend_following(self, method: str, url: str, headers: dict,
                               auth: dict) -> httpx.Response:
        http = async_http()
        on_origin = True
        for _ in range(MAX_REDIRECTS + 1):
            on_origin = on_origin and _origin(url) == self._origin
            send_headers = {**headers, **auth} if on_origin else headers
            try:
                request = http.build_request(method, url, headers=send_headers)
                response = await http.send(request, stream=True)
            except RegistryError:
                raise
            except httpx.HTTPError as e:
                raise self._transport_error(url, e) from None
            except (httpx.InvalidURL, UnicodeError):
                raise self._bad_address(url) from None
            location = response.headers.get("location")
            if not location or response.status_code not in (301, 302, 303, 307, 308):
                return response
            await response.aclose()
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                break
        raise RegistryError(f"{self.endpoint} redirected too often or to an invalid address.",
                            permanent=True, code="upstream")

    # --- checks -------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` following the challenge; RegistryError unless the credentials are good."""
        self._challenge = None
        response = self.request("GET", "", repository="")
        if response.status_code == 200:
            return
        if response.status_code == 401:
            raise self._unauthorized()
        if response.status_code == 404:
            raise RegistryError(
                f"{self.endpoint} does not serve the registry API at /v2/: check the endpoint "
                "(it is the registry's host, not a web page's address).",
                permanent=True, code="bad_endpoint",
            )
        raise self._status_error(response, f"The registry check of {self.endpoint}")

    def head_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest's digest, media type and size without its body (falls back to GET)."""
        response = self.request("HEAD", f"{repository}/manifests/{reference}",
                                repository=repository, headers={"Accept": ACCEPT_MANIFESTS})
        self._check_manifest(response, repository, reference)
        media_type = _media_type(response)
        digest = response.headers.get("docker-content-digest", "")
        if not digest or not media_type:
            return self.get_manifest(repository, reference)
        size = int(response.headers.get("content-length") or 0)
        return Manifest(digest=digest, media_type=media_type, content=b"", size=size)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest with its exact bytes; the digest is checked against the content."""
        response = self.request("GET", f"{repository}/manifests/{reference}",
                                repository=repository, headers={"Accept": ACCEPT_MANIFESTS})
        self._check_manifest(response, repository, reference)
        content = response.content
        if len(content) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"The manifest of {repository}:{reference} is larger than 4 MB.",
                                permanent=True, code="upstream")
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        claimed = response.headers.get("docker-content-digest", "")
        expected = reference if reference.startswith("sha256:") else claimed
        if expected.startswith("sha256:") and expected != digest:
            raise RegistryError(
                f"The manifest {repository}@{expected} from {self.endpoint} does not match its "
                "digest: the registry or something between returned other bytes.",
                permanent=False, code="digest_mismatch",
            )
        if not claimed.startswith("sha256:") and claimed:
            digest = claimed  # another algorithm: trust the registry's name for it
        media_type = _media_type(response) or _sniff_media_type(content)
        return Manifest(digest=digest, media_type=media_type, content=content, size=len(content))

    # --- blobs and pushes (mirroring, proxy) ----------------------------------------------------

    def blob_exists(self, repository: str, digest: str, *, actions: str = "pull") -> bool:
        response = self.request("HEAD", f"{repository}/blobs/{digest}", repository=repository,
                                actions=actions)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._status_error(response, f"Checking blob {digest} in {repository}")

    @contextmanager
    def stream_blob(self, repository: str, digest: str) -> Iterator[httpx.Response]:
        """``with client.stream_blob(repo, digest) as r: for chunk in r.iter_bytes(): …``"""
        response = self.request("GET", f"{repository}/blobs/{digest}", repository=repository,
                                stream=True)
        try:
            if response.status_code != 200:
                response.read()
                if response.status_code == 404:
                    raise RegistryError(f"Blob {digest} is missing from {repository} on "
                                        f"{self.endpoint}.", permanent=True, code="image_not_found")
                raise self._status_error(response, f"Downloading blob {digest} from {repository}")
            yield response
        finally:
            response.close()

    def upload_blob(self, repository: str, digest: str, chunks: Iterable[bytes], size: int) -> None:
        """Stream a blob into ``repository`` (POST, one PATCH, PUT ?digest=), checking its sha256."""
        location = self._start_upload(repository)
        hasher = hashlib.sha256()
        counted = 0

        def body() -> Iterator[bytes]:
            nonlocal counted
            for chunk in chunks:
                hasher.update(chunk)
                counted += len(chunk)
                yield chunk

        if size:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
                       "Content-Range": f"0-{size - 1}"}
            response = self.request("PATCH", location, repository=repository,
                                    actions="pull,push", headers=headers, content=body())
            if response.status_code != 202:
                raise self._status_error(response, f"Uploading blob {digest} to {repository}")
            location = response.headers.get("location") or location
        actual = "sha256:" + hasher.hexdigest()
        if digest.startswith("sha256:") and (actual != digest or counted != size):
            self._cancel_upload(repository, location)
            raise RegistryError(
                f"Blob {digest} arrived with other content ({actual}, {counted} of {size} "
                "bytes); it was not stored.", permanent=False, code="digest_mismatch")
        url = httpx.URL(self._url(location)).copy_merge_params({"digest": digest})
        response = self.request("PUT", str(url), repository=repository, actions="pull,push",
                                headers={"Content-Length": "0"}, content=b"")
        if response.status_code not in (201, 204):
            raise self._status_error(response, f"Completing the upload of blob {digest}")

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry would rather have the bytes."""
        response = self.request(
            "POST", f"{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
            repository=repository, actions="pull,push",
            extra_scopes=[f"repository:{from_repository}:pull"],
            headers={"Content-Length": "0"}, content=b"",
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            self._cancel_upload(repository, response.headers.get("location", ""))
            return False
        raise self._status_error(response, f"Mounting blob {digest} into {repository}")

    def put_manifest(self, repository: str, reference: str, content: bytes, media_type: str) -> str:
        """Push a manifest with its original bytes and media type; returns its digest."""
        response = self.request("PUT", f"{repository}/manifests/{reference}",
                                repository=repository, actions="pull,push",
                                headers={"Content-Type": media_type}, content=content)
        if response.status_code not in (200, 201, 202):
            raise self._status_error(response, f"Pushing the manifest {repository}:{reference}")
        return (response.headers.get("docker-content-digest")
                or "sha256:" + hashlib.sha256(content).hexdigest())

    # --- internals ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return urljoin(self.base_url + "/", path)
        return f"{self.base_url}/v2/{path}"

    def _discover(self) -> None:
        response = self._send("GET", self._url(""), headers={}, content=None, stream=False)
        self._challenge = parse_challenge(response.headers.get("www-authenticate")) \
            if response.status_code == 401 else Challenge()

    def _auth_headers(self, scopes: list[str], fresh: bool) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None or not challenge.scheme:
            return {}
        if challenge.scheme == "basic":
            if not self.has_credentials:
                return {}
            return {"Authorization": self._basic()}
        if challenge.scheme == "bearer":
            return {"Authorization": f"Bearer {self._token(scopes, fresh)}"}
        return {}

    def _basic(self) -> str:
        pair = f"{self._username}:{self._password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _token(self, scopes: list[str], fresh: bool) -> str:
        key = " ".join(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and not fresh and cached[1] > time.monotonic():
                return cached[0]
            token, ttl = self._fetch_token(scopes)
            self._tokens[key] = (token, time.monotonic() + ttl)
            return token

    def _fetch_token(self, scopes: list[str]) -> tuple[str, float]:
        params = self._challenge.params if self._challenge else {}
        realm = params.get("realm", "")
        realm_scheme, realm_host, _ = _origin(realm) if realm else ("", "", 0)
        if realm_scheme not in ("http", "https") or not realm_host:
            raise RegistryError(f"{self.endpoint} asked for a token from an invalid address "
                                f"({realm!r}).", permanent=True, code="upstream")
        headers = {}
        if self.has_credentials:
            if realm_scheme == "http" and self._origin[0] == "https":
                raise RegistryError(
                    f"{self.endpoint} asks for the credentials over plain HTTP ({realm_host}); "
                    "the portal does not send them unencrypted.", permanent=True, code="tls")
            headers["Authorization"] = self._basic()
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query += [("scope", s) for s in scopes]
        if self.has_credentials:
            query.append(("account", self._username))
        url = str(httpx.URL(realm).copy_merge_params(query))
        response = self._send("GET", url, headers=headers, content=None, stream=False)
        if response.status_code in (401, 403):
            if self.has_credentials:
                raise RegistryError(
                    f"{self.endpoint} rejected the username and password (its token service "
                    f"{realm_host} answered {response.status_code}). Check them, and that they "
                    "are not expired.", permanent=True, code="unauthorized")
            raise RegistryError(f"{self.endpoint} requires a username and password here.",
                                permanent=True, code="unauthorized")
        if response.status_code != 200:
            raise self._status_error(response, f"The token service {realm_host}")
        try:
            data = response.json()
            token = data.get("token") or data.get("access_token")
            expires_in = float(data.get("expires_in") or 60)
        except Exception:
            token, expires_in = None, 0
        if not token:
            raise RegistryError(f"The token service {realm_host} of {self.endpoint} returned "
                                "no token.", permanent=False, code="upstream")
        return token, max(expires_in - 15, 5)

    def _send_authed(self, method, url, scopes, headers, content, stream, follow_redirects,
                     *, fresh: bool) -> httpx.Response:
        request_headers = dict(headers or {})
        request_headers.update(self._auth_headers(scopes, fresh))
        on_origin = True
        for _ in range(MAX_REDIRECTS + 1):
            on_origin = on_origin and _origin(url) == self._origin
            send_headers = request_headers if on_origin else {
                k: v for k, v in request_headers.items() if k.lower() != "authorization"}
            response = self._send(method, url, headers=send_headers, content=content, stream=stream)
            location = response.headers.get("location")
            if (not follow_redirects or not location
                    or response.status_code not in (301, 302, 303, 307, 308)):
                return response
            response.close()
            if response.status_code == 303 or (response.status_code in (301, 302)
                                               and method not in ("GET", "HEAD")):
                method, content = "GET", None
                send_headers.pop("Content-Length", None)
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                break
        raise RegistryError(f"{self.endpoint} redirected too often or to an invalid address.",
                            permanent=True, code="upstream")

    def _send(self, method, url, *, headers, content, stream) -> httpx.Response:
        try:
            request = self._http.build_request(method, url, headers=headers, content=content)
            return self._http.send(request, stream=stream)
        except RegistryError:
            raise
        except httpx.HTTPError as e:
            raise self._transport_error(url, e) from None
        except (httpx.InvalidURL, UnicodeError):  # a token realm or redirect to a bad host
            raise self._bad_address(url) from None

    def _bad_address(self, url: str) -> RegistryError:
        return RegistryError(f"{self.endpoint} sent the portal to an address it cannot use.",
                             permanent=True, code="bad_endpoint")

    def _transport_error(self, url: str, exc: httpx.HTTPError) -> RegistryError:
        """A connection failure as a RegistryError (shared by the sync and async paths)."""
        host = urlsplit(url).hostname or self.endpoint
        name = self.endpoint if _origin(url) == self._origin else host
        if isinstance(exc, httpx.TimeoutException):
            return RegistryError(f"{name} did not answer in time: check that the endpoint is "
                                 "reachable from the portal.", permanent=False, code="timeout")
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                            httpx.WriteError)) and _is_tls_error(exc):
            return self._tls_error(name, exc)
        if isinstance(exc, httpx.ConnectError):
            return RegistryError(
                f"Cannot connect to {name}: the connection was refused. Check the endpoint and "
                "port, and that the registry is running.", permanent=False, code="refused",
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return RegistryError(f"{name} closed the connection unexpectedly.", permanent=False,
                                 code="upstream")
        return RegistryError(f"Cannot talk to {name}: {type(exc).__name__}.", permanent=False,
                             code="upstream")

    def _tls_error(self, name: str, exc: BaseException) -> RegistryError:
        text = str(exc)
        if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
            hint = (" It seems to speak plain HTTP: if that is intended, mark the registry "
                    "insecure.")
        elif "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
            hint = (" Its certificate is not trusted (self-signed, expired or for another "
                    "name); the portal's administrator can add its CA with SSL_CERT_FILE.")
        else:
            hint = ""
        return RegistryError(f"TLS error talking to {name}.{hint}", permanent=True, code="tls")

    def _unauthorized(self) -> RegistryError:
        if self.has_credentials:
            return RegistryError(
                f"{self.endpoint} rejected the username and password. Check them, and that they "
                "are not expired.", permanent=True, code="unauthorized")
        return RegistryError(f"{self.endpoint} requires a username and password.",
                             permanent=True, code="unauthorized")

    def _check_manifest(self, response: httpx.Response, repository: str, reference: str) -> None:
        status = response.status_code
        if status == 200:
            media_type = _media_type(response)
            if media_type in SCHEMA1:
                raise RegistryError(
                    f"{repository}:{reference} is an old Docker schema 1 image, which the portal "
                    "does not handle: push it again with a current Docker or skopeo.",
                    permanent=True, code="schema1")
            return
        image = f"{repository}:{reference}" if not reference.startswith("sha") \
            else f"{repository}@{reference}"
        codes = set(_error_codes(response))
        if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}:
            raise RegistryError(
                f"{image} was not found on {self.endpoint}: the credentials work, but this image "
                "does not exist or they cannot see it. Check the repository and tag.",
                permanent=True, code="image_not_found")
        if status in (401, 403):
            bearer = self._challenge is not None and self._challenge.scheme == "bearer"
            if status == 401 and not bearer:
                raise self._unauthorized()
            if not self.has_credentials:
                raise RegistryError(
                    f"{image} on {self.endpoint} cannot be read anonymously: it is private or "
                    "does not exist.", permanent=True, code="unauthorized")
            raise RegistryError(
                f"The credentials work, but they are not allowed to read {image} on "
                f"{self.endpoint} (or it does not exist). Grant pull access to this repository.",
                permanent=True, code="image_not_found")
        raise self._status_error(response, f"Reading {image}")

    def _status_error(self, response: httpx.Response, what: str) -> RegistryError:
        status = response.status_code
        if status == 401:
            return self._unauthorized()
        if status == 429 or "TOOMANYREQUESTS" in _error_codes(response):
            return RegistryError(f"{what}: {self.endpoint} is rate limiting the portal; it will "
                                 "try again.", permanent=False, code="upstream")
        if status >= 500:
            return RegistryError(f"{what}: {self.endpoint} answered {status} (a server error); "
                                 "the portal will try again.", permanent=False, code="upstream")
        if status == 403:
            return RegistryError(f"{what}: {self.endpoint} denied access (403): the credentials "
                                 "lack permission.", permanent=True, code="access_denied")
        return RegistryError(f"{what}: {self.endpoint} answered HTTP {status}.",
                             permanent=True, code="upstream")

    def _start_upload(self, repository: str) -> str:
        response = self.request("POST", f"{repository}/blobs/uploads/", repository=repository,
                                actions="pull,push", headers={"Content-Length": "0"}, content=b"")
        if response.status_code != 202 or not response.headers.get("location"):
            raise self._status_error(response, f"Starting an upload to {repository}")
        return response.headers["location"]

    def _cancel_upload(self, repository: str, location: str) -> None:
        if not location:
            return
        try:
            self.request("DELETE", location, repository=repository, actions="pull,push").close()
        except RegistryError:
            pass  # the registry purges abandoned uploads itself


def _sniff_media_type(content: bytes) -> str:
    """The media type written inside a manifest, for registries that answer without one."""
    import json

    try:
        value = json.loads(content).get("mediaType", "")
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


# One pooled async client per event loop (uvicorn runs one; tests may run several).
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_http() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # httpcore reads 64 KB per socket read; the async path pays per read in Python (h11,
        # anyio), so proxied blobs stream ~25% faster with 1 MB reads (bench/proxy.py). Only
        # the proxy registry uses async httpx; httpcore is pinned with httpx.
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 1 << 20
        # Generous read timeout: a slow blob chunk is not an outage; connect fails fast.
        client = netguard.async_guarded_client(
            timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)
        _async_clients[loop] = client
    return client
