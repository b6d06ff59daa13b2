"""Image references and registry endpoints, parsed by distribution/reference's rules (pure).

The grammar (github.com/distribution/reference, ``reference.go``)::

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain '/'] remote-name
    domain          := host [':' port-number]
    host            := domain-name | IPv4address | '[' IPv6address ']'
    domain-name     := domain-component ['.' domain-component]*
    domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    port-number     := /[0-9]+/
    remote-name     := path-component ['/' path-component]*
    path-component  := alpha-numeric [separator alpha-numeric]*
    alpha-numeric   := /[a-z0-9]+/
    separator       := /[_.]|__|[-]+/
    tag             := /[\\w][\\w.-]{0,127}/
    digest          := algorithm ":" hex          (sha256: 64, sha384: 96, sha512: 128 lowercase hex)

Normalisation (``normalize.go``): the first path part is a domain only if it contains ``.`` or
``:``, is ``localhost``, or has an upper-case letter; otherwise the domain is ``docker.io``.
``index.docker.io`` is ``docker.io``; a one-part Docker Hub name gets ``library/``; with neither
tag nor digest the tag is ``latest``. A reference with a tag and a digest keeps both, and the
digest decides what is pulled. The full name is at most 255 characters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")

# The grammar's pieces as patterns (strings, unanchored) for other modules to build on instead of
# spelling them again: the mirror form's fields, the proxy registry's routes.
REMOTE_NAME_PATTERN = rf"{_PATH_COMPONENT.pattern}(?:/{_PATH_COMPONENT.pattern})*"
TAG_PATTERN = r"[\w][\w.-]{0,127}"
SHA256_DIGEST_PATTERN = r"sha256:[a-f0-9]{64}"
_DOMAIN_COMPONENT = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
_TAG = re.compile(TAG_PATTERN)
_DIGEST = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*")


class InvalidReference(ValueError):
    """A name that is not an image reference; ``str(e)`` says what to fix."""


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The repository inside the registry (``library/nginx``)."""
        return self.path

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def familiar(self) -> str:
        """The short form people type: ``nginx:1.27`` rather than ``docker.io/library/nginx:1.27``."""
        name = self.name()
        if self.domain == DOCKER_HUB:
            name = self.path.removeprefix("library/") if self.path.count("/") == 1 else self.path
        return name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name() + self._suffix()


def parse(text: str) -> Reference:
    """Parse and normalise an image reference; raise InvalidReference with a message."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("Enter an image reference, like nginx:1.27 or ghcr.io/org/app@sha256:…")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"{text.strip()!r}: an image reference cannot contain spaces")
    if _IDENTIFIER.fullmatch(text):
        raise InvalidReference(
            f"{text!r}: a 64-character hexadecimal name is reserved for image IDs; "
            "write the repository name, or repository@sha256:<digest>"
        )
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        digest = _check_digest(digest, text)
    tag = None
    # A ':' after the last '/' separates the tag; one before it belongs to the domain's port.
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(
                f"{text!r}: invalid tag {tag!r} (letters, digits, '_', '.', '-'; up to 128, "
                "not starting with '.' or '-')"
            )
    if not rest:
        raise InvalidReference(f"{text!r}: the repository name is missing")
    if len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"{text!r}: the repository name is longer than 255 characters")
    domain, path = _split_domain(rest)
    domain = _check_domain(domain, text)
    if domain in ("index.docker.io",):
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if path != path.lower():
        raise InvalidReference(f"{text!r}: the repository name must be lowercase")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"{text!r}: invalid repository path component {component!r} (lowercase letters "
                "and digits, separated by '.', '_', '__' or '-')"
            )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first == first.lower()
    ):
        return DOCKER_HUB, name
    return first, remainder


def _check_domain(domain: str, text: str) -> str:
    """Validate the domain but keep it as written, as distribution does (names match literally)."""
    try:
        _normalize_host_port(domain)
    except ValueError as e:
        raise InvalidReference(f"{text!r}: {e}") from None
    return domain


def _check_digest(digest: str, text: str) -> str:
    match = _DIGEST.fullmatch(digest)
    if not match:
        raise InvalidReference(f"{text!r}: invalid digest {digest!r} (expected sha256:<64 hex digits>)")
    algorithm, hex_part = match.groups()
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise InvalidReference(f"{text!r}: unsupported digest algorithm {algorithm!r} (use sha256)")
    if len(hex_part) != expected or hex_part != hex_part.lower():
        raise InvalidReference(
            f"{text!r}: a {algorithm} digest has {expected} lowercase hexadecimal digits"
        )
    return digest


def _normalize_host_port(value: str, *, strict: bool = False) -> str:
    """``Host[:port]`` lower-cased; ValueError with a message when it is not a valid host.

    ``strict`` (registry endpoints) also refuses what the HTTP client cannot connect to
    (``_check_host_name``); image references keep distribution's grammar, and an image on such
    a host fails its check with the client's message instead.
    """
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise ValueError(f"invalid IPv6 address {value!r}")
        host, after = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}") from None
        if after:
            if not after.startswith(":"):
                raise ValueError(f"invalid host {value!r}")
            port = after[1:]
        host = f"[{host.lower()}]"
    else:
        if value.count(":") > 1:
            raise ValueError(f"invalid host {value!r} (write an IPv6 address in brackets)")
        if ":" in value:
            host, port = value.split(":", 1)
        if not host:
            raise ValueError(f"the host is missing in {value!r}")
        if strict:
            host = _check_host_name(host)
        elif all(_DOMAIN_COMPONENT.fullmatch(part) for part in host.split(".")):
            host = host.lower()
        else:
            raise ValueError(
                f"invalid host {host!r} (letters, digits and '-' in dot-separated parts)"
            )
    if port is not None:
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"invalid port {port!r} (a number from 1 to 65535)")
        return f"{host}:{int(port)}"
    return host


def _check_host_name(host: str) -> str:
    """A DNS name or an IPv4 dotted quad, lower-cased; ValueError naming what is wrong.

    Stricter than distribution's grammar on purpose: the HTTP client refuses IPv4 spellings
    with leading zeros or numbers above 255 and malformed IDNA labels, and resolvers read
    ``1.2.3`` or ``0x7f.1`` as other addresses than the one shown (``1.2.0.3``, ``127.0.0.1``).
    A name whose last part is a number is taken as an IPv4 address, as URL parsers do.
    """
    labels = host.split(".")
    if not all(_DOMAIN_COMPONENT.fullmatch(label) for label in labels):
        raise ValueError(
            f"invalid host {host!r} (letters, digits and '-' in dot-separated parts)"
        )
    last = labels[-1].lower()
    if last.isdigit() or _HEX_NUMBER.fullmatch(last):
        if len(labels) != 4 or not all(label.isdigit() for label in labels):
            raise ValueError(f"invalid IPv4 address {host!r} (write four numbers from 0 to 255 "
                             "separated by dots, like 192.0.2.10)")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv4 address {host!r} (each of the four numbers from 0 to "
                             "255, without leading zeros)") from None
        return host
    if any(len(label) > 63 for label in labels):
        raise ValueError(f"invalid host {host!r} (each dot-separated part has at most 63 "
                         "characters)")
    if len(host) > 253:
        raise ValueError(f"invalid host {host[:40]!r}… (a host name has at most 253 characters)")
    host = host.lower()
    if any(label.lower().startswith("xn--") for label in labels):
        try:
            idna.decode(host)
        except (idna.IDNAError, UnicodeError):
            raise ValueError(f"invalid host {host!r} (an 'xn--' part is not valid IDNA "
                             "punycode)") from None
    return host


def parse_repository(text: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` inside a known registry -> (repository, tag or digest).

    For a test image typed next to an endpoint (``demo-apps/nginx:latest``): no domain, no
    Docker Hub ``library/`` rule.
    """
    value = (text or "").strip()
    if not value:
        raise InvalidReference("Enter an image in this registry, like demo-apps/nginx:latest.")
    first, sep, _ = value.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        raise InvalidReference(
            f"{value!r}: enter the repository inside this registry, without the registry's host"
        )
    try:
        ref = parse(f"registry.invalid/{value}")
    except InvalidReference as e:
        raise InvalidReference(str(e).replace("registry.invalid/", "")) from None
    return ref.path, ref.reference


def normalize_endpoint(text: str) -> str:
    """A registry endpoint as ``host[:port]``; ValueError with a message a user can act on.

    A typed ``https://`` or ``http://`` and a trailing slash are dropped; a path, credentials,
    spaces or an invalid host are refused. Docker Hub's spellings become ``docker.io``.
    """
    value = (text or "").strip()
    if not value:
        raise ValueError("Enter the registry's host, like registry.example.com or 127.0.0.1:5000.")
    if any(c.isspace() for c in value):
        raise ValueError("The endpoint cannot contain spaces: enter just the host, with an optional :port.")
    scheme, sep, rest = value.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https"):
            raise ValueError(
                f"Unsupported scheme {scheme!r}: enter just the host, like registry.example.com."
            )
        value = rest
    value = value.rstrip("/")
    if "@" in value:
        raise ValueError(
            "Do not put credentials in the endpoint: enter the host here and the credentials "
            "in Username and Password."
        )
    if "/" in value:
        host, _, path = value.partition("/")
        raise ValueError(
            f"Remove the path /{path}: the endpoint is a host with an optional port, "
            f"like {host or 'registry.example.com'}."
        )
    if "?" in value or "#" in value:
        raise ValueError("The endpoint cannot contain '?' or '#': enter just the host and port.")
    try:
        endpoint = _normalize_host_port(value, strict=True)
    except ValueError as e:
        raise ValueError(f"Not a valid endpoint: {e}.") from None
    return canonical_registry(endpoint)


def canonical_registry(domain: str) -> str:
    """One name per registry: Docker Hub's spellings are all ``docker.io``."""
    return DOCKER_HUB if domain in DOCKER_HUB_ALIASES else domain
