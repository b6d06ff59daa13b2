from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from . import checks, signals  # noqa: F401
        from .hosts import record_hosts_after_migrate
        from .keys import record_keys_after_migrate

        # After every migrate (make run's and the deployment's): the keys' first use is recorded,
        # and a changed PORTAL_URL or proxy host reissues the licenses before anything serves
        # under the new name.
        post_migrate.connect(record_keys_after_migrate, sender=self, dispatch_uid="portal-record-keys")
        post_migrate.connect(record_hosts_after_migrate, sender=self, dispatch_uid="portal-record-hosts")
