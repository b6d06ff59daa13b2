"""Register the loopback server fixtures once for the whole suite.

A session fixture imported into several test modules would be a separate fixture in each, and
start its server again (two moto servers fighting over AWS_ENDPOINT_URL_*): so they are plugins.
"""

pytest_plugins = [
    "tests.support.servers",
    "tests.support.registry",
]
