"""Fixtures for the registry tests: loopback servers from tests/registries/servers.py."""

from tests.registries.servers import (  # noqa: F401 (fixtures)
    aws_users,
    bearer_registry,
    distribution_factory,
    distribution_registry,
    ecr_env,
    ecr_registry,
    moto_server,
    redirecting_registry,
)
