from django.apps import AppConfig


class ProxyConfig(AppConfig):
    """The proxy registry: its own app label, its model keeps the table it had in releases."""

    name = "releases.proxy"
    label = "releases_proxy"
    verbose_name = "Proxy registry"

    def ready(self):
        from portal.lifespan import server_stopping

        from . import decisions, views

        decisions.connect_signals()
        server_stopping.connect(views.flush_pull_log_on_stop, dispatch_uid="proxy-pull-log-flush")
