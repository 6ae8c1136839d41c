import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from collector.clock import school_weeks_window


class Command(BaseCommand):
    help = (
        "The main job in miniature: start the NEIS simulator on 127.0.0.1, collect one office "
        "for the current school week with backfill_timetables --sync, and print the summary. "
        "Never calls the real NEIS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--office", default="I10", help="Office to collect (default I10).")
        parser.add_argument("--level", default="all", help="Level to collect (default all).")
        parser.add_argument("--seed", type=int, default=1, help="Simulator seed.")

    def handle(self, *args, office, level, seed, **options):
        from neis_simulator import Simulator, SimulatorConfig

        started = time.monotonic()
        self.stdout.write("Starting the NEIS simulator (national world, generated on demand)...")
        simulator = Simulator(SimulatorConfig(seed=seed)).start()
        try:
            # This process only: the command talks to the simulator, not to open.neis.go.kr.
            settings.NEIS_BASE_URL = simulator.url
            settings.NEIS_API_KEY = simulator.key
            self.stdout.write(f"Simulator at {simulator.url}; collecting {office}.")
            monday, sunday = school_weeks_window(weeks_before=0, weeks_after=0)
            call_command(
                "backfill_timetables",
                "--level", level, "--office", office,
                "--from", monday.isoformat(), "--to", sunday.isoformat(),
                "--sync", "--reprocess", "all",
                stdout=self.stdout._out, stderr=self.stderr._out,
            )  # fmt: skip
        except CommandError:
            raise
        finally:
            simulator.stop()
        self.stdout.write(f"Demo finished in {time.monotonic() - started:.1f} s.")
