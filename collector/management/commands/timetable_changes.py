import csv
import datetime
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from collector import changes, clock
from collector.levels import RunLevel
from collector.models import ChangeKind, Office


def _moment(value: str, option: str) -> datetime.datetime:
    """An ISO date or date-time; a date means its midnight in Seoul."""
    try:
        moment = parse_datetime(value) or datetime.datetime.combine(
            datetime.date.fromisoformat(value), datetime.time()
        )
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option} {value!r} is not a date or date-time (YYYY-MM-DD[THH:MM])")
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.SEOUL)


class Command(BaseCommand):
    help = (
        "Stream the timetable change history: what changed, where and when, one change of a "
        "slot, day or window per line, in history order. Resume a feed exactly with --after "
        "<the last id read>. Memory stays flat however many changes there are."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", help="Changes observed at or after this date or date-time (Seoul)."
        )
        parser.add_argument("--until", help="Changes observed before this date or date-time.")
        parser.add_argument(
            "--after",
            type=int,
            default=0,
            metavar="ID",
            help="Only changes after this id: the cursor a consumer keeps.",
        )
        parser.add_argument("--office", action="append", default=[], metavar="CODE")
        parser.add_argument("--level", action="append", default=[], choices=RunLevel.values[1:])
        parser.add_argument("--school", action="append", default=[], metavar="CODE")
        parser.add_argument(
            "--kind",
            action="append",
            default=[],
            choices=[*ChangeKind.values, changes.SWAPPED],
            help="Only these kinds (repeat); 'swapped' is a removal and an addition in one slot.",
        )
        parser.add_argument(
            "--format", choices=["table", "csv", "jsonl"], default="table", help="Output form."
        )
        parser.add_argument("--limit", type=int, default=0, help="Stop after N changes.")

    def handle(self, *args, **opts):
        if opts["after"] < 0 or opts["limit"] < 0:
            raise CommandError("--after and --limit must not be negative")
        unknown = Office.objects.unknown(opts["office"])
        if unknown:
            raise CommandError(f"unknown office code(s): {', '.join(unknown)}")
        rows = changes.history(
            after=opts["after"],
            since=opts["since"] and _moment(opts["since"], "--since"),
            until=opts["until"] and _moment(opts["until"], "--until"),
            offices=opts["office"],
            levels=opts["level"],
            schools=opts["school"],
            kinds=opts["kind"],
        )
        write = {"table": self._table, "csv": self._csv, "jsonl": self._jsonl}[opts["format"]]
        written = write(self._wanted(changes.feed(rows), opts["kind"], opts["limit"]))
        if opts["format"] == "table":
            self.stderr.write(f"{written:,} changes.")

    @staticmethod
    def _wanted(feed, kinds, limit):
        count = 0
        for change in feed:
            if kinds and change.kind not in kinds:
                continue
            yield change
            count += 1
            if limit and count >= limit:
                return

    def _table(self, feed) -> int:
        count = 0
        for change in feed:
            observed = change.observed_at.astimezone(clock.SEOUL).strftime("%Y-%m-%d %H:%M")
            self.stdout.write(
                f"{change.id:>10} {observed} {change.school} {change.kind:<11} {change.describe()}"
            )
            count += 1
        return count

    def _csv(self, feed) -> int:
        out = csv.writer(self.stdout._out)
        out.writerow(changes.Change.FIELDS)
        count = 0
        for change in feed:
            out.writerow([_text(getattr(change, name)) for name in changes.Change.FIELDS])
            count += 1
        return count

    def _jsonl(self, feed) -> int:
        count = 0
        for change in feed:
            record = {name: _text(getattr(change, name)) for name in changes.Change.FIELDS}
            self.stdout.write(json.dumps(record, ensure_ascii=False))
            count += 1
        return count


def _text(value):
    return value.isoformat() if isinstance(value, datetime.date | datetime.datetime) else value
