from django.apps import AppConfig


class ProxyConfig(AppConfig):
    """The proxy registry: its own app label, its model keeps the table it had in releases."""

    name = "releases.proxy"
    label = "releases_proxy"
    verbose_name = "Proxy registry"

    def ready(self):
        from portal.lifespan import server_stopping
        from portal.observability.metrics import register_scrape_collector

        from . import decisions, views
        from .metrics import blob_cache_usage

        decisions.connect_signals()
        register_scrape_collector(blob_cache_usage)
        server_stopping.connect(views.flush_pull_log_on_stop, dispatch_uid="proxy-pull-log-flush")
