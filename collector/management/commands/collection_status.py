import datetime
import sys

from django.core.management.base import BaseCommand, CommandError

from collector import clock, report
from collector.completeness import school_weeks
from collector.ledger import OPEN, CollectionRun, RunLevel, SchoolRun, UnitStatus

# Exit codes, so monitoring can call this: complete, still open, complete with failures.
COMPLETE, INCOMPLETE, FAILED = 0, 3, 4


class Command(BaseCommand):
    help = (
        "Completeness of a run, or of a level's week across runs: schools expected, done, no "
        f"data, deferred, failed, and lessons stored per office. Exits {COMPLETE} when complete, "
        f"{INCOMPLETE} while schools are still open (pending, running, deferred), {FAILED} when "
        "complete but with failed schools, 1 on bad input. Also lists partial school-weeks "
        "(classes or school days that classInfo and SchoolSchedule expect without lessons)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="Collection run id.")
        parser.add_argument("--level", choices=list(RunLevel.values), help="Level of the runs.")
        parser.add_argument(
            "--week",
            help="Any date of the school week (YYYY-MM-DD); with --level, every run whose "
            "window covers that week counts, the latest unit of each school winning.",
        )

    def handle(self, *args, run=None, level=None, week=None, **options):
        if run is not None:
            if level or week:
                raise CommandError("give either --run, or --level with --week")
            try:
                collection_run = CollectionRun.objects.get(pk=run)
            except CollectionRun.DoesNotExist:
                raise CommandError(f"no collection run with id {run}") from None
            units = SchoolRun.objects.filter(run=collection_run)
            title = str(collection_run)
            mondays = school_weeks(collection_run.date_from, collection_run.date_to)
        elif level and week:
            units, title = self._week_units(level, week)
            mondays = [clock.monday_of(datetime.date.fromisoformat(week))]
        else:
            raise CommandError("give --run ID, or --level L with --week YYYY-MM-DD")

        self.stdout.write(title)
        self.stdout.write(report.format_completeness(report.completeness(units)))
        failed = report.failed_units(units)
        if failed:
            self.stdout.write(failed)
        # Partial school-weeks are told, not an exit code: NEIS publishes them later.
        self.stdout.write(report.partial_weeks(units, mondays))
        open_units = units.filter(status__in=OPEN).count()
        failed_units = units.filter(status=UnitStatus.FAILED).count()
        if open_units:
            self.stdout.write(f"Incomplete: {open_units} schools still open.")
            sys.exit(INCOMPLETE)
        if failed_units:
            self.stdout.write(f"Complete, but {failed_units} schools failed.")
            sys.exit(FAILED)
        self.stdout.write(self.style.SUCCESS("Complete."))

    def _week_units(self, level, week):
        try:
            day = datetime.date.fromisoformat(week)
        except ValueError:
            raise CommandError(f"--week {week!r} is not a date; use YYYY-MM-DD") from None
        monday = clock.monday_of(day)
        # The latest unit of each school wins (a later run re-collected it).
        units = report.latest_units(monday)
        if level != RunLevel.ALL:
            units = units.filter(school__level=level)
        if not units.exists():
            raise CommandError(f"no run covers the {level} week of {monday}")
        return units, f"{level} school week of {monday}"
