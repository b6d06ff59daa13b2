"""Register the loopback server fixtures once for the whole suite.

A session fixture imported into several test modules would be a separate fixture in each, and
start its server again (two moto servers fighting over AWS_ENDPOINT_URL_*): so they are plugins.
"""

pytest_plugins = [
    "tests.support.servers",
    "tests.support.registry",
]


def pytest_collection_modifyitems(config, items):
    """Browser tests run last, in their collected order. Playwright's sync API leaves an event
    loop marked running in the main thread for the rest of the session, and Django's test client
    runs async views (the vendor API's waits) through async_to_sync, which refuses such a thread."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
