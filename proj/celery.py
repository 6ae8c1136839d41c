"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import os

from celery import Celery
from celery.apps.beat import Beat
from celery.utils.serialization import strtobool
from celery.worker import control
from kombu.utils.objects import cached_property

from proj.startup import in_celery_command, prepare, require_database, start_celery_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

if in_celery_command():
    # `celery -A proj ...`: a bad setting or an unwritable VAR_DIR ends here in one line,
    # before the worker, beat or client command starts.
    start_celery_command()


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

    def _load_config(self):
        # Any process that sends or takes a task gets the filesystem broker's folders.
        prepare()
        return super()._load_config()

    @cached_property
    def Beat(self):
        return self.subclass_with_self(DatabaseBeat)

    def bugreport(self):
        """``celery report``, with credentials masked (see ``conf`` below)."""
        from proj.redact import redact

        return redact(super().bugreport())


class DatabaseBeat(Beat):
    """``celery beat``, which keeps its schedule in the database: one that does not answer stops
    beat at start-up in one line, where Celery would log every traceback of the failure."""

    def init_loader(self):
        super().init_loader()
        require_database()


_celery_conf = control.Panel.data["conf"]


@control.inspect_command(
    alias="dump_conf",
    signature="[include_defaults=False]",
    args=[("with_defaults", strtobool)],
)
def conf(state, with_defaults=False, **kwargs):
    """``celery inspect conf`` (and Flower's worker page): Celery's listing, which hides
    settings by name only, with every URL password and the NEIS key masked by value.

    With the Django settings as its configuration the listing held CELERY_BROKER_URL and
    NEIS_LIMITER_URL whole. Registered under Celery's own name, it replaces Celery's command
    in every worker of this app.
    """
    from proj.redact import redact_config

    return redact_config(_celery_conf(state, with_defaults=with_defaults, **kwargs))


app = DjangoCelery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="proj.ping", bind=True)
def ping(self, payload=None):
    """Answer with where and what ran: the smallest real task, for smoke tests."""
    return {"pong": payload, "task_id": self.request.id, "hostname": self.request.hostname}
