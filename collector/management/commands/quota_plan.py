"""``manage.py quota_plan``: each key's daily budget, what the enabled schedules will ask in the
coming days, what fits, and when each level's current week is next fully refreshed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from collector import planning, quota


class Command(BaseCommand):
    help = (
        "Print each NEIS key's daily budget (observed cap or configured), the requests each "
        "enabled schedule will need in the coming days, what fits and what does not, and "
        "when each level's current week will next be fully refreshed. Reads only."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=7, help="How many days to plan, from today (1-60)."
        )
        parser.add_argument(
            "--history", action="store_true", help="Also list each key's recent quota days."
        )

    def handle(self, *args, days=7, history=False, **options):
        if not 1 <= days <= 60:
            raise CommandError(f"--days must be between 1 and 60, got {days}")
        self.stdout.write(planning.render(planning.forecast(days)))
        if history:
            self.stdout.write("\nQuota days (requests, observed cap):")
            for row in quota.QuotaDay.objects.all()[:100]:
                self.stdout.write(f"  {row}")
