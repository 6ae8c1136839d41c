"""``manage.py neis_simulator``: serve the NEIS hub simulator until interrupted.

A thin wrapper: the options and the server live in ``neis_simulator.cli``.
"""

from django.core.management.base import BaseCommand, CommandError

from neis_simulator import cli


class Command(BaseCommand):
    help = (
        "Serve a simulated NEIS Open API hub (a fake open.neis.go.kr with national-scale "
        "data, quota and faults) until interrupted. Prints its URL and a valid test key."
    )
    # The simulator uses neither the database nor the collector's settings.
    requires_system_checks = []

    def add_arguments(self, parser):
        cli.add_arguments(parser)

    def handle(self, *args, **options):
        try:
            config = cli.config_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            cli.serve(config, options, self.stdout.write)
        except OSError as exc:
            where = f"{options['host']}:{options['port']}"
            raise CommandError(f"cannot listen on {where}: {exc}") from exc
