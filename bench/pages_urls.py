"""The product's URLs plus the floor page bench/pages.py measures against (never in the product's URLs)."""

from django.shortcuts import render
from django.urls import include, path

from portal.roles import team_required


@team_required()
def floor(request):
    """A logged-in team page that renders ``base.html`` and runs no query of its own."""
    return render(request, "base.html")


urlpatterns = [
    path("bench/floor/", floor, name="bench-floor"),
    path("", include("portal.urls")),
]
