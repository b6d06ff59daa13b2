"""Releases: create, list, get, update a draft, promote, demote (Replicated ``/v3/app/{app}/release...``)."""

from ninja import Router

router = Router(tags=["releases"])
