from django.urls import path

from . import views

urlpatterns = [
    path("registries/", views.registry_list, name="registries-list"),
]
