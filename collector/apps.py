from django.apps import AppConfig


class CollectorConfig(AppConfig):
    name = "collector"
    verbose_name = "NEIS timetable collector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from collector import checks, workers  # noqa: F401  (checks registers the system checks)
        from collector.clock import Clock, install

        if settings.NEIS_CLOCK:  # validated by settings
            install(Clock.parse(settings.NEIS_CLOCK))
        # Workers write a heartbeat the console reads; in any other process these never fire.
        workers.connect_signals()
