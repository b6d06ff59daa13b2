from django.urls import path

from . import api, views

urlpatterns = [
    # The update check API (api.py), what the admin console's "Check for Updates" calls
    path("release/<slug:app_slug>/pending", api.release_pending, name="releases-update-pending"),
    path("release/<slug:app_slug>", api.release_download, name="releases-update-download"),
    path("license/<slug:app_slug>", api.license_sync, name="releases-license-sync"),
    # The customer page (views.py): sign in with the license, updates, files, downloads
    path("customer/", views.customer_home, name="releases-portal-home"),
    path("customer/sign-out/", views.customer_sign_out, name="releases-portal-sign-out"),
    path("customer/license/", views.customer_license, name="releases-portal-license"),
    path("customer/updates/", views.customer_updates, name="releases-portal-updates"),
    path("customer/releases/<int:channel_sequence>/", views.customer_files, name="releases-portal-files"),
    path("customer/releases/<int:channel_sequence>/download/", views.customer_download,
         name="releases-portal-download"),
]
