import datetime

from django.core.management.base import BaseCommand, CommandError

from collector import pipeline, planning, quota, report
from collector.ledger import RunLevel, Trigger, UnitStatus


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date; use YYYY-MM-DD") from None


class Command(BaseCommand):
    help = (
        "Collect timetables for a date window. By default it creates a run and enqueues one "
        "task per school for the workers; --sync collects here and now (no broker needed); "
        "--dry-run only says what it would fetch."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--level",
            required=True,
            choices=list(RunLevel.values),
            help="School level to collect, or 'all'.",
        )
        parser.add_argument(
            "--from", dest="date_from", required=True, help="First date, YYYY-MM-DD."
        )
        parser.add_argument("--to", dest="date_to", required=True, help="Last date, YYYY-MM-DD.")
        parser.add_argument(
            "--office",
            action="append",
            default=[],
            metavar="CODE",
            help="Office code (ATPT_OFCDC_SC_CODE, e.g. I10); repeat for several.",
        )
        parser.add_argument(
            "--school",
            action="append",
            default=[],
            metavar="CODE",
            help="School code (SD_SCHUL_CODE); repeat for several.",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Collect in this process with a progress bar instead of enqueueing.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print the schools, requests, estimated rows and quota use; touch nothing.",
        )
        parser.add_argument(
            "--reprocess",
            choices=pipeline.Reprocess.CHOICES,
            default=pipeline.Reprocess.NONE,
            help="School-weeks already collected: 'none' skips them (default), 'failed' "
            "collects only those whose last attempt failed, 'all' collects everything again.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also collect schools an open run is collecting for this window (skipped "
            "otherwise: their requests would be spent twice).",
        )

    def handle(self, *args, **opts):
        date_from, date_to = _date(opts["date_from"]), _date(opts["date_to"])
        offices, codes = sorted(set(opts["office"])), sorted(set(opts["school"]))
        try:
            levels = pipeline.validate_request(opts["level"], date_from, date_to, offices, codes)
        except pipeline.PipelineError as exc:
            raise CommandError(str(exc)) from None

        if opts["dry_run"]:
            plan = pipeline.plan(
                levels,
                date_from,
                date_to,
                offices,
                codes,
                reprocess=opts["reprocess"],
                force=opts["force"],
            )
            self.stdout.write(report.format_plan(plan))
            days, daily = planning.days_of_quota(plan.requests)
            keys = len(quota.configured_key_ids())
            self.stdout.write(
                f"Quota: {days} day{'s' if days != 1 else ''} of the "
                f"{keys} configured key{'s' if keys != 1 else ''} "
                f"({daily:,} requests a day after the margin; manage.py quota_plan)."
            )
            return

        try:
            run = pipeline.create_run(
                opts["level"],
                date_from,
                date_to,
                offices=offices,
                school_codes=codes,
                trigger=Trigger.BACKFILL,
                requested_by="backfill_timetables",
                reprocess=opts["reprocess"],
                force=opts["force"],
            )
        except pipeline.PipelineError as exc:
            raise CommandError(str(exc)) from None
        if run.busy.schools:
            self.stdout.write(f"Run {run.pk}: {run.busy}.")
        if opts["sync"]:
            run = self._collect_here(run)
        else:
            sent = pipeline.dispatch(run)
            self.stdout.write(
                f"Run {run.pk}: {run.units_total} schools, {sent} tasks enqueued for the "
                f"workers (queue 'neis'). Follow it with: "
                f"manage.py collection_status --run {run.pk}"
            )
            return
        self.stdout.write(report.format_run(run))
        if run.units_failed:
            raise CommandError(f"run {run.pk}: {run.units_failed} schools failed (listed above)")

    def _collect_here(self, run):
        from tqdm import tqdm

        with tqdm(total=run.units_total, unit="school", disable=None, file=self.stderr._out) as bar:

            def progress(outcome):
                bar.update(1)
                if outcome.status == UnitStatus.FAILED:
                    bar.write(f"failed: unit {outcome.unit_id}: {outcome.detail}")

            return pipeline.run_in_process(run, progress=progress)
