"""``manage.py quota_plan``: each key's daily budget, what the enabled schedules will ask in the
coming days, what fits, and when each level's current week is next fully refreshed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from collector import planning, quota


def render(forecast: planning.Forecast) -> str:
    """The plan as text, for the command and the admin page."""
    lines = ["NEIS keys (by key id) and their daily budget:"]
    for key in forecast.keys:
        lines.append(
            f"  {key.key}: cap {key.cap:,} ({key.source}), budget {key.budget:,} after the "
            f"{100 - round(100 * key.budget / key.cap) if key.cap else 0}% margin"
        )
    lines.append(f"  all keys: {forecast.daily_budget:,} requests a day")
    lines.append("")
    lines.append("Schedules firing (requests from the ledger's history, or the rows estimate):")
    if not forecast.jobs:
        lines.append("  none enabled in these days (manage.py setup_schedules)")
    for job in forecast.jobs:
        source = "history" if job.from_history else "estimate"
        done = f"done {job.done_on:%a %Y-%m-%d}" if job.done_on else "NOT done within the plan"
        lines.append(
            f"  {job.day:%a %Y-%m-%d} {job.name}: {job.schools:,} schools x "
            f"{job.per_school:.2f} requests for {job.weeks} weeks ({source}) = "
            f"{job.requests:,}; {done}"
        )
    lines.append("")
    lines.append("Day by day (requests):")
    lines.append(f"  {'day':<15}{'budget':>9}{'spent':>9}{'waiting':>9}  fired")
    for day in forecast.days:
        lines.append(
            f"  {day.day:%a %Y-%m-%d}{day.budget:>9,}{day.spent:>9,}{day.waiting:>9,}  "
            + (", ".join(day.fired) or "-")
        )
    lines.append("")
    lines.append("Each level's current week, next fully refreshed:")
    for level, job in sorted(forecast.refreshed().items()):
        if job is None:
            lines.append(f"  {level}: not within the plan (its work does not fit)")
        else:
            lines.append(f"  {level}: {job.done_on:%a %Y-%m-%d} by {job.name}")
    spilled = [day for day in forecast.days if day.waiting]
    left = forecast.days[-1].waiting if forecast.days else 0
    lines.append("")
    if not spilled:
        lines.append("Fits: yes, every schedule's work within its own day.")
    else:
        most = max(day.waiting for day in spilled)
        lines.append(
            f"Fits: no; work waits for the next day's quota on {len(spilled)} day(s), up to "
            f"{most:,} requests"
            + (f", and {left:,} requests are still waiting at the end" if left else "")
            + "."
        )
    return "\n".join(lines)


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
        self.stdout.write(render(planning.forecast(days)))
        if history:
            self.stdout.write("\nQuota days (requests, observed cap):")
            for row in quota.QuotaDay.objects.all()[:100]:
                self.stdout.write(f"  {row}")
