"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import gc
import os

from celery import Celery, signals
from celery.apps.beat import Beat
from celery.utils.serialization import strtobool
from celery.worker import control
from kombu.utils.objects import cached_property

from collector.broker import StallGuard
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


# A worker child's young generation is collected after this many new container objects
# instead of Python's 700. A task makes thousands (a page's rows, the COPY's columns), freed by
# reference counting long before a collection would find them: the collections every 700
# found almost nothing. Cyclic garbage waits longer, bounded by the child's recycling
# (CELERY_WORKER_MAX_TASKS_PER_CHILD, CELERY_WORKER_MAX_MEMORY_PER_CHILD).
CHILD_GC_THRESHOLD = 10_000


@signals.worker_process_init.connect
def settle_child_heap(**kwargs) -> None:
    """Leave what a prefork child inherited (Django, Celery, the project: about 130,000
    objects that live as long as the process) out of every garbage collection, and collect
    the young generation less often.

    Measured over 600 J10 schools (bench_pipeline.py, a gc.callbacks hook in each child):
    each child ran about 480 young collections, 0.12-0.14 s of its 5.2-5.4 CPU-s (2.5%);
    with this, none ran in the children at all. A full collection, which walked everything
    inherited (40-55 ms in the worker's main process), now walks only what the child made.
    ``gc.freeze`` moves the inherited objects aside without visiting them (nor dirtying the
    pages the child shares with the worker's main process); what a task leaves behind in
    cycles is still collected.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(CHILD_GC_THRESHOLD, middle, old)


app = DjangoCelery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker's consumer reconnects by itself when it stops taking messages (WORKER_STALL_SECONDS).
app.steps["consumer"].add(StallGuard)


@app.task(name="proj.ping", bind=True)
def ping(self, payload=None):
    """Answer with where and what ran: the smallest real task, for smoke tests."""
    return {"pong": payload, "task_id": self.request.id, "hostname": self.request.hostname}
