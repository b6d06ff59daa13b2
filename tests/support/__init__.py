"""The real servers and builders tests start: the portal's own process stack (processes.py)."""
