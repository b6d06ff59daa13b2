"""Celery tasks of the registries: thin, given ids, each calling one service."""

from celery import shared_task

from . import services
from .models import ExternalRegistry, Status

MAX_RETRIES = 3


@shared_task(
    bind=True,
    autoretry_for=(services.TransientValidationError,),
    max_retries=MAX_RETRIES,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=False,
    acks_late=True,
)
def validate_registry(self, registry_id: int, image: str | None = None, periodic: bool = False):
    """Validate one registry; a transient failure is retried, the last one recorded."""
    services.registry_validate(
        registry_id=registry_id, image=image, periodic=periodic,
        raise_transient=self.request.retries < MAX_RETRIES,
    )


@shared_task
def recheck_registries():
    """Beat: re-check every Connected or Unhealthy registry (Connected <-> Unhealthy)."""
    ids = ExternalRegistry.objects.filter(
        status__in=(Status.CONNECTED, Status.UNHEALTHY)
    ).values_list("pk", flat=True)
    for pk in ids:
        validate_registry.delay(pk, periodic=True)


@shared_task
def sweep_pending():
    """Beat: queue the validations that the broker refused (or that a dead worker lost)."""
    services.registries_sweep_pending()

