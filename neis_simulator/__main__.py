"""``python -m neis_simulator``: serve a simulated NEIS hub (see ``cli``)."""

import sys

from .cli import main

sys.exit(main())
