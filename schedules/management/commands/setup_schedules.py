from django.core.management.base import BaseCommand

from schedules.apply import apply_schedules


class Command(BaseCommand):
    help = (
        "Write the project's periodic jobs (weekly collection per level, registry refresh, "
        "watchdog, result cleanup) into django-celery-beat. Idempotent; keeps what an "
        "operator changed in admin unless --reset."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Put schedules edited in admin back to the values defined in code.",
        )

    def handle(self, *args, reset=False, **options):
        report = apply_schedules(reset=reset)
        for outcome in ("created", "updated", "unchanged", "kept"):
            for name in report[outcome]:
                self.stdout.write(f"{outcome:>9}  {name}")
        summary = ", ".join(f"{len(report[k])} {k}" for k in report)
        if report["kept"] and not reset:
            summary += " (use --reset to restore the code's values)"
        self.stdout.write(self.style.SUCCESS(f"Schedules: {summary}."))
