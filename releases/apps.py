from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
