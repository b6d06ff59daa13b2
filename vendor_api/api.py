"""The vendor API at /vendor/v3/: one NinjaAPI, its token auth, its errors and conventions.

Paths and bodies follow Replicated's vendor API v3 where it has an equivalent. Each area is a
Router module (``apps.py``: apps, channels; ``releases.py``; ``customers.py``; ``registries.py``)
that parses, checks access through ``vendor_api.access`` and calls the same services and
capability checks as the pages.

Authentication: ``Authorization: <token>`` as Replicated's CLI sends it (``Bearer <token>``
accepted too). Nothing else authenticates: a session cookie is ignored, so the API has no CSRF
exposure. The documentation page (``/vendor/v3/docs``) and ``/vendor/v3/openapi.json`` are
public; the page asks for a token ("Authorize") and loads only the portal's own static files.

Errors: every refusal is JSON of one shape, with the texts the pages' forms show::

    {"message": "What went wrong and what to do.",
     "errors": {"<field>": ["What to fix in it.", ...], ...}}    # "errors" only for input

``message`` is the key Replicated's CLI reads. Input problems are 400 (a form's errors, a bad
body), 401 no or unknown token, 403 the token's role or app scope does not allow it, 404
another team's (or another app's) object, 409 a conflict (a concurrent duplicate), 413 a body
too large, 422 an Idempotency-Key reused with another body, 429 throttled (``Retry-After``).
``error_response`` turns a Django form's errors or a service's ``ValidationError`` into it.

Conventions:

- Bodies: at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes, as the pages', and JSON nested at most
  ``MAX_JSON_DEPTH`` levels (YAML inside goes through the bounded loader like the editor's).
- Lists: ``pageSize`` (1-100, default 20) and ``currentPage`` (from 0), Replicated's names for
  limit and offset (``paginate``); the answer carries ``totalCount``. A list runs the same
  number of queries whatever the page holds.
- Creates take an ``Idempotency-Key`` header (``idempotent``).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaValidationError

from . import apps, customers, license_fields, registries, releases
from .auth import TokenAuth
from .conventions import ApiError, BoundedParser, body_too_large, error_response

# --- the API ---------------------------------------------------------------------------------

api = NinjaAPI(
    title="Vendor portal API",
    version="3",
    description="Release from CI: apps, channels, releases, customers and registries. "
                "Send a token from the Tokens page as the Authorization header.",
    urls_namespace="vendor_api",
    auth=TokenAuth(),
    parser=BoundedParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _json(request, status: int, body: dict, headers: dict | None = None):
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    body = {"message": exc.message}
    if exc.errors:
        body["errors"] = exc.errors
    return _json(request, exc.status, body, exc.headers)


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return _json(request, 403, {"message": str(exc) or "Your token's role does not allow this."})


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _json(request, 404, {"message": "Not found: no such object for this token (check the app and id)."})


@api.exception_handler(DjangoValidationError)
def _invalid(request, exc):
    return _api_error(request, error_response(exc))


@api.exception_handler(SchemaValidationError)
def _schema_invalid(request, exc):
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        errors.setdefault(".".join(loc) or "body", []).append(error.get("msg", "Invalid value."))
    return _api_error(request, error_response(DjangoValidationError(errors) if errors else
                                              DjangoValidationError("Invalid request.")))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _json(request, 401, {"message": "Send your API token in the Authorization header."})


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # ninja wraps what the body parser raises as "Cannot parse request body": say what it was.
    if isinstance(exc.__cause__, ApiError):
        return _api_error(request, exc.__cause__)
    return _json(request, exc.status_code, {"message": exc.message})


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return _api_error(request, body_too_large())


api.add_router("/", apps.router)
api.add_router("/", releases.router)
api.add_router("/", customers.router)
api.add_router("/", license_fields.router)
api.add_router("/", registries.router)
