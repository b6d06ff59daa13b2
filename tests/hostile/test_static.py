"""Path traversal under /static/: always a 404, never a file outside the static folders."""

import pytest

from tests.hostile.conftest import guarded, raw_request
from tests.hostile.payloads import STATIC_TRAVERSALS


@pytest.mark.parametrize("path", STATIC_TRAVERSALS)
def test_traversal_under_static_is_a_404(stack, path):
    secret = (stack.directory / "var" / "encryption_keys").read_bytes().strip()
    with guarded(stack):
        response = raw_request(stack, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert response.status == 404, f"{response.status}: {response.head[:200]!r}"
        assert secret not in response.body


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
