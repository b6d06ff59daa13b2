"""Where registry requests go: the host map, the SSRF guard and the TLS trust store.

- ``host_map()`` reads ``PORTAL_REGISTRY_HOST_MAP`` (``host=url,host2=url2``): requests for a
  registry host go to another base URL (tests, on-premises mirrors). The registry keeps its
  identity (endpoint, ECR account and region); only the address changes.
- The guard refuses loopback, private, link-local (169.254.169.254), multicast, reserved and
  unspecified addresses unless ``PORTAL_ALLOW_PRIVATE_REGISTRIES``. It is checked on the address
  actually connected to: the transport's network backend resolves the host itself, checks every
  address, and connects to a checked address (so DNS cannot answer differently between the
  check and the connection). TLS still verifies the certificate against the host name.
- ``ssl_context()`` trusts ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (custom CAs), else certifi.

Proxies from the environment are not used (``trust_env=False``): the guard must see the
registry's address, not a proxy's.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import ssl
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
from django.conf import settings

from .errors import RegistryError

# --- host map -------------------------------------------------------------------------------


def parse_host_map(text: str) -> dict[str, str]:
    """``"host=url,host2=url2"`` -> {host: base URL}; ValueError naming the bad entry."""
    mapping: dict[str, str] = {}
    for entry in (text or "").replace("\n", ",").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, url = entry.partition("=")
        host, url = host.strip().lower(), url.strip().rstrip("/")
        parts = urlsplit(url)
        if not sep or not host or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"PORTAL_REGISTRY_HOST_MAP: {entry!r} is not host=http(s)://address[:port]"
            )
        if parts.path or parts.query or parts.username:
            raise ValueError(f"PORTAL_REGISTRY_HOST_MAP: {entry!r}: the URL must have no path")
        mapping[host] = url
    return mapping


def host_map() -> dict[str, str]:
    return parse_host_map(settings.PORTAL_REGISTRY_HOST_MAP)


def base_url_for(host: str, *, insecure: bool = False) -> str:
    """The base URL to reach registry ``host[:port]``: the host map's, else http(s)://host."""
    mapping = host_map()
    mapped = mapping.get(host.lower())
    if mapped:
        return mapped
    return f"{'http' if insecure else 'https'}://{host}"


# --- SSRF guard -----------------------------------------------------------------------------


def private_allowed() -> bool:
    return bool(settings.PORTAL_ALLOW_PRIVATE_REGISTRIES)


def forbidden_reason(ip: str) -> str | None:
    """Why connecting to ``ip`` is refused, or None when it is a public address."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private address"
    return None


def _forbidden(host: str, ip: str, reason: str) -> RegistryError:
    return RegistryError(
        f"{host} resolves to {ip}, {reason}. The portal does not connect to internal addresses "
        "unless its administrator sets PORTAL_ALLOW_PRIVATE_REGISTRIES=true (for on-premises "
        "registries).",
        permanent=True,
        code="forbidden_address",
    )


def _dns_error(host: str) -> RegistryError:
    return RegistryError(
        f"Cannot resolve {host}: check the endpoint's spelling and that it is reachable from "
        "the portal.",
        permanent=False,
        code="dns",
    )


def checked_addresses(host: str, port: int, infos) -> list[str]:
    """The addresses to connect to, in order; RegistryError if any of them is forbidden."""
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise _dns_error(host)
    if not private_allowed():
        # One forbidden address is enough to refuse: a public name that also points inside is
        # exactly what a rebinding attack looks like.
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason:
                raise _forbidden(host, ip, reason)
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check, then connect to the checked address (sync)."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None):
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise _dns_error(host) from None
        last_error: Exception | None = None
        for ip in checked_addresses(host, port, infos):
            try:
                return self._inner.connect_tcp(
                    ip, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last_error = e
        raise last_error  # type: ignore[misc]

    def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover - never configured
        raise RegistryError("Unix sockets are not supported", permanent=True, code="bad_endpoint")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to the checked address (async, for the proxy registry)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None):
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise _dns_error(host) from None
        last_error: Exception | None = None
        for ip in checked_addresses(host, port, infos):
            try:
                return await self._inner.connect_tcp(
                    ip, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last_error = e
        raise last_error  # type: ignore[misc]

    async def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover
        raise RegistryError("Unix sockets are not supported", permanent=True, code="bad_endpoint")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def ssl_context() -> ssl.SSLContext:
    """Verify certificates against SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's CAs."""
    return _ssl_context(os.environ.get("SSL_CERT_FILE") or None,
                        os.environ.get("SSL_CERT_DIR") or None)


@functools.lru_cache(maxsize=4)
def _ssl_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    # Loading a CA bundle takes tens of milliseconds: build one context per trust store.
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def guarded_transport(**kwargs) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through the guard."""
    kwargs.setdefault("verify", ssl_context())
    transport = httpx.HTTPTransport(**kwargs)
    # httpx builds its httpcore pool itself and has no parameter for the network backend;
    # swap it in (httpx is pinned in pyproject.toml, tests/registries/test_netguard.py checks it).
    transport._pool._network_backend = GuardedBackend(transport._pool._network_backend)
    return transport


def async_guarded_transport(**kwargs) -> httpx.AsyncHTTPTransport:
    kwargs.setdefault("verify", ssl_context())
    transport = httpx.AsyncHTTPTransport(**kwargs)
    transport._pool._network_backend = AsyncGuardedBackend(transport._pool._network_backend)
    return transport


def guarded_client(**kwargs) -> httpx.Client:
    """An httpx.Client with the guard, the portal's trust store, and no environment proxies."""
    transport = guarded_transport()
    return httpx.Client(transport=transport, trust_env=False, **kwargs)


def async_guarded_client(**kwargs) -> httpx.AsyncClient:
    transport = async_guarded_transport()
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
