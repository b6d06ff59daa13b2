from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    name = "registries"
    verbose_name = "Registries"

    def ready(self):
        from portal.observability.metrics import register_scrape_collector

        from .metrics import registries_by_status

        register_scrape_collector(registries_by_status)
