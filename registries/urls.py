"""External registries linked by a team."""
from django.urls import include, path

from . import views

urlpatterns = [
    path("registries/", views.registry_list, name="registries-list"),
    path("registries/add/", views.registry_add, name="registries-add"),
    path("registries/<int:pk>/", views.registry_detail, name="registries-detail"),
    path("registries/<int:pk>/edit/", views.registry_edit, name="registries-edit"),
    path("registries/<int:pk>/test/", views.registry_test, name="registries-test"),
    path("registries/<int:pk>/delete/", views.registry_delete, name="registries-delete"),
    path("", include("registries.mirror.urls")),
]
