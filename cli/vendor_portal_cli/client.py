"""The vendor API over HTTP: the token, retries, Idempotency-Key, and errors a person can act on.

Only this module speaks HTTP. Every call returns the decoded JSON (or bytes for downloads) or
raises ``ApiError`` with the API's own message and per-field errors, which the commands print.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field

import httpx

from . import __version__

API_PREFIX = "/vendor/v3"
ATTEMPTS = 5
# Statuses worth another try: the server or a proxy in front of it is restarting or overloaded.
TRANSIENT_STATUSES = {429, 502, 503, 504}


class ApiError(Exception):
    """A refusal or failure: ``message`` (and ``errors`` per field) come from the API."""

    def __init__(self, message: str, *, status: int | None = None, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}


@dataclass
class Client:
    url: str
    token: str
    timeout: float = 60.0
    # Seconds to the first retry; doubles each time (jittered so parallel pipelines spread out).
    backoff: float = 0.5
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            # The token travels as Replicated's CLI sends it: the bare value in Authorization.
            self._http = httpx.Client(
                base_url=self.url.rstrip("/") + API_PREFIX, timeout=self.timeout,
                headers={"Authorization": self.token, "Accept": "application/json",
                         "User-Agent": f"vendor-portal-cli/{__version__}"})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- verbs ----------------------------------------------------------------------------------

    def get(self, path: str, **params) -> dict:
        params = {k: v for k, v in params.items() if v is not None}
        return self._json(self.request("GET", path, params=params, retry=True))

    def download(self, path: str) -> bytes:
        return self.request("GET", path, retry=True).content

    def create(self, path: str, body: dict) -> dict:
        """POST that makes something: one Idempotency-Key for every attempt, so a retry after a
        dropped response returns the first result instead of making a second one."""
        key = str(uuid.uuid4())
        return self._json(self.request("POST", path, json=body, retry=True,
                                       headers={"Idempotency-Key": key}))

    def post(self, path: str, body: dict | None = None) -> dict:
        """POST that changes state without a key: retried only when it surely never arrived."""
        return self._json(self.request("POST", path, json=body or {}, retry=False))

    def put(self, path: str, body: dict) -> dict:
        return self._json(self.request("PUT", path, json=body, retry=False))

    def follow(self, url: str) -> dict:
        """GET a poll URL the API handed out (absolute or under the API prefix)."""
        if url.startswith(("http://", "https://")):
            return self._json(self.request("GET", url, retry=True))
        return self.get(url.removeprefix(API_PREFIX))

    # --- the one request loop -------------------------------------------------------------------

    def request(self, method: str, path: str, *, retry: bool, **kwargs) -> httpx.Response:
        """Send with retries; ``retry`` says the request may be repeated once it was sent (a GET,
        or a POST with an Idempotency-Key). A refused connection is always safe to retry."""
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.ConnectError as e:
                if last:
                    raise ApiError(f"cannot reach the vendor portal at {self.url}: {e}") from None
                self._sleep(attempt)
                continue
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if not retry or last:
                    raise ApiError(f"the connection to {self.url} failed: {e or type(e).__name__}"
                                   + ("" if retry else " (not retried: the change may have been made;"
                                      " check before running it again)")) from None
                self._sleep(attempt)
                continue
            if response.status_code in TRANSIENT_STATUSES and not last:
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            # The same Idempotency-Key while its first request is still running: wait for it.
            if (response.status_code == 409 and "Idempotency-Key" in kwargs.get("headers", {})
                    and not last):
                self._sleep(attempt)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        time.sleep(delay)

    @staticmethod
    def _json(response: httpx.Response) -> dict:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"the server answered {response.status_code} with something that is not "
                           f"JSON; is {response.url} the vendor portal?") from None


def _error(response: httpx.Response) -> ApiError:
    """The API's message (and field errors) of a 4xx/5xx, or the status when it sent none."""
    message, errors = "", {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or body.get("detail") or "")
        errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    if not message:
        message = f"the server answered {response.status_code} {response.reason_phrase}"
        if response.status_code == 404 and not isinstance(body, dict):
            message += f" for {response.request.url.path}: is the URL the vendor portal?"
    return ApiError(message, status=response.status_code, errors=errors)
