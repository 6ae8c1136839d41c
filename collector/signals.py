"""Signals of the ledger, in a module of their own (no models), so that what listens to them
(monitoring, set up with the settings) can import them before the apps are ready."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a run is closed (done, done with failed schools, or cancelled) and the close is
# committed, with ``run``: the CollectionRun, its status and counts as closed.
run_closed = Signal()
