from django.core.management.base import BaseCommand, CommandError

from collector import pipeline
from collector.neis.errors import NeisError
from collector.registry import sync_school_registry


class Command(BaseCommand):
    help = (
        "Refresh the school registry from NEIS schoolInfo and report added, changed and "
        "no-longer-listed schools."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--office",
            action="append",
            default=[],
            metavar="CODE",
            help="Only this office (ATPT_OFCDC_SC_CODE); repeat for several. Default: all.",
        )

    def handle(self, *args, office=(), **options):
        try:
            pipeline.check_offices(office)
        except pipeline.PipelineError as exc:
            raise CommandError(str(exc)) from None
        try:
            result = sync_school_registry(pipeline.registry_client(), offices=office or None)
        except NeisError as exc:
            raise CommandError(f"NEIS refused the school list: {exc}") from None
        scope = ", ".join(office) if office else "all offices"
        self.stdout.write(
            f"School registry ({scope}): {result.added} added, {result.changed} changed, "
            f"{result.unchanged} unchanged, {result.deactivated} no longer listed (inactive)."
        )
