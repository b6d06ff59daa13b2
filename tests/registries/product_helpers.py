"""Helpers of the registries product tests (models, pages, tasks): rows, Celery config."""

from contextlib import contextmanager

from registries.models import ExternalRegistry, Provider, Status
from tests.support.registry import ECR_HOST


def make_registry(team, *, provider=Provider.OTHER, endpoint="registry.example.com", username="user",
                  secret="registry-secret-1", status=Status.NOT_VALIDATED, **fields) -> ExternalRegistry:
    registry = ExternalRegistry(team=team, provider=provider, endpoint=endpoint, username=username,
                                status=status, **fields)
    registry.secret = secret
    if provider == Provider.ECR and not registry.ecr_account:
        account, _, rest = endpoint.partition(".dkr.ecr.")
        registry.ecr_account, registry.ecr_region = account, rest.split(".")[0]
    registry.save()
    return registry


def make_ecr_registry(team, keys, *, endpoint=ECR_HOST, **fields) -> ExternalRegistry:
    return make_registry(team, provider=Provider.ECR, endpoint=endpoint, username=keys.access_key_id,
                         secret=keys.secret_access_key, **fields)


@contextmanager
def celery_conf(**conf):
    """Reconfigure the Celery app for a test (its conf is read from settings once, at first use)."""
    from portal.celery import app

    saved = {key: app.conf[key] for key in conf}
    app.conf.update(conf)
    _drop_pools(app)
    try:
        yield app
    finally:
        app.conf.update(saved)
        _drop_pools(app)


def _drop_pools(app):
    # Not closed: kombu keeps one pool per broker URL and would hand the closed one back.
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
