from django.core.management.base import BaseCommand, CommandError

from collector import clock, retention

# The same bounds as the settings that give the defaults (proj/settings.py).
LEDGER_DAYS = (70, 3650)
RESULT_DAYS = (1, 3650)


def _number(
    option: str, value: str | None, bounds: tuple[int, int], unit: str = "days"
) -> int | None:
    if value is None:
        return None
    low, high = bounds
    try:
        days = int(value)
    except ValueError:
        raise CommandError(f"{option} must be a whole number of {unit}, got {value!r}") from None
    if not low <= days <= high:
        raise CommandError(f"{option} must be {low}-{high} {unit}, got {days}")
    return days


class Command(BaseCommand):
    help = (
        "Delete the ledger units of closed runs whose window ended more than "
        "LEDGER_RETENTION_DAYS ago, and task results older than CELERY_RESULT_EXPIRES_DAYS "
        "(never those of an open run). Runs keep their counts. Only says what it would delete "
        "unless --apply is given; deletes in small batches."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ledger-days",
            metavar="DAYS",
            help=f"Keep units of runs whose window ended within DAYS days "
            f"({LEDGER_DAYS[0]}-{LEDGER_DAYS[1]}; default LEDGER_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--results-days",
            metavar="DAYS",
            help=f"Keep task results done within DAYS days ({RESULT_DAYS[0]}-{RESULT_DAYS[1]}; "
            "default CELERY_RESULT_EXPIRES_DAYS).",
        )
        parser.add_argument(
            "--batch",
            metavar="ROWS",
            default=str(retention.BATCH),
            help=f"Rows deleted per transaction (100-100000; default {retention.BATCH}).",
        )
        parser.add_argument(
            "--apply", action="store_true", help="Delete for real (default: a dry run)."
        )

    def handle(self, *args, ledger_days=None, results_days=None, batch=None, apply=False, **_):
        policy = retention.Policy.from_settings(
            _number("--ledger-days", ledger_days, LEDGER_DAYS),
            _number("--results-days", results_days, RESULT_DAYS),
        )
        size = _number("--batch", batch, (100, 100_000), "rows")
        pruned = retention.prune(policy, apply=apply, batch=size)
        runs = _ids(pruned.runs)
        units = (
            f"{pruned.units:,} ledger units of {len(pruned.runs)} closed runs whose window "
            f"ended before {policy.ledger_before}{f' (runs {runs})' if runs else ''}"
        )
        oldest = (
            f", the oldest done {clock.in_seoul(pruned.oldest_result):%Y-%m-%d}"
            if pruned.oldest_result
            else ""
        )
        results = (
            f"{pruned.results:,} task results done before "
            f"{clock.in_seoul(policy.results_before):%Y-%m-%d %H:%M} KST{oldest}"
        )
        if not apply:
            self.stdout.write(
                f"Dry run: would delete {units}, and {results}. Runs keep their counts. "
                "Add --apply to do it."
            )
        else:
            self.stdout.write(
                f"Deleted {units}, and {results}, in {pruned.batches} batches. "
                "Runs keep their counts."
            )


def _ids(ids: list[int]) -> str:
    """Run ids, compact: ``3, 5-9, 12``."""
    spans: list[list[int]] = []
    for pk in ids:
        if spans and pk == spans[-1][1] + 1:
            spans[-1][1] = pk
        else:
            spans.append([pk, pk])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
