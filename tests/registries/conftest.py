"""The registry tests' loopback servers are registered as plugins in the top conftest.py."""
