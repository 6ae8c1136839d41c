import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from collector import clock, storage


def _month(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(f"{value}-01")
    except ValueError:
        raise CommandError(f"--retire-before {value!r} is not a month; use YYYY-MM") from None


class Command(BaseCommand):
    help = (
        "The monthly partitions of the lessons and of their change history (PostgreSQL): list "
        "them with rows and size, create the coming months ahead, or retire old months "
        "(dropped, after an export with --export). Retiring only says what it would do unless "
        "--apply is given, and never touches the current month."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--create-ahead",
            type=int,
            metavar="MONTHS",
            help="Create the partitions of this month and the next MONTHS months (0-24).",
        )
        parser.add_argument(
            "--retire-before",
            metavar="YYYY-MM",
            help="Retire every month before this one (lessons and their change history).",
        )
        parser.add_argument(
            "--export",
            metavar="DIR",
            help="With --retire-before: first write each month to DIR/<partition>.csv.gz "
            "(CSV with a header, gzip: readable by any tool, reloadable with COPY).",
        )
        parser.add_argument(
            "--apply", action="store_true", help="Retire for real (default: a dry run)."
        )

    def handle(self, *args, create_ahead=None, retire_before=None, export=None, **opts):
        if connection.vendor != "postgresql":
            raise CommandError("only PostgreSQL partitions the lessons; SQLite has one table")
        if export and not retire_before:
            raise CommandError("--export goes with --retire-before")
        if create_ahead is not None:
            self._create(create_ahead)
        if retire_before:
            self._retire(_month(retire_before), Path(export) if export else None, opts["apply"])
        self._list()

    def _create(self, months: int) -> None:
        if not 0 <= months <= 24:
            raise CommandError(f"--create-ahead must be 0-24 months, got {months}")
        created = storage.create_partitions_ahead(months)
        self.stdout.write(
            f"Created {len(created)} partitions ({', '.join(created)})."
            if created
            else f"Every partition of this month and the next {months} already exists."
        )

    def _retire(self, before: datetime.date, export: Path | None, apply: bool) -> None:
        current = clock.today().replace(day=1)
        if before > current:
            raise CommandError(
                f"refusing to retire {current:%Y-%m} or later: the current month is still written"
            )
        names = storage.drop_lesson_partitions(before, dry_run=True)
        if not names:
            self.stdout.write(f"No partition ends before {before:%Y-%m}; nothing to retire.")
            return
        sizes = storage.partition_sizes(storage.all_partitions())
        rows = sum(sizes.get(name, (0, 0))[0] for name in names)
        what = f"{len(names)} partitions ({', '.join(names)}), about {rows:,} rows"
        where = f", exported to {export}/<partition>.csv.gz first" if export else ""
        if not apply:
            self.stdout.write(f"Dry run: would drop {what}{where}. Add --apply to do it.")
            return
        storage.drop_lesson_partitions(before, dry_run=False, export_to=export)
        self.stdout.write(f"Dropped {what}{where}.")

    def _list(self) -> None:
        partitions = storage.all_partitions()
        sizes = storage.partition_sizes(partitions)
        self.stdout.write(f"{'partition':<32} {'month':<7} {'rows (est.)':>12} {'MiB':>9}")
        for partition in sorted(partitions, key=lambda p: (p.first_day, p.parent)):
            rows, size = sizes.get(partition.name, (0, 0))
            self.stdout.write(
                f"{partition.name:<32} {partition.first_day:%Y-%m} {rows:>12,} "
                f"{size / 2**20:>9,.1f}"
            )
