"""Registry work that talks to the network or crosses rows: validation and queueing it.

``registry_validate`` is what the Celery task runs: it logs in the way a cluster would (for
ECR: keys -> GetAuthorizationToken -> registry password), pings ``/v2/``, reads the test image's
manifest, and records on the row a status and a message a user can act on. Nothing here logs
or stores a secret: RegistryError messages never contain one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.audit import audit_log
from portal.publish import publish

from .credentials import registry_client
from .errors import RegistryError
from .models import ExternalRegistry, Provider
from .reference import InvalidReference, parse_repository

logger = logging.getLogger(__name__)


class TransientValidationError(Exception):
    """A validation failed for a reason a retry may cure (timeout, 5xx, refused)."""

    def __init__(self, error: RegistryError):
        super().__init__(error.message)
        self.error = error


@dataclass
class Outcome:
    message: str
    warning: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def registry_check(registry: ExternalRegistry, *, image: str = "") -> Outcome:
    """Log in, ping and read ``image``'s manifest; RegistryError on the first failure."""
    timings: dict[str, float] = {}
    with registry_client(registry, check_account=True, timings=timings) as client:
        warning = client.account_warning
        started = time.perf_counter()
        client.ping()
        timings["ping"] = time.perf_counter() - started
        if not image:
            return Outcome("The credentials work.", warning, timings)
        try:
            repository, ref = parse_repository(image)
        except InvalidReference as e:
            raise RegistryError(f"Test image: {e}", permanent=True, code="bad_image") from None
        started = time.perf_counter()
        client.head_manifest(repository, ref)
        timings["manifest"] = time.perf_counter() - started
    return Outcome(f"The credentials work and can read {image}.", warning, timings)


def unexpected_error_message(error: BaseException) -> str:
    """What a user reads when a check failed for a reason nobody foresaw (never a secret)."""
    return (f"Could not check: an unexpected error ({type(error).__name__}) stopped the check. "
            "Try again; if it persists, the portal's administrator finds the details in the "
            "worker's log.")


def registry_validate(*, registry_id: int, image: str | None = None, periodic: bool = False,
                      raise_transient: bool = False) -> ExternalRegistry | None:
    """Check a registry and record the result on its row.

    ``image`` defaults to the registry's test image. With ``raise_transient`` a transient
    failure raises TransientValidationError instead of being recorded (the task retries).
    Returns None when the row is gone.
    """
    registry = ExternalRegistry.objects.filter(pk=registry_id).first()
    if registry is None:
        return None
    revision = registry.revision
    image = registry.test_image if image is None else image
    started = time.perf_counter()
    try:
        outcome = registry_check(registry, image=image)
    except RegistryError as e:
        if raise_transient and not e.permanent:
            logger.info("registry %s: transient failure %s, retrying", registry.pk, e.code)
            raise TransientValidationError(e) from None
        logger.info("registry %s: validation failed (%s)", registry.pk, e.code or "error")
        registry.mark_result(ok=False, message=e.message, revision=revision, periodic=periodic)
        return registry
    except Exception as e:
        # A bug or a library's surprise must still end the validation, or the row would stay
        # Validating and be queued again by every sweep. The traceback goes to the worker's
        # log only; the page gets the error's type (its text could quote anything).
        logger.exception("registry %s: validation crashed", registry.pk)
        registry.mark_result(ok=False, message=unexpected_error_message(e), revision=revision,
                             periodic=periodic)
        return registry
    logger.info(
        "registry %s: connected in %.3f s (%s)", registry.pk, time.perf_counter() - started,
        ", ".join(f"{k} {v:.3f}" for k, v in outcome.timings.items()),
    )
    registry.mark_result(ok=True, message=outcome.message, warning=outcome.warning,
                         revision=revision, periodic=periodic)
    return registry


def _send_validation(registry: ExternalRegistry, image: str | None) -> bool:
    """Publish the task now (failing fast, see portal/publish.py); on a broker failure mark the
    row Pending. True when sent."""
    kwargs = {"image": image} if image is not None else {}
    # By name: registries/tasks.py imports this module.
    if publish("registries.tasks.validate_registry", registry.pk, **kwargs):
        return True
    logger.warning("registry %s: broker unreachable, validation pending", registry.pk)
    registry.mark_pending()
    return False


def registry_queue_validation(*, registry: ExternalRegistry, image: str | None = None) -> None:
    """Mark the row Validating and queue its validation once the transaction commits.

    When the broker is down the row becomes Pending (no error for the user); ``sweep_pending``
    queues it when the broker is back.
    """
    registry.mark_validating()
    transaction.on_commit(lambda: _send_validation(registry, image))


ENDPOINT_TAKEN = "A registry with this endpoint or name exists already."


def registry_audit_detail(registry: ExternalRegistry, **extra) -> dict:
    """What the audit log keeps about a registry: never the secret."""
    detail = {"provider": registry.provider, "endpoint": registry.endpoint}
    if registry.name:
        detail["name"] = registry.name
    if registry.provider == Provider.ECR and registry.username:
        detail["access_key_id"] = registry.username
    elif registry.username:
        detail["username"] = registry.username
    if registry.direct_downloads:
        detail["direct_downloads"] = True
    detail.update(extra)
    return detail


def registry_create(*, registry: ExternalRegistry, apps, skip_validation: bool, user,
                    request=None) -> ExternalRegistry:
    """Save the new ``registry`` (filled by ``RegistryForm.apply``) with the ``apps`` that may use
    it, and queue its validation unless skipped. A row that took the endpoint or name meanwhile
    is a ``ValidationError`` on "endpoint"."""
    try:
        with transaction.atomic():
            registry.save()
            registry.apps.set(apps)
            audit_log(request=request, team=registry.team, action="create", obj=registry, actor=user,
                      detail=registry_audit_detail(
                          registry, validation="skipped" if skip_validation else "queued"))
            if not skip_validation:
                registry_queue_validation(registry=registry)
    except IntegrityError:
        raise ValidationError({"endpoint": ENDPOINT_TAKEN}) from None
    return registry


def registry_test(*, registry: ExternalRegistry, image: str, user, request=None) -> None:
    """Check ``registry`` again, reading ``image`` ("" checks the login only), on the worker."""
    with transaction.atomic():
        audit_log(request=request, team=registry.team, action="test", obj=registry, actor=user,
                  detail=registry_audit_detail(registry, image=image))
        registry_queue_validation(registry=registry, image=image)


def registry_delete(*, registry: ExternalRegistry, user, request=None) -> None:
    with transaction.atomic():
        audit_log(request=request, team=registry.team, action="delete", obj=registry, actor=user,
                  detail=registry_audit_detail(registry))
        registry.delete()


def registries_sweep_pending() -> int:
    """Queue every Pending (or lost Validating) registry; the number queued."""
    queued = 0
    for pk in ExternalRegistry.needing_queue().values_list("pk", flat=True):
        if not ExternalRegistry.claim_for_queue(pk):
            continue
        registry = ExternalRegistry.objects.get(pk=pk)
        queued += _send_validation(registry, None)
    return queued
