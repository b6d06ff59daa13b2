"""The transport of the OCI distribution client over httpx: authentication and redirects.

Authentication follows the registry's challenge on ``/v2/`` (or on any 401):

- ``Basic``: the stored username and password, sent to the registry's own origin only.
- ``Bearer realm=…,service=…``: a token from the realm for ``scope=repository:<repo>:<actions>``,
  asked with Basic credentials when there are some, anonymously otherwise (Docker Hub, GHCR,
  Quay). Tokens are cached per scope until shortly before ``expires_in``.

Redirects are followed by hand: the Authorization header goes to the registry's origin only,
never to another host (ECR sends blob downloads to S3). Every connection goes through
netguard (host map, SSRF guard, trust store). Failures become RegistryError with a stable code
and a message a user can act on. ``request()`` (sync) and ``aopen()`` (async, the proxy registry)
are the doors the verbs in client.py use. A client given ``renew_credentials`` (an ECR
registry's, see registries/credentials.py) asks it for new ones when the registry answers 401
to credentials it accepted before, and tries once more.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from .. import netguard
from ..errors import RegistryError
from ..reference import DOCKER_HUB, canonical_registry, normalize_endpoint
from .errors import status_error

MAX_REDIRECTS = 5
# Bytes per socket read of a response body (httpcore's default is 64 KB). Python pays per read
# (h11 parsing, httpx's layers), so blobs stream with much less CPU in 1 MB reads; a read never
# waits for a full buffer, it returns what the socket has.
SOCKET_READ = 1 << 20
DOCKER_HUB_API = "registry-1.docker.io"


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


class Transport:
    """One registry, one set of credentials. Thread-safe; close it (or use ``with``)."""

    def __init__(self, endpoint: str, *, username: str = "", password: str = "",
                 insecure: bool = False, timeout: float = 10.0,
                 renew_credentials: Callable[[str], tuple[str, str]] | None = None):
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
        # Given the password the registry refused, returns (username, password) to try next.
        self._renew_credentials = renew_credentials
        try:
            mapping = netguard.host_map()
        except ValueError as e:
            raise RegistryError(str(e), permanent=True, code="bad_endpoint") from None
        host = api_host(self.endpoint)
        self.base_url = (mapping.get(self.endpoint) or mapping.get(host)
                         or f"{'http' if insecure else 'https'}://{host}")
        self._origin = _origin(self.base_url)
        # httpx has no parameter for the read size; httpcore is pinned with httpx.
        httpcore.HTTP11Connection.READ_NUM_BYTES = SOCKET_READ
        self._http = netguard.guarded_client(timeout=httpx.Timeout(timeout), follow_redirects=False)
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Transport:
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
        ``extra_scopes``), retries once on 401 with a fresh token (and once more with renewed
        credentials, when the client can renew them), and follows redirects without
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
        if response.status_code == 401 and replayable and self._renewable():
            response.close()
            self._renew()
            response = self._send_authed(method, url, scopes, headers, content, stream,
                                         follow_redirects, fresh=True)
        return response

    def _renewable(self) -> bool:
        return self._renew_credentials is not None and self._challenge is not None \
            and self._challenge.scheme in ("basic", "bearer")

    def _renew(self) -> None:
        """Replace the credentials the registry refused (a cached ECR token it dropped early)."""
        with self._lock:
            refused = self._password
        username, password = self._renew_credentials(refused)
        with self._lock:
            self._username, self._password = username, password
            self._tokens.clear()

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
                    headers: dict | None = None, follow_redirects: bool = True) -> httpx.Response:
        """The async twin of ``request()`` for GET and HEAD, always streamed (caller closes).

        The challenge and token logic is the sync code above, run in a thread (it is cached, so
        it rarely touches the network; with a cached token it is not even a thread hop, see
        ``cached_auth_headers``); only the transfer itself is async, on one shared
        httpx.AsyncClient per event loop. A 401 is retried once with a fresh token; redirects
        are followed without the Authorization header on other hosts (ECR -> S3); with
        ``follow_redirects=False`` a redirect is returned as it came (the proxy registry may
        pass it on to its client).
        """
        url = self._url(path)
        for attempt in ("cached", "fresh", "renewed"):
            fresh = attempt != "cached"
            auth = None if fresh else self.cached_auth_headers(repository)
            if auth is None:
                auth = await asyncio.to_thread(self.auth_headers, repository, fresh=fresh)
            response = await self._asend_following(method, url, dict(headers or {}), auth,
                                                   follow_redirects=follow_redirects)
            if response.status_code != 401 or attempt == "renewed":
                return response
            if attempt == "fresh":
                if not self._renewable():
                    return response
                await response.aclose()
                await asyncio.to_thread(self._renew)
                continue
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if challenge.scheme not in ("basic", "bearer"):
                return response
            await response.aclose()
            self._challenge = challenge
        raise AssertionError("unreachable")

    async def _asend_following(self, method: str, url: str, headers: dict, auth: dict, *,
                               follow_redirects: bool = True) -> httpx.Response:
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
            if (not follow_redirects or not location
                    or response.status_code not in (301, 302, 303, 307, 308)):
                return response
            await response.aclose()
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                break
        raise RegistryError(f"{self.endpoint} redirected too often or to an invalid address.",
                            permanent=True, code="upstream")

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
            raise status_error(response, registry=self.endpoint,
                               what=f"The token service {realm_host}",
                               has_credentials=self.has_credentials)
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

# One pooled async client per event loop (uvicorn runs one; tests may run several).
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_http() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # httpcore reads 64 KB per socket read; the async path pays per read in Python (h11,
        # anyio), so proxied blobs stream ~25% faster with 1 MB reads (bench/proxy.py). Only
        # the proxy registry uses async httpx; httpcore is pinned with httpx.
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = SOCKET_READ
        # Generous read timeout: a slow blob chunk is not an outage; connect fails fast.
        client = netguard.async_guarded_client(
            timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)
        _async_clients[loop] = client
    return client
