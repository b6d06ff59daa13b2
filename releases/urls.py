from django.urls import path

from . import views

urlpatterns = [
    path("apps/", views.app_list, name="releases-app-list"),
    path("customers/", views.customer_list, name="releases-customer-list"),
]
