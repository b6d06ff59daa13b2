"""Image references by distribution/reference's rules (tables as in normalize_test.go)."""

import pytest

from registries.reference import (
    InvalidReference,
    Reference,
    normalize_endpoint,
    parse,
    parse_repository,
)

D = "sha256:" + "a" * 64

VALID = [
    # text, domain, path, tag, digest
    ("nginx", "docker.io", "library/nginx", "latest", None),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
    ("library/nginx", "docker.io", "library/nginx", "latest", None),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("docker.io/library/nginx:1.27", "docker.io", "library/nginx", "1.27", None),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None),
    ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None),
    ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "latest", None),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
    ("ghcr.io/org/app@" + D, "ghcr.io", "org/app", None, D),
    ("ghcr.io/org/app:1.0@" + D, "ghcr.io", "org/app", "1.0", D),
    ("4999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx:latest",
     "4999.dkr.ecr.us-east-2.amazonaws.com", "demo-apps/nginx", "latest", None),
    ("quay.io/a/b/c/d:tag_1.2-rc", "quay.io", "a/b/c/d", "tag_1.2-rc", None),
    ("registry.example.com/a__b/c-d/e.f--g", "registry.example.com", "a__b/c-d/e.f--g", "latest", None),
    ("Registry.example.com/app", "Registry.example.com", "app", "latest", None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None),
    ("nginx:" + "a" * 128, "docker.io", "library/nginx", "a" * 128, None),
]


@pytest.mark.parametrize("text,domain,path,tag,digest", VALID)
def test_it_parses_and_normalises_valid_references(text, domain, path, tag, digest):
    assert parse(text) == Reference(domain=domain, path=path, tag=tag, digest=digest)


INVALID = [
    "",
    " nginx",
    "nginx latest",
    "Nginx",  # upper case in a Docker Hub name
    "docker.io/Library/nginx",
    "-nginx",
    "nginx-",
    "nginx//app",
    "nginx:",
    "nginx:-tag",
    "nginx:" + "a" * 129,
    "nginx@sha256:abc",
    "nginx@sha256:" + "A" * 64,
    "nginx@md5:" + "a" * 32,
    "a" * 64,  # reserved for image IDs
    "localhost:port/app",
    "localhost:70000/app",
    "host_name.com/app",
    "-host.com/app",
    "a/" + "b" * 255,
    "foo.com:/app",
    ":tag",
    "@" + D,
    "[::1/app",
    "[zz]:5000/app",
]


@pytest.mark.parametrize("text", INVALID)
def test_it_rejects_invalid_references_with_a_message(text):
    with pytest.raises(InvalidReference) as e:
        parse(text)
    assert str(e.value)


def test_it_keeps_tag_and_digest_but_the_digest_decides():
    ref = parse("nginx:1.27@" + D)
    assert ref.reference == D
    assert str(ref) == "docker.io/library/nginx:1.27@" + D
    assert ref.familiar() == "nginx:1.27@" + D


def test_it_prints_familiar_and_full_names():
    assert str(parse("nginx")) == "docker.io/library/nginx:latest"
    assert parse("nginx").familiar() == "nginx:latest"
    assert parse("bitnami/redis:7").familiar() == "bitnami/redis:7"
    assert parse("localhost:5000/app").familiar() == "localhost:5000/app:latest"
    assert parse("localhost:5000/app").name() == "localhost:5000/app"


@pytest.mark.parametrize("text,expected", [
    ("demo-apps/nginx:latest", ("demo-apps/nginx", "latest")),
    ("nginx", ("nginx", "latest")),
    ("team/app@" + D, ("team/app", D)),
])
def test_it_parses_a_repository_inside_a_registry(text, expected):
    assert parse_repository(text) == expected


@pytest.mark.parametrize("text", ["", "ghcr.io/org/app", "localhost:5000/app", "Demo/App", "a b"])
def test_it_rejects_a_repository_with_a_host_or_bad_name(text):
    with pytest.raises(InvalidReference):
        parse_repository(text)


ENDPOINTS = [
    ("registry.example.com", "registry.example.com"),
    ("  Registry.Example.com  ", "registry.example.com"),
    ("https://registry.example.com/", "registry.example.com"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("HTTPS://foo.io:443/", "foo.io:443"),
    ("4999.dkr.ecr.us-east-2.amazonaws.com", "4999.dkr.ecr.us-east-2.amazonaws.com"),
    ("docker.io", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("https://registry-1.docker.io/", "docker.io"),
    ("localhost:5000", "localhost:5000"),
    ("[::1]:5000", "[::1]:5000"),
    ("[2001:DB8::1]", "[2001:db8::1]"),
    ("10.0.0.1", "10.0.0.1"),
    ("0.0.0.0:5000", "0.0.0.0:5000"),  # a usable address; the SSRF guard refuses it, not the grammar
    ("123.example.com", "123.example.com"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("a" * 63 + ".example.com", "a" * 63 + ".example.com"),
    ("registry.example.com:65535", "registry.example.com:65535"),
]


@pytest.mark.parametrize("text,expected", ENDPOINTS)
def test_it_normalises_endpoints(text, expected):
    assert normalize_endpoint(text) == expected


BAD_ENDPOINTS = [
    ("", "Enter"),
    ("registry.example.com/v2/", "path"),
    ("https://index.docker.io/v1/", "path"),
    ("user:pw@registry.example.com", "credentials"),
    ("registry example.com", "spaces"),
    ("ftp://registry.example.com", "scheme"),
    ("registry_example.com", "invalid host"),
    ("registry.example.com:99999", "port"),
    ("registry.example.com:abc", "port"),
    ("-bad.example.com", "invalid host"),
    ("registry.example.com?x=1", "'?'"),
    # Spellings the HTTP client cannot use, or reads as another address than the one shown.
    ("0177.0.0.1:5302", "IPv4"),
    ("01.2.3.4", "IPv4"),
    ("256.1.1.1", "IPv4"),
    ("999.999.999.999", "IPv4"),
    ("1.2.3", "IPv4"),
    ("1.2.3.4.5", "IPv4"),
    ("0x7f.1", "IPv4"),
    ("example.0x10", "IPv4"),
    ("a" * 64 + ".example.com", "63 characters"),
    (".".join(["a" * 60] * 5), "253 characters"),
    ("registry.example.com:0", "port"),
    ("registry.example.com:65536", "port"),
    ("registry.example.com:+80", "port"),
    ("xn--zz.example.com", "IDNA"),
    ("xn--a.example.com", "IDNA"),
    ("r\u00e9gistry.example.com", "invalid host"),
    ("a..example.com", "invalid host"),
    ("registry.example.com.", "invalid host"),
    (".example.com", "invalid host"),
    ("[::1", "IPv6"),
    ("[zz::1]:5000", "IPv6"),
    ("[::1]5000", "invalid host"),
    ("http://u@registry.example.com", "credentials"),
    ("registry.example\t.com", "spaces"),
    ("registry.\u3000example.com", "spaces"),
]


@pytest.mark.parametrize("text,fragment", BAD_ENDPOINTS)
def test_it_refuses_bad_endpoints_with_a_message(text, fragment):
    with pytest.raises(ValueError) as e:
        normalize_endpoint(text)
    assert fragment in str(e.value)
