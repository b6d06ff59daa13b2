from django.urls import path

from . import customer_views, views

urlpatterns = [
    path("apps/", views.app_list, name="releases-app-list"),
    # Customers and licenses (customer_views.py)
    path("customers/", customer_views.customer_list, name="releases-customer-list"),
    path("customers/new/", customer_views.customer_create, name="releases-customer-create"),
    path("customers/<int:pk>/", customer_views.customer_detail, name="releases-customer-detail"),
    path("customers/<int:pk>/edit/", customer_views.customer_edit, name="releases-customer-edit"),
    path("customers/<int:pk>/archive/", customer_views.customer_archive, name="releases-customer-archive"),
    path("customers/<int:pk>/unarchive/", customer_views.customer_unarchive, name="releases-customer-unarchive"),
    path("customers/<int:pk>/regenerate/", customer_views.customer_regenerate, name="releases-customer-regenerate"),
    path("customers/<int:pk>/license/", customer_views.customer_license, name="releases-customer-license"),
]
