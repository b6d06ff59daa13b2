"""Byte ranges of blob GETs (RFC 9110, section 14): what the proxy registry honours.

containerd resumes an interrupted layer download with ``Range: bytes=<offset>-``, and the
distribution spec says blob GETs should support ranges. One range is honoured, in its three
forms: ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` (the last n bytes). Anything else (a
malformed header, several ranges, another unit, a header longer than ``MAX_HEADER``, an
``If-Range`` that does not name this blob) is ignored, as RFC 9110 allows: the whole blob is
answered with 200. A range that starts past the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# No client needs more for one range of a blob; a longer header is not worth parsing.
MAX_HEADER = 200
_SPEC = re.compile(r"^bytes=(?:(\d+)-(\d*)|-(\d+))$", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")


@dataclass(frozen=True)
class Requested:
    """One range as asked, before the blob's size is known: ``first``-``last`` (``last`` None:
    to the end), or the last ``suffix`` bytes."""

    first: int | None = None
    last: int | None = None
    suffix: int | None = None

    def header(self) -> str:
        """The range as a Range header, to ask the upstream for the same bytes."""
        if self.suffix is not None:
            return f"bytes=-{self.suffix}"
        return f"bytes={self.first}-{'' if self.last is None else self.last}"

    def resolve(self, size: int) -> tuple[int, int] | None:
        """The first and last byte of a blob of ``size`` bytes, or None: unsatisfiable."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                return None
            return max(size - self.suffix, 0), size - 1
        if self.first >= size:
            return None
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last

    def unsatisfiable(self, size: int) -> str:
        """What to tell a client whose range ``resolve`` refused."""
        if size == 0:
            return "The blob is empty: ask for it without a Range header."
        if self.suffix is not None:
            return (f"The range {self.header()} asks for the last 0 bytes: ask for at least 1 "
                    f"(the blob has {size} bytes).")
        return (f"The range {self.header()} starts past the end of the blob ({size} bytes): "
                f"the first byte must be at most {size - 1}.")


def requested(headers, digest: str) -> Requested | None:
    """The one range a GET asks for, or None: the whole blob (no range, or one to ignore)."""
    value = headers.get("Range", "")
    if not value or len(value) > MAX_HEADER:
        return None
    if_range = headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{digest}"':
        # Only the blob's own digest is a validator this blob matches (its bytes never change);
        # a date or another tag: the client's copy may be something else, send it all.
        return None
    match = _SPEC.match(value.strip())
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return Requested(suffix=int(suffix))
    if last and int(last) < int(first):
        return None  # invalid, so ignored (RFC 9110, 14.1.1)
    return Requested(first=int(first), last=int(last) if last else None)


def content_range(value: str) -> tuple[int, int, int | None] | None:
    """(first, last, size or None) of a 206's Content-Range, or None if malformed."""
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        return None
    first, last, size = match.groups()
    if int(last) < int(first) or (size != "*" and int(last) >= int(size)):
        return None
    return int(first), int(last), None if size == "*" else int(size)


def unsatisfied_size(value: str) -> int | None:
    """The size a 416's Content-Range (``bytes */<size>``) gives, or None."""
    match = _UNSATISFIED.match(value.strip())
    return int(match[1]) if match else None
