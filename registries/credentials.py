"""The one way to a client for a linked registry: its stored credentials, decrypted, and for
ECR the token exchange (keys -> GetAuthorizationToken -> registry password), in one call.

``registry_client`` opens a client the caller closes (validation, mirroring);
``registry_pull_client`` hands out a shared one that keeps its challenge and tokens (the proxy
registry and the private-image check). An ECR client renews its token itself: when the registry
answers 401 to a cached token (dropped before its expiry), the token is forgotten, a new one
fetched, and the request tried once more. Nothing here logs or stores a secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from . import crypto
from .errors import RegistryError
from .models import ExternalRegistry
from .oci.client import RegistryClient
from .reference import canonical_registry

logger = logging.getLogger(__name__)


def _login(registry: ExternalRegistry, timings: dict[str, float], *,
           check_account: bool) -> tuple[str, str, str, Callable | None]:
    """(username, password, warning, renewal) to speak to the registry with.

    ``check_account=False`` skips the STS advice (the proxy and the image check log in often).
    """
    try:
        secret = registry.secret
    except crypto.DecryptionError:
        raise RegistryError(
            "The stored password cannot be decrypted with the portal's encryption keys: "
            "edit the registry and type the password again.",
            permanent=True, code="decrypt",
        ) from None
    if not registry.is_ecr:
        return registry.username, secret, "", None
    if not (registry.username or secret) and not settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS:
        raise RegistryError(
            "Enter the AWS Access Key ID as Username and the AWS Secret Access Key as Password.",
            permanent=True, code="unknown_access_key",
        )
    from . import ecr  # boto3 is slow to import; only ECR registries need it

    keys = {"access_key_id": registry.username, "secret_access_key": secret,
            "region": registry.ecr_region}
    cache_key = f"registry-{registry.pk}-{registry.revision}"
    started = time.perf_counter()
    # The account check needs nothing from the token exchange: ask AWS both at once.
    account_check = None
    if check_account:
        account_check = _account_checks().submit(_account_warning, registry, ecr.caller_account,
                                                 keys, timings)
    username, password = ecr.get_registry_credentials(**keys, cache_key=cache_key)
    timings["token"] = time.perf_counter() - started

    def renew(refused: str) -> tuple[str, str]:
        """New credentials after the registry refused ``refused`` (a cached token)."""
        username, password = ecr.get_registry_credentials(**keys, cache_key=cache_key)
        if password == refused:  # still the cached token the registry dropped
            logger.info("registry %s: the registry refused the cached ECR token, renewing",
                        registry.pk)
            ecr.forget_registry_credentials(**keys, cache_key=cache_key)
            username, password = ecr.get_registry_credentials(**keys, cache_key=cache_key)
        return username, password

    if account_check is None:
        return username, password, "", renew
    warning = account_check.result()
    timings["login"] = time.perf_counter() - started
    return username, password, warning, renew


_ACCOUNT_CHECKS: tuple[int, ThreadPoolExecutor] | None = None


def _account_checks() -> ThreadPoolExecutor:
    """The threads that run account checks, made in this process (a forked worker child must
    not inherit a parent's pool whose threads did not survive the fork). Kept, not made per
    call, because each thread keeps a warm boto3 session (``ecr``)."""
    global _ACCOUNT_CHECKS
    if _ACCOUNT_CHECKS is None or _ACCOUNT_CHECKS[0] != os.getpid():
        _ACCOUNT_CHECKS = (os.getpid(), ThreadPoolExecutor(max_workers=4,
                                                           thread_name_prefix="aws-account-check"))
    return _ACCOUNT_CHECKS[1]


def _account_warning(registry: ExternalRegistry, caller_account: Callable[..., str], keys: dict,
                     timings: dict[str, float]) -> str:
    """The warning when the keys belong to another account than the endpoint's ("" if not)."""
    started = time.perf_counter()
    try:
        account = caller_account(**keys)
    except RegistryError as e:
        # The token exchange decides; the account check is advice only.
        logger.info("registry %s: caller account unknown (%s)", registry.pk, e.code)
        return ""
    finally:
        timings["sts"] = time.perf_counter() - started
    if account and registry.ecr_account and account != registry.ecr_account:
        return (
            f"These keys belong to AWS account {account}, not to the endpoint's account "
            f"{registry.ecr_account}: pulls work only if account {registry.ecr_account} "
            "shares its repositories with it."
        )
    return ""


def registry_client(registry: ExternalRegistry, *, timeout: float = 10.0,
                    check_account: bool = False,
                    timings: dict[str, float] | None = None) -> RegistryClient:
    """A client for ``registry`` with its credentials; the caller closes it. Blocking (ECR
    token exchange). With ``check_account``, ``client.account_warning`` says when ECR keys
    belong to another AWS account than the endpoint's; ``timings`` collects the login's."""
    username, password, warning, renew = _login(registry, {} if timings is None else timings,
                                                check_account=check_account)
    client = RegistryClient(registry.endpoint, username=username, password=password,
                            insecure=registry.insecure, timeout=timeout,
                            renew_credentials=renew)
    client.account_warning = warning
    return client


# Pull clients shared by the proxy registry and the private-image check: a client keeps its
# challenge and tokens, so a blob pull costs no extra round trip. Keyed by what the client
# logs in with (a hash of the password: an ECR token refresh or a changed secret makes a new one).
_PULL_CLIENTS: OrderedDict[tuple, RegistryClient] = OrderedDict()
_PULL_CLIENTS_LOCK = threading.Lock()
MAX_PULL_CLIENTS = 64


def registry_pull_client(*, registry: ExternalRegistry | None, endpoint: str = "",
                         insecure: bool = False) -> RegistryClient:
    """A shared client that pulls from ``registry`` with its credentials, or anonymously from
    ``endpoint`` when ``registry`` is None. Blocking (ECR token exchange); do not close it."""
    renew = None
    if registry is None:
        username = password = ""
        key: tuple = ("anonymous", canonical_registry(endpoint), insecure)
    else:
        username, password, _, renew = _login(registry, {}, check_account=False)
        endpoint, insecure = registry.endpoint, registry.insecure
        digest = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
        key = (registry.pk, endpoint, insecure, username, digest)
    # The client's address comes from the host map: a changed map makes a new client.
    key += (settings.PORTAL_REGISTRY_HOST_MAP,)
    with _PULL_CLIENTS_LOCK:
        client = _PULL_CLIENTS.get(key)
        if client is not None:
            _PULL_CLIENTS.move_to_end(key)
            return client
        client = RegistryClient(endpoint, username=username, password=password,
                                insecure=insecure, timeout=30, renew_credentials=renew)
        _PULL_CLIENTS[key] = client
        while len(_PULL_CLIENTS) > MAX_PULL_CLIENTS:
            # Not closed: a request may still use it; its connections go with it.
            _PULL_CLIENTS.popitem(last=False)
        return client
