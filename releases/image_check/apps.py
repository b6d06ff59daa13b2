from django.apps import AppConfig


class ImageCheckConfig(AppConfig):
    """The private-image check: its own app label, its model keeps the table it had in releases."""

    name = "releases.image_check"
    label = "releases_image_check"
    verbose_name = "Private-image check"

    def ready(self):
        from . import signals  # noqa: F401  (its receivers connect on import)
