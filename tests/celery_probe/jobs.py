from celery import shared_task


@shared_task(name="tests.celery_probe.in_other_module")
def in_other_module():
    return "found only if something imports this module"
