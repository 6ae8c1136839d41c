"""manage.py check_freshness: is every level's school week complete by its deadline?"""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError

from collector import clock
from collector.metrics import LEVELS, week_start, week_states

# Exit code when a level's week is not complete by its deadline (1 is bad input).
STALE = 2


class Command(BaseCommand):
    help = (
        "Exit 0 when, for every level, the newest school week whose deadline has passed is "
        "complete (every active school done or without data), 2 when one is not; for "
        "monitoring and cron. The deadline is the week's Monday 00:00 KST plus --deadline-hours."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--deadline-hours",
            type=int,
            required=True,
            help="Hours after a week's Monday 00:00 KST by which it must be complete "
            "(132: Saturday noon, after the weekly runs).",
        )
        parser.add_argument(
            "--level",
            action="append",
            choices=LEVELS,
            help="Check only this level (repeatable); default: every level.",
        )

    def handle(self, *args, deadline_hours, level, **options):
        if deadline_hours < 0:
            raise CommandError("--deadline-hours must not be negative")
        levels = level or LEVELS
        now = clock.now()
        deadline = datetime.timedelta(hours=deadline_hours)
        week = clock.monday_of(clock.today())
        while week_start(week) + deadline > now:
            week -= datetime.timedelta(weeks=1)
        due = clock.in_seoul(week_start(week) + deadline).strftime("%Y-%m-%d %H:%M KST")
        states = week_states([week])
        stale = []
        for name in levels:
            state = states[(name, week)]
            missing = state.total - state.complete
            if state.is_complete:
                line = f"{name}: complete ({state.complete:,} of {state.total:,} schools)"
            else:
                stale.append(name)
                line = (
                    f"{name}: NOT complete: {state.complete:,} of {state.total:,} schools "
                    f"({state.ratio:.1%}), {missing:,} missing or failed"
                )
            self.stdout.write(line)
        summary = f"School week of {week} (due {due}): "
        if stale:
            raise CommandError(summary + f"{', '.join(stale)} not complete.", returncode=STALE)
        self.stdout.write(summary + f"{len(levels)} level(s) complete.")
