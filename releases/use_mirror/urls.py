from django.urls import path

from . import views

urlpatterns = [
    path("apps/<slug:slug>/use-mirror/<int:job_id>/", views.release_use_mirror,
         name="releases-release-use-mirror"),
    path("apps/use-mirror/<int:job_id>/", views.use_mirror_pick, name="releases-use-mirror-pick"),
]
