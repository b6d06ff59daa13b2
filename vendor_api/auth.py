"""Token authentication: the Authorization header, checked by ``portal.tokens``."""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from ninja.security import APIKeyHeader

from portal import throttle
from portal.tokens import TokenRefused, token_check, token_touch

from .conventions import ApiError


class TokenAuth(APIKeyHeader):
    """``Authorization: <token>`` or ``Authorization: Bearer <token>``; nothing else."""

    param_name = "Authorization"

    def authenticate(self, request, key):
        address = throttle.client_address(request)
        key = (key or "").strip()
        if key[:7].lower() == "bearer ":
            key = key[7:].strip()
        if not key:
            raise ApiError(401, "Send your API token in the Authorization header "
                                "(create one under Tokens or My tokens).")
        try:
            access = token_check(key)
        except TokenRefused as refused:
            raise ApiError(401, str(refused)) from None
        if access is None:
            seconds = throttle.record_failure(address, throttle.TOKEN_FAILURES)
            if seconds is not None:
                raise ApiError(429, f"Too many unknown tokens from this address: try again in {seconds} seconds.",
                               headers={"Retry-After": str(seconds)})
            raise ApiError(401, "Unknown API token: check it was copied whole, or create a new one.")
        seconds = throttle.record_failure(access.token.prefix, throttle.API_CALLS)
        if seconds is not None:
            raise ApiError(429, f"This token made more than {settings.PORTAL_API_RATE_LIMIT} calls in a minute: "
                                f"try again in {seconds} seconds.", headers={"Retry-After": str(seconds)})
        token_touch(access.token, address)
        # What the pages read from the session, the API takes from the token only.
        request.user = access.user or AnonymousUser()
        request.api_token = access.token
        request.access = access
        request.membership = access.membership
        request.team = access.membership.team
        return access


