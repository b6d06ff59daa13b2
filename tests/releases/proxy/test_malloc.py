"""The ASGI process tunes glibc's malloc for streamed blobs (docs/benchmarks.md, "Proxy registry")."""

import ctypes.util

import pytest

from portal import asgi


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to tune")
def test_it_tunes_glibc_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert asgi.tune_malloc() is True
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert asgi.tune_malloc() is False
