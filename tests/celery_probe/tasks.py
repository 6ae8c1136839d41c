from celery import shared_task


@shared_task(name="tests.celery_probe.in_tasks_module")
def in_tasks_module():
    return "found"
