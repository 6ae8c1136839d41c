"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")


class DjangoCelery(Celery):
    """Sets Django up before the first use of the result backend.

    The worker and beat do that through Celery's Django fix-up, but ``celery call`` and other
    client commands reach the django-db backend (django-celery-results models) without it.
    """

    def _get_backend(self):
        from django.apps import apps

        if not apps.ready:
            import django

            django.setup()
        return super()._get_backend()


app = DjangoCelery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="proj.ping", bind=True)
def ping(self, payload=None):
    """Answer with where and what ran: the smallest real task, for smoke tests."""
    return {"pong": payload, "task_id": self.request.id, "hostname": self.request.hostname}
