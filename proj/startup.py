"""What a process does before its command runs, and how it says it cannot.

A bad setting, an unwritable ``VAR_DIR``, or a database or broker that does not answer ends
``manage.py`` and the ``celery`` commands with one line on stderr, ``error: <what and why>``,
naming the variable to fix, and exit status 2: a 40-90 line traceback buries the one line an
operator needs. ``--traceback`` on a management command shows the traceback after all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from proj.env import mask_password

EXIT_CODE = 2


def fail(message: str) -> None:
    """Print ``error: message`` on one line and exit with status 2."""
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_CODE)


def prepare() -> None:
    """Load the settings (every check of proj/settings.py runs here), then create the folders
    they write to.

    Raises ``ImproperlyConfigured`` naming the variable. Nothing is created before every
    setting has passed, and a folder that cannot be made leaves none of the others behind.
    """
    from django.conf import settings

    make_folders(getattr(settings, "LOCAL_FOLDERS", ()))


def make_folders(folders: Iterable[tuple[str, Path]]) -> None:
    """Create each ``(variable, folder)``, all or none, naming the variable on failure."""
    missing = [(name, Path(folder)) for name, folder in folders if not Path(folder).is_dir()]
    # Look first: a folder whose nearest existing parent is a file or read-only cannot be made.
    for name, folder in missing:
        parent = next(p for p in folder.absolute().parents if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ImproperlyConfigured(
                f"{name}: cannot create {folder}: {parent} is not a writable folder"
            )
    # The look can pass where making fails (root's access() says yes to nearly everything):
    # then undo what was made, so a failed start leaves no half-made tree.
    made: list[Path] = []
    for name, folder in missing:
        try:
            for path in [*reversed(folder.absolute().parents), folder.absolute()]:
                if not path.is_dir():
                    path.mkdir()
                    made.append(path)
        except OSError as exc:
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise ImproperlyConfigured(f"{name}: cannot create {folder}: {exc.strerror}") from None


def explain(exc: BaseException) -> str | None:
    """One line for an error that is the configuration's or a server's, not the code's.

    ``None`` for anything else, which keeps its traceback.
    """
    if isinstance(exc, ImproperlyConfigured):
        return str(exc)
    from django.db import Error as DatabaseError

    if isinstance(exc, DatabaseError):
        reason = _database_unreachable(exc)
        if reason:
            return f"cannot reach the database at {_database_location()} (DATABASE_URL): {reason}"
        return None
    from kombu.exceptions import OperationalError as BrokerError

    if isinstance(exc, BrokerError):
        return (
            f"cannot reach the broker at {_setting_url('CELERY_BROKER_URL')} "
            f"(CELERY_BROKER_URL): {_first_line(exc)}"
        )
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, RedisConnectionError):
        # Outside kombu, Redis is the request budget's.
        return (
            f"cannot reach Redis at {_setting_url('NEIS_LIMITER_URL')} (NEIS_LIMITER_URL): "
            f"{_first_line(exc)}"
        )
    return None


@contextlib.contextmanager
def one_line_errors(*, traceback: bool = False) -> Iterator[None]:
    """Turn the errors ``explain`` knows into ``error: ...`` and exit status 2."""
    try:
        yield
    except Exception as exc:
        message = None if traceback else explain(exc)
        if message is None:
            raise
        fail(message)


def run_management_command(argv: list[str]) -> None:
    """``manage.py``: check the settings, make the folders, run the command."""
    traceback = "--traceback" in argv
    if not traceback:
        # runserver's autoreloader runs the command in a thread of a child process.
        previous = threading.excepthook

        def thread_excepthook(args):
            _exit_if_explained(args.exc_value)
            previous(args)

        threading.excepthook = thread_excepthook
    with one_line_errors(traceback=traceback):
        prepare()
        from django.core.management import execute_from_command_line

        execute_from_command_line(argv)


def in_celery_command() -> bool:
    """True inside the ``celery`` program (worker, beat, call, inspect, flower, ...).

    Its click group imports ``celery.bin.celery`` before it imports ``-A proj``; Django, web
    servers and tests never import it.
    """
    return "celery.bin.celery" in sys.modules


def start_celery_command() -> None:
    """Before ``celery -A proj <command>`` does anything: settings, folders, one-line errors.

    Called while celery imports the app. Celery reports an exception raised there as "Unable
    to load celery application" with its traceback, but lets ``SystemExit`` through.
    """
    try:
        prepare()
    except ImproperlyConfigured as exc:
        fail(str(exc))
    previous = sys.excepthook

    def excepthook(kind, exc, tb):
        _exit_if_explained(exc)
        previous(kind, exc, tb)

    # Errors that surface only once the command runs (a broker that does not answer `celery
    # call`) reach the top of the click command uncaught.
    sys.excepthook = excepthook


def _exit_if_explained(exc: BaseException) -> None:
    """For an uncaught error ``explain`` knows: print its line and exit with status 2."""
    try:
        message = explain(exc)
    except Exception:  # explaining must not hide the original error
        message = None
    if message is None:
        return
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Past an excepthook Python exits with status 1 (a thread's error does not end the process
    # at all); the error has already unwound the command, so only clean-up is skipped.
    os._exit(EXIT_CODE)


def require_database() -> None:
    """Exit with one line when the database does not answer (beat keeps its schedule there)."""
    from django.db import connections

    try:
        connections["default"].ensure_connection()
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        fail(message)


def _database_unreachable(exc: BaseException) -> str | None:
    """Why the default database cannot be connected to, or ``None`` when it can.

    ``exc`` may be any database error; a fresh connection tells a server that does not answer
    from a query that failed for its own reasons. SQLite is not probed: connecting creates the
    file.
    """
    from django.db import connections

    connection = connections["default"]
    if connection.vendor == "sqlite":
        return _first_line(exc) if "unable to open database file" in str(exc) else None
    try:
        probe = connection.get_new_connection(connection.get_connection_params())
    except connection.Database.Error as refused:
        return _first_line(refused).removeprefix("connection failed: ")
    probe.close()
    return None


def _database_location() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return str(db["NAME"])
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _setting_url(name: str) -> str:
    from django.conf import settings

    return mask_password(str(getattr(settings, name, "") or "(unset)"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return mask_password(text.splitlines()[0])
