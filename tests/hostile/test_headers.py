"""Oversized and malformed requests, sent raw: refused by the server before any view runs.

Limits the server keeps: headers at most 64 KB and 100 fields (else 431), the request line at
most 8 KB (else 414); malformed headers are a 400. Memory must not grow with what is sent.
"""

import pytest

from tests.hostile.conftest import guarded, raw_request

ENDPOINTS = ["/customer/", "/release/mysampleecrapp/pending?channelSequence=0", "/v2/", "/accounts/login/"]


def request(path: str, headers: list[bytes] = (), *, line: bytes | None = None) -> bytes:
    first = line or f"GET {path} HTTP/1.1".encode()
    return b"\r\n".join([first, b"Host: 127.0.0.1", *headers, b"Connection: close", b"", b""])


CASES = {
    "1mb-header-value": (lambda path: request(path, [b"X-Hostile: " + b"a" * 2**20]), {431}),
    "1mb-cookie": (lambda path: request(path, [b"Cookie: a=" + b"b" * 2**20]), {431}),
    "1mb-authorization": (lambda path: request(path, [b"Authorization: Basic " + b"A" * 2**20]), {431}),
    "200-fields": (lambda path: request(path, [f"X-Hostile-{i}: {i}".encode() for i in range(200)]), {431}),
    "9kb-request-line": (lambda path: request(path, line=f"GET {path}{'&' if '?' in path else '?'}q={'a' * 9000} HTTP/1.1".encode()), {414}),
    "no-colon": (lambda path: request(path, [b"X-Hostile no colon here"]), {400}),
    "nul-in-value": (lambda path: request(path, [b"X-Hostile: a\x00b"]), {400}),
    "nul-in-name": (lambda path: request(path, [b"X-Hos\x00tile: a"]), {400}),
    "obs-fold": (lambda path: request(path, [b"X-Hostile: a", b" folded continuation"]), {400}),
    "invalid-utf8-value": (lambda path: request(path, [b"X-Hostile: \xff\xfe\xc3\x28"]), {200, 302, 400, 401}),
    "space-before-colon": (lambda path: request(path, [b"X-Hostile : a"]), {400}),
}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("case", CASES)
def test_oversized_or_malformed_headers_are_refused(stack, path, case):
    build, statuses = CASES[case]
    with guarded(stack, memory=True):
        response = raw_request(stack, build(path))
        assert response.status is not None, "the server closed the connection without an answer"
        assert response.status != 500
        assert response.status in statuses, f"{response.status}, expected one of {sorted(statuses)}"


def test_ten_large_header_requests_do_not_grow_the_server(stack):
    """Ten 1 MB header requests in a row: memory stays bounded (the issue saw 1 GB from ten 50 MB ones)."""
    with guarded(stack, memory=True):
        for _ in range(10):
            response = raw_request(stack, request("/customer/", [b"X-Hostile: " + b"a" * 2**20]))
            assert response.status == 431, response.status


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
