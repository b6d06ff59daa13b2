"""vendor-portal: the vendor portal from a pipeline (releases, channels, customers, registries)."""

__version__ = "0.1.0"
