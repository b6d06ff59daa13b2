"""The registry's answers as RegistryErrors: the one status -> error mapping of the client.

Codes (``RegistryError.code``) a registry's answer maps to: ``unauthorized`` (401),
``access_denied`` (403 or DENIED), ``image_not_found`` (404), ``upstream`` (429, 5xx: transient;
other statuses: permanent). The whole code list is in registries/errors.py.
"""

from __future__ import annotations

import httpx

from ..errors import RegistryError


def error_codes(response: httpx.Response) -> list[str]:
    """The OCI error codes in a response body (``{"errors": [{"code": …}]}``), if any."""
    try:
        body = response.json()
    except Exception:
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [str(e.get("code", "")).upper() for e in body["errors"] if isinstance(e, dict)]


def unauthorized(registry: str, *, has_credentials: bool) -> RegistryError:
    """A 401: the credentials were refused, or there are none and the registry wants some."""
    if has_credentials:
        return RegistryError(
            f"{registry} rejected the username and password. Check them, and that they "
            "are not expired (pushing needs credentials with write access).",
            permanent=True, code="unauthorized")
    return RegistryError(f"{registry} requires a username and password.",
                         permanent=True, code="unauthorized")


def status_error(response: httpx.Response, *, registry: str, what: str,
                 has_credentials: bool) -> RegistryError:
    """A RegistryError a user can act on; 401/403/404 are permanent, 429/5xx transient."""
    status = response.status_code
    codes = error_codes(response)
    if status == 401:
        return unauthorized(registry, has_credentials=has_credentials)
    if status == 429 or "TOOMANYREQUESTS" in codes:
        return RegistryError(f"{what}: {registry} is rate limiting the portal; it will "
                             "try again.", permanent=False, code="upstream")
    if status >= 500:
        return RegistryError(f"{what}: {registry} answered {status} (a server error); "
                             "the portal will try again.", permanent=False, code="upstream")
    if status == 403 or "DENIED" in codes:
        return RegistryError(f"{what}: {registry} denied access ({status}): the credentials "
                             "work but lack permission for this repository (pushing needs "
                             "write access).", permanent=True, code="access_denied")
    if status == 404:
        detail = ", ".join(codes)
        return RegistryError(f"{what}: not found on {registry}"
                             f"{f' ({detail})' if detail else ''}.",
                             permanent=True, code="image_not_found")
    return RegistryError(f"{what}: {registry} answered HTTP {status}.",
                         permanent=True, code="upstream")


def manifest_error(response: httpx.Response, *, image: str, registry: str,
                   has_credentials: bool, bearer: bool) -> RegistryError | None:
    """The error of a manifest read (None for a 200), naming ``image``: a token registry
    answers 401/403 for an image the credentials cannot see as well as for one that is not
    there."""
    status = response.status_code
    if status == 200:
        return None
    codes = set(error_codes(response))
    if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}:
        return RegistryError(
            f"{image} was not found on {registry}: the credentials work, but this image "
            "does not exist or they cannot see it. Check the repository and tag.",
            permanent=True, code="image_not_found")
    if status in (401, 403):
        if status == 401 and not bearer:
            return unauthorized(registry, has_credentials=has_credentials)
        if not has_credentials:
            return RegistryError(
                f"{image} on {registry} cannot be read anonymously: it is private or "
                "does not exist.", permanent=True, code="unauthorized")
        return RegistryError(
            f"The credentials work, but they are not allowed to read {image} on "
            f"{registry} (or it does not exist). Grant pull access to this repository.",
            permanent=True, code="image_not_found")
    return status_error(response, registry=registry, what=f"Reading {image}",
                        has_credentials=has_credentials)
