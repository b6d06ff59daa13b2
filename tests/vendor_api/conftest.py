"""Tokens for the personas, and a client that sends one."""

import pytest

from portal.models import ApiToken, Role
from portal.tokens import token_create


def make_token(user, *, role=None, kind=ApiToken.Kind.SERVICE, apps=(), name="ci", expires_in_days=None):
    membership = user.membership
    _row, token = token_create(team=membership.team, creator=user, kind=kind, name=name,
                               role=role or membership.role, apps=apps, expires_in_days=expires_in_days)
    return token


def api_headers(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": token}


@pytest.fixture
def admin_token(alice):
    return make_token(alice, role=Role.ADMIN)


@pytest.fixture
def api(client):
    """Django's test client with the API's base path and JSON bodies."""

    class Api:
        def __init__(self, client):
            self.client = client

        def call(self, method, path, token=None, json=None, **extra):
            headers = api_headers(token) if token else {}
            kwargs = {"content_type": "application/json", "data": json} if json is not None else {}
            return getattr(self.client, method)(f"/vendor/v3{path}", **kwargs, **headers, **extra)

        def get(self, path, token=None, **extra):
            return self.call("get", path, token, **extra)

        def post(self, path, token=None, json=None, **extra):
            return self.call("post", path, token, json if json is not None else {}, **extra)

        def put(self, path, token=None, json=None, **extra):
            return self.call("put", path, token, json if json is not None else {}, **extra)

    return Api(client)
