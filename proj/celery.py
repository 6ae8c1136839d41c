"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="proj.ping", bind=True)
def ping(self, payload=None):
    """Answer with where and what ran: the smallest real task, for smoke tests."""
    return {"pong": payload, "task_id": self.request.id, "hostname": self.request.hostname}
