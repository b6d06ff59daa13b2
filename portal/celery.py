import os

from celery import Celery

from portal.observability import tasks as task_observability

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
task_observability.connect()  # a metric sample and a log line per task run
