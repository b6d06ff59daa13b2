"""External registries linked by a team."""
from django.urls import path

from . import mirror_views, views

urlpatterns = [
    path("registries/", views.registry_list, name="registries-list"),
    path("registries/add/", views.registry_add, name="registries-add"),
    path("registries/<int:pk>/", views.registry_detail, name="registries-detail"),
    path("registries/<int:pk>/edit/", views.registry_edit, name="registries-edit"),
    path("registries/<int:pk>/test/", views.registry_test, name="registries-test"),
    path("registries/<int:pk>/delete/", views.registry_delete, name="registries-delete"),
    # Mirroring (registries/mirror_views.py)
    path("registries/<int:pk>/mirror/", mirror_views.mirror_new, name="registries-mirror"),
    path("registries/mirror/new/", mirror_views.mirror_new_any, name="registries-mirror-new"),
    path("registries/mirrors/", mirror_views.mirror_list, name="registries-mirror-list"),
    path("registries/mirrors/<int:pk>/", mirror_views.mirror_detail, name="registries-mirror-detail"),
    path("registries/mirrors/<int:pk>/cancel/", mirror_views.mirror_cancel, name="registries-mirror-cancel"),
]
