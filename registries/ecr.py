"""Amazon ECR through boto3: endpoint parsing, registry credentials (cached), caller identity.

boto3 honours ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL_STS`` itself (tests point them at
moto's server). Errors become RegistryError; real AWS and moto word the same failures
differently (moto answers HTTP 403 with the code inside the message), so both are mapped:

===========================  ======================================  ====================
failure                      real AWS                                moto's server
===========================  ======================================  ====================
unknown access key id        UnrecognizedClientException             InvalidClientTokenId
wrong secret                 InvalidSignatureException               SignatureDoesNotMatch
no ecr:GetAuthorizationToken AccessDeniedException                   AccessDenied
===========================  ======================================  ====================

Token cache: keyed by a SHA-256 of (cache key, access key id, secret, region), so a secret is
never a key in clear and changed keys never hit an old entry. A token is reused until 5 minutes
before its ``expiresAt``. Within a process, concurrent callers of one key wait on a per-key lock.
With REDIS_URL the token is shared by every web process and worker: stored in Redis encrypted
with the portal's encryption keys (``crypto``, as registry secrets are), and a Redis lock per
key lets one process call GetAuthorizationToken while the others wait for its token, so the
installation makes one call per registry per token lifetime. Without Redis, or while it is
down, each process keeps its own. Neither the secret nor the token is ever logged or put in a
message.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from portal import shared

from . import crypto
from .errors import RegistryError

log = logging.getLogger(__name__)

REFRESH_BEFORE = dt.timedelta(minutes=5)
# moto answers expiresAt = 2015-01-01; a token already "expired" when issued means the clock
# or the server is off: keep it this long (Harbor's cap) and let a 401 from the registry drop it
# (registries/credentials.py renews it then, tested in tests/registries/test_credentials.py).
FALLBACK_LIFETIME = dt.timedelta(hours=1)

_ECR_HOST = re.compile(
    r"^(?P<account>[^.]+)\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
    r"\.amazonaws\.com(?:\.cn)?$"
)


def parse_ecr_endpoint(host: str) -> tuple[str, str]:
    """``<account>.dkr.ecr.<region>.amazonaws.com`` -> (account, region); ValueError explains."""
    value = (host or "").strip().lower()
    match = _ECR_HOST.match(value)
    if not match:
        raise ValueError(
            f"{host!r} is not an Amazon ECR registry host. It looks like "
            "123456789012.dkr.ecr.us-east-1.amazonaws.com (your AWS account ID, then the "
            "region); copy it from the repository URI in the ECR console, without the "
            "repository name."
        )
    account, region = match.group("account"), match.group("region")
    if not (account.isdigit() and len(account) == 12):
        raise ValueError(
            f"The AWS account ID in {host!r} is {account!r} ({len(account)} characters), but "
            "AWS account IDs have exactly 12 digits. Check the registry URI in the ECR console."
        )
    return account, region


# --- errors ---------------------------------------------------------------------------------

_UNKNOWN_KEY = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId"}
_BAD_SECRET = {"InvalidSignatureException", "SignatureDoesNotMatch"}
_DENIED = {"AccessDeniedException", "AccessDenied"}
_THROTTLED = {"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException",
              "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
              "InternalServerError", "ServerException"}
_EXPIRED = {"ExpiredTokenException", "ExpiredToken", "RequestExpired"}


def _classify(code: str, message: str) -> str:
    # moto's server puts the meaningful code inside the message of a generic 403.
    for names, kind in ((_UNKNOWN_KEY, "unknown_access_key"), (_BAD_SECRET, "bad_secret"),
                        (_DENIED, "access_denied"), (_EXPIRED, "expired"),
                        (_THROTTLED, "upstream")):
        if code in names:
            return kind
    for names, kind in ((_UNKNOWN_KEY, "unknown_access_key"), (_BAD_SECRET, "bad_secret"),
                        (_DENIED, "access_denied")):
        if any(name in message for name in names):
            return kind
    if "security token included in the request is invalid" in message:
        return "unknown_access_key"
    if "signature we calculated does not match" in message:
        return "bad_secret"
    if "not authorized to perform" in message:
        return "access_denied"
    return ""


def _error(exc: Exception, *, action: str) -> RegistryError:
    """Map a boto3/botocore exception to a RegistryError (never echoing keys or tokens)."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        kind = _classify(code, message)
        if kind == "unknown_access_key":
            return RegistryError(
                "AWS does not recognise this Access Key ID: check it for typos, and that the "
                "key is active (IAM → Users → Security credentials).",
                permanent=True, code="unknown_access_key")
        if kind == "bad_secret":
            return RegistryError(
                "AWS recognises the Access Key ID but the Secret Access Key is wrong: paste the "
                "secret that was shown when the key was created (or create a new key).",
                permanent=True, code="bad_secret")
        if kind == "access_denied":
            return RegistryError(
                f"The AWS user of these keys is not allowed to call {action}: attach a policy "
                "granting it (for example AmazonEC2ContainerRegistryReadOnly, or the least "
                "privilege policy shown on this page).",
                permanent=True, code="access_denied")
        if kind == "expired":
            return RegistryError("AWS says the credentials or the request expired: check the "
                                 "portal's clock and the keys.", permanent=True,
                                 code="unknown_access_key")
        if kind == "upstream" or status >= 500 or status == 429:
            return RegistryError(f"AWS is unavailable or throttling {action} ({code or status}); "
                                 "the portal will try again.", permanent=False, code="upstream")
        return RegistryError(f"AWS refused {action}: {code or status}.", permanent=True,
                             code="upstream")
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return RegistryError("No AWS credentials were found for the portal itself (instance "
                             "role or environment); enter an access key instead.",
                             permanent=True, code="unknown_access_key")
    if isinstance(exc, bex.ConnectTimeoutError | bex.ReadTimeoutError):
        return RegistryError(f"AWS did not answer {action} in time.", permanent=False,
                             code="timeout")
    if isinstance(exc, bex.EndpointConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "getaddrinfo" in text or "nodename" in text:
            return RegistryError(f"Cannot resolve the AWS endpoint for {action}: check the "
                                 "region and the portal's DNS.", permanent=False, code="dns")
        return RegistryError(f"Cannot connect to the AWS endpoint for {action}.",
                             permanent=False, code="refused")
    if isinstance(exc, bex.SSLError):
        return RegistryError(f"TLS error talking to AWS for {action}.", permanent=True, code="tls")
    if isinstance(exc, bex.BotoCoreError):
        return RegistryError(f"AWS call {action} failed: {type(exc).__name__}.", permanent=False,
                             code="upstream")
    raise exc


# --- clients --------------------------------------------------------------------------------


# One boto3 session per thread, without keys (each client gets its own): a new session loads
# botocore's endpoint and service models again, ~50 ms per call, while a client of a warm
# session takes ~2 ms. Sessions are not thread-safe, hence one per thread.
_sessions = threading.local()


def _session():
    import boto3

    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = boto3.session.Session()
    return session


def _client(service: str, *, access_key_id: str, secret_access_key: str, region: str):
    from botocore.config import Config

    access_key_id, secret_access_key = (access_key_id or "").strip(), (secret_access_key or "").strip()
    if not access_key_id and not secret_access_key:
        if not settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS:
            raise RegistryError(
                "Enter the AWS Access Key ID and Secret Access Key (this portal does not use its "
                "own AWS credentials for registries).", permanent=True, code="unknown_access_key")
        keys = {}  # the session's own chain: environment, instance role
    elif not access_key_id or not secret_access_key:
        raise RegistryError("Enter both the AWS Access Key ID and the Secret Access Key.",
                            permanent=True, code="unknown_access_key")
    else:
        keys = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return _session().client(service, region_name=region, config=config, **keys)


def caller_account(*, access_key_id: str, secret_access_key: str, region: str) -> str:
    """The AWS account the keys belong to (STS GetCallerIdentity)."""
    try:
        sts = _client("sts", access_key_id=access_key_id, secret_access_key=secret_access_key,
                      region=region)
        return sts.get_caller_identity()["Account"]
    except RegistryError:
        raise
    except Exception as e:
        raise _error(e, action="sts:GetCallerIdentity") from None


@dataclass(frozen=True)
class Token:
    username: str
    password: str
    expires_at: dt.datetime
    refresh_at: dt.datetime


def fetch_token(*, access_key_id: str, secret_access_key: str, region: str) -> Token:
    """Exchange the keys for a registry password (ECR GetAuthorizationToken), uncached."""
    try:
        ecr = _client("ecr", access_key_id=access_key_id, secret_access_key=secret_access_key,
                      region=region)
        data = ecr.get_authorization_token()["authorizationData"][0]
    except RegistryError:
        raise
    except Exception as e:
        raise _error(e, action="ecr:GetAuthorizationToken") from None
    try:
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    except Exception:
        raise RegistryError("ECR returned an authorization token the portal cannot read.",
                            permanent=False, code="upstream") from None
    now = _now()
    expires_at = data.get("expiresAt") or now + FALLBACK_LIFETIME
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=dt.UTC)
    refresh_at = expires_at - REFRESH_BEFORE
    if refresh_at <= now:
        refresh_at = now + FALLBACK_LIFETIME
    return Token(username or "AWS", password, expires_at, refresh_at)


# --- the cache ------------------------------------------------------------------------------

_cache: dict[str, Token] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key(cache_key: str, access_key_id: str, secret_access_key: str, region: str) -> str:
    material = "\0".join([str(cache_key), access_key_id or "", secret_access_key or "", region])
    return hashlib.sha256(material.encode()).hexdigest()


def get_registry_credentials(*, access_key_id: str, secret_access_key: str, region: str,
                             cache_key: str = "") -> tuple[str, str]:
    """("AWS", password) for the registry, from the cache or one shared refresh."""
    key = _key(cache_key, access_key_id, secret_access_key, region)
    token = _cache.get(key)
    if token and _now() < token.refresh_at:
        return token.username, token.password
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        token = _cache.get(key)  # another caller may have refreshed while this one waited
        if not (token and _now() < token.refresh_at):
            token = _shared_token(key, lambda: fetch_token(
                access_key_id=access_key_id, secret_access_key=secret_access_key, region=region))
            _cache[key] = token
        return token.username, token.password


# Redis: the encrypted token, and the lock of the one process fetching it (longer than a
# GetAuthorizationToken call with its timeouts and retries may take).
SHARED_LOCK_SECONDS = 30
SHARED_POLL_SECONDS = 0.05


def _shared_token(key: str, fetch) -> Token:
    """The token of ``key`` from Redis, or fetched by this process (holding the lock) or by
    another one (waited for); fetched here when Redis cannot help."""
    r = shared.client()
    if r is None:
        return _fetched(fetch)
    name = shared.PREFIX + "ecr-token:" + key
    owner = secrets.token_hex(8)
    deadline = time.monotonic() + SHARED_LOCK_SECONDS
    try:
        while True:
            token = _read_shared(r, name)
            if token is not None:
                return token
            if r.set(name + ":lock", owner, nx=True, ex=SHARED_LOCK_SECONDS):
                break
            if time.monotonic() > deadline:  # the holder died: its lock expires anyway
                return _fetched(fetch)
            time.sleep(SHARED_POLL_SECONDS)
    except redis.RedisError as e:
        shared.failed(e)
        return _fetched(fetch)
    try:
        try:
            token = _read_shared(r, name)  # written between this process's read and its lock
        except redis.RedisError as e:
            shared.failed(e)
            token = None
        if token is not None:
            return token
        token = _fetched(fetch)
        data = json.dumps({"username": token.username, "password": token.password,
                           "expires_at": token.expires_at.isoformat(),
                           "refresh_at": token.refresh_at.isoformat()})
        ttl = max(int((token.refresh_at - _now()).total_seconds()), 1)
        try:
            r.set(name, crypto.encrypt(data), ex=ttl)
        except redis.RedisError as e:
            shared.failed(e)
        return token
    finally:
        try:
            if r.get(name + ":lock") == owner.encode():
                r.delete(name + ":lock")
        except redis.RedisError as e:
            shared.failed(e)


def _read_shared(r, name: str) -> Token | None:
    stored = r.get(name)
    if not stored:
        return None
    try:
        data = json.loads(crypto.decrypt(stored.decode()))
    except (crypto.DecryptionError, ValueError):
        return None  # written with keys this process no longer has: fetch a new one
    token = Token(data["username"], data["password"],
                  dt.datetime.fromisoformat(data["expires_at"]),
                  dt.datetime.fromisoformat(data["refresh_at"]))
    return token if _now() < token.refresh_at else None


def _fetched(fetch) -> Token:
    token = fetch()
    log.info("ECR token refreshed (valid until %s)", token.expires_at.isoformat())
    return token


def forget_registry_credentials(*, access_key_id: str, secret_access_key: str, region: str,
                                cache_key: str = "") -> None:
    """Drop a cached token (the registry answered 401 with it), here and in Redis."""
    key = _key(cache_key, access_key_id, secret_access_key, region)
    _cache.pop(key, None)
    r = shared.client()
    if r is not None:
        try:
            r.delete(shared.PREFIX + "ecr-token:" + key)
        except redis.RedisError as e:
            shared.failed(e)


def clear_token_cache() -> None:
    _cache.clear()


def create_repository(*, access_key_id: str, secret_access_key: str, region: str,
                      repository: str) -> bool:
    """Create an ECR repository; False when it exists already (for mirroring)."""
    try:
        ecr = _client("ecr", access_key_id=access_key_id, secret_access_key=secret_access_key,
                      region=region)
        ecr.create_repository(repositoryName=repository)
        return True
    except RegistryError:
        raise
    except Exception as e:
        from botocore.exceptions import ClientError

        if isinstance(e, ClientError) and \
                e.response.get("Error", {}).get("Code") == "RepositoryAlreadyExistsException":
            return False
        raise _error(e, action="ecr:CreateRepository") from None
