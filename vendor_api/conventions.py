"""The API's conventions, in one place: the error, the bounded body, pages, Idempotency-Key.

``vendor_api/api.py``'s docstring describes what clients see.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from ninja import Field, Schema, Status
from ninja.parser import Parser
from ninja.responses import NinjaJSONEncoder

from portal.models import IdempotencyKey

MAX_JSON_DEPTH = 100
IDEMPOTENCY_TTL = timedelta(hours=24)


class ApiError(Exception):
    """A refusal: ``status``, a message, and optional per-field errors."""

    def __init__(self, status: int, message: str, errors: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors or {}, headers or {}


def _messages(error) -> list[str]:
    return [str(m) for m in (error.messages if hasattr(error, "messages") else [error])]


def error_response(source, *, status: int = 400, message: str = "") -> ApiError:
    """The error for a bound Django form's errors or a ``ValidationError`` (from a service or a form).

    Field errors stay under their field; errors of no field ("__all__") become the message.
    """
    if hasattr(source, "errors") and hasattr(source, "is_bound"):  # a form
        errors = {name: [str(m) for m in messages] for name, messages in source.errors.items()}
    elif isinstance(source, DjangoValidationError) and hasattr(source, "error_dict"):
        errors = {name: [m for e in errs for m in _messages(e)] for name, errs in source.error_dict.items()}
    else:
        errors = {"__all__": _messages(source)}
    general = errors.pop("__all__", [])
    if not message:
        message = " ".join(general) if general else (
            "Fix the fields listed in errors." if len(errors) != 1 else next(iter(errors.values()))[0])
    return ApiError(status, message, errors)


# --- the request body ------------------------------------------------------------------------


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def body_too_large() -> ApiError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ApiError(413, f"The request body is larger than {limit:,} bytes: send fewer or smaller files.")


class BoundedParser(Parser):
    """JSON bodies bounded like the pages' forms: size, then nesting."""

    def parse_body(self, request):
        try:
            body = request.body
        except RequestDataTooBig:
            raise body_too_large() from None
        if not body:
            return {}
        try:
            data = json.loads(body)
        except RecursionError:
            data = None
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, f"The body is not valid JSON: {error}.") from None
        if data is None or _depth(data) > MAX_JSON_DEPTH:
            raise ApiError(400, f"The body is nested more than {MAX_JSON_DEPTH} levels deep.")
        return data


# --- lists -----------------------------------------------------------------------------------


class PageParams(Schema):
    pageSize: int = Field(20, ge=1, le=100)
    currentPage: int = Field(0, ge=0)


def paginate(queryset, params: PageParams) -> tuple[list, int]:
    """One page of ``queryset`` and the total: two queries, whatever the size."""
    start = params.currentPage * params.pageSize
    return list(queryset[start:start + params.pageSize]), queryset.count()


# --- Idempotency-Key --------------------------------------------------------------------------


def idempotent(request, create):
    """Run ``create()`` (which returns ``(status, body)``) once per Idempotency-Key and token;
    the answer as a ``Status`` for the route to return.

    A retry with the same key and request gets the first answer again; the same key with
    another request is 422; a retry while the first is still running is 409. Only successes
    are kept: a refused request may be corrected and sent again with its key.
    """
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return Status(*create())
    if len(key) > 200:
        raise ApiError(400, "Idempotency-Key is longer than 200 characters.")
    token = request.api_token
    digest = hashlib.sha256(b"\0".join([request.method.encode(), request.path.encode(), request.body])).hexdigest()
    IdempotencyKey.objects.filter(token=token, created_at__lt=timezone.now() - IDEMPOTENCY_TTL).delete()
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(token=token, key=key, request_hash=digest)
    except IntegrityError:
        first = IdempotencyKey.objects.filter(token=token, key=key).first()
        if first is None:  # expired and deleted meanwhile: a key only lives 24 hours
            raise ApiError(409, "This Idempotency-Key is being reused right now: retry in a moment.") from None
        if first.request_hash != digest:
            raise ApiError(422, "This Idempotency-Key was used with another request: "
                                "use a new key for a new request.") from None
        if first.status_code is None:
            raise ApiError(409, "A request with this Idempotency-Key is still running: "
                                "retry when it has finished.") from None
        return Status(first.status_code, first.response)
    try:
        status, body = create()
    except BaseException:
        IdempotencyKey.objects.filter(pk=row.pk).delete()
        raise
    # Kept as the API renders it (dates as ISO strings), so a replay answers the same bytes.
    body = json.loads(json.dumps(body, cls=NinjaJSONEncoder))
    IdempotencyKey.objects.filter(pk=row.pk).update(status_code=status, response=body)
    return Status(status, body)


