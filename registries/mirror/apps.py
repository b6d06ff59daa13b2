from django.apps import AppConfig


class MirrorConfig(AppConfig):
    name = "registries.mirror"
    # Its own label, so its migrations are its own; the table keeps its registries_ name.
    label = "registries_mirror"
    verbose_name = "Mirroring"
