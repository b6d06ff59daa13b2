"""Mirroring an image into a linked registry (included from registries/urls.py)."""
from django.urls import path

from . import views as mirror_views

urlpatterns = [
    path("registries/<int:pk>/mirror/", mirror_views.mirror_new, name="registries-mirror"),
    path("registries/mirror/new/", mirror_views.mirror_new_any, name="registries-mirror-new"),
    path("registries/mirrors/", mirror_views.mirror_list, name="registries-mirror-list"),
    path("registries/mirrors/<int:pk>/", mirror_views.mirror_detail, name="registries-mirror-detail"),
    path("registries/mirrors/<int:pk>/cancel/", mirror_views.mirror_cancel, name="registries-mirror-cancel"),
]
