from django.urls import include, path, re_path

from . import customer_views, license_fields, views
from .image_check import views as image_check_views
from .proxy import views as proxy_views

urlpatterns = [
    path("apps/", views.app_list, name="releases-app-list"),
    path("apps/new/", views.app_create, name="releases-app-create"),
    path("apps/<slug:slug>/", views.app_detail, name="releases-app-detail"),
    path("apps/<slug:slug>/edit/", views.app_edit, name="releases-app-edit"),
    path("apps/<slug:slug>/archive/", views.app_archive, name="releases-app-archive"),
    path("apps/<slug:slug>/channels/new/", views.channel_create, name="releases-channel-create"),
    path("apps/<slug:slug>/channels/<slug:channel_slug>/", views.channel_history, name="releases-channel-history"),
    path("apps/<slug:slug>/channels/<slug:channel_slug>/archive/", views.channel_archive,
         name="releases-channel-archive"),
    path("apps/<slug:slug>/promotions/<int:pk>/demote/", views.promotion_demote, name="releases-demote"),
    path("apps/<slug:slug>/releases/", views.release_history, name="releases-history"),
    path("apps/<slug:slug>/releases/new/", views.release_new, name="releases-release-new"),
    path("apps/<slug:slug>/releases/<int:sequence>/", views.release_detail, name="releases-release-detail"),
    path("apps/<slug:slug>/releases/<int:sequence>/edit/", views.release_edit, name="releases-release-edit"),
    path("apps/<slug:slug>/releases/<int:sequence>/validate/", views.release_validate,
         name="releases-release-validate"),
    path("apps/<slug:slug>/releases/<int:sequence>/files/delete/", views.file_delete,
         name="releases-file-delete"),
    path("apps/<slug:slug>/releases/<int:sequence>/diff/", views.release_diff, name="releases-release-diff"),
    path("apps/<slug:slug>/releases/<int:sequence>/download/", views.release_download,
         name="releases-release-download"),
    path("apps/<slug:slug>/releases/<int:sequence>/promote/", views.release_promote, name="releases-promote"),
    # License fields of an app (license_fields.py)
    path("apps/<slug:slug>/license-fields/", license_fields.license_field_list, name="releases-license-fields"),
    path("apps/<slug:slug>/license-fields/<int:pk>/edit/", license_fields.license_field_edit,
         name="releases-license-field-edit"),
    path("apps/<slug:slug>/license-fields/<int:pk>/delete/", license_fields.license_field_delete,
         name="releases-license-field-delete"),
    path("apps/<slug:slug>/license-fields/<int:pk>/move/", license_fields.license_field_move,
         name="releases-license-field-move"),
    # A finished mirror in the newest release (use_mirror/)
    path("", include("releases.use_mirror.urls")),
    # Customers and licenses (customer_views.py)
    path("customers/", customer_views.customer_list, name="releases-customer-list"),
    path("customers/new/", customer_views.customer_create, name="releases-customer-create"),
    path("customers/<int:pk>/", customer_views.customer_detail, name="releases-customer-detail"),
    path("customers/<int:pk>/edit/", customer_views.customer_edit, name="releases-customer-edit"),
    path("customers/<int:pk>/archive/", customer_views.customer_archive, name="releases-customer-archive"),
    path("customers/<int:pk>/unarchive/", customer_views.customer_unarchive, name="releases-customer-unarchive"),
    path("customers/<int:pk>/regenerate/", customer_views.customer_regenerate, name="releases-customer-regenerate"),
    path("customers/<int:pk>/license/", customer_views.customer_license, name="releases-customer-license"),
    # Delivery to customers (customer_portal/): the update check API and the customer page
    path("", include("releases.customer_portal.urls")),
    # Delivery, vendor side (image_check/views.py): the image check, "Proxy public images too"
    path("apps/<slug:slug>/releases/<int:sequence>/images/", image_check_views.release_images,
         name="releases-release-images"),
    path("apps/<slug:slug>/proxy-public/", image_check_views.app_proxy_public, name="releases-app-proxy-public"),
    # The proxy registry (proxy/views.py): OCI distribution pull API, async
    path("v2/", proxy_views.v2_root, name="releases-proxy-root"),
    re_path(r"^v2/proxy/(?P<app_slug>[a-z0-9-]+)/(?P<rest>.+)$", proxy_views.proxy, name="releases-proxy"),
    re_path(r"^v2/(?P<rest>.*)$", proxy_views.v2_other),
]
