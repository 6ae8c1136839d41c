"""A configuration that cannot work ends every command in one line naming the variable.

Each case runs the real program in a child process, as an operator would: ``manage.py`` and
``celery -A proj``. It must exit with status 2 and print exactly one line on stderr, starting
``error:`` and naming the variable, with no traceback and no password.
"""

import socket
import sys

import pytest

from tests.processes import run_child, run_python

PASSWORD = "s3cret-pw"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _manage(*args, env):
    return run_child([sys.executable, "manage.py", *args], env)


def _celery(*args, env):
    return run_child([sys.executable, "-m", "celery", "-A", "proj", *args], env, timeout=90)


def assert_one_line(done, *named):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    for text in named:
        assert text in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert PASSWORD not in done.stderr + done.stdout


BAD_VALUES = [
    ({"NEIS_MAX_RPS": "nan"}, "NEIS_MAX_RPS"),
    ({"NEIS_PAGE_SIZE": "5000"}, "NEIS_PAGE_SIZE"),
    ({"DEBUG": "perhaps"}, "DEBUG"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"CELERY_BROKER_URL": f"redis://:{PASSWORD}@127.0.0.1:notaport/0"}, "CELERY_BROKER_URL"),
    ({"DATABASE_URL": f"mysql://root:{PASSWORD}@127.0.0.1/x"}, "DATABASE_URL"),
]


def _ids(overrides):
    return ",".join(f"{k}={v}" for k, v in overrides.items())


@pytest.mark.parametrize(("overrides", "named"), BAD_VALUES, ids=[_ids(o) for o, _ in BAD_VALUES])
def test_it_refuses_a_bad_value_in_one_line_for_manage_py(overrides, named):
    assert_one_line(_manage("check", env=overrides), named)


CELERY_CASES = [
    *[(["worker"], overrides, named) for overrides, named in BAD_VALUES[:5]],
    (["beat"], {"NEIS_MAX_RPS": "nan"}, "NEIS_MAX_RPS"),
    (["beat"], {"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    (["call", "proj.ping"], {"NEIS_PAGE_SIZE": "5000"}, "NEIS_PAGE_SIZE"),
    (["call", "proj.ping"], BAD_VALUES[4][0], "CELERY_BROKER_URL"),
]


@pytest.mark.parametrize(
    ("command", "overrides", "named"),
    CELERY_CASES,
    ids=[f"{command[0]}-{named}" for command, _, named in CELERY_CASES],
)
def test_it_refuses_a_bad_value_in_one_line_for_celery(command, overrides, named):
    assert_one_line(_celery(*command, env=overrides), named)


def test_it_shows_the_traceback_when_asked():
    port = _closed_port()
    done = _manage(
        "migrate", "--traceback", env={"DATABASE_URL": f"postgres://u@127.0.0.1:{port}/x"}
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["collection_status", "--run", "1"],
        ["backfill_timetables", "--level", "middle", "--office", "I10",
         "--from", "2026-11-16", "--to", "2026-11-20"],
    ],
    ids=lambda command: command[0],
)  # fmt: skip
def test_it_names_an_unreachable_database_in_one_line(command):
    port = _closed_port()
    done = _manage(*command, env={"DATABASE_URL": f"postgres://neis:{PASSWORD}@127.0.0.1:{port}/x"})
    assert_one_line(done, "cannot reach the database", f"127.0.0.1:{port}/x", "DATABASE_URL")


def test_runserver_names_an_unreachable_database_and_stops():
    """runserver checks migrations in a thread of its autoreloader's child, where an error
    used to print a traceback and leave the server waiting for a code change."""
    db = f"postgres://neis:{PASSWORD}@127.0.0.1:{_closed_port()}/x"
    done = _manage("runserver", f"127.0.0.1:{_closed_port()}", env={"DATABASE_URL": db})
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach the database at"), done.stderr
    assert "DATABASE_URL" in last
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_beat_names_an_unreachable_database_in_one_line():
    port = _closed_port()
    done = _celery("beat", env={"DATABASE_URL": f"postgres://neis:{PASSWORD}@127.0.0.1:{port}/x"})
    assert_one_line(done, "cannot reach the database", "DATABASE_URL")


def test_celery_call_names_an_unreachable_broker_in_one_line():
    port = _closed_port()
    broker = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    done = _celery("call", "proj.ping", env={"CELERY_BROKER_URL": broker})
    assert_one_line(done, "cannot reach the broker", "CELERY_BROKER_URL", f"127.0.0.1:{port}")


def test_it_names_an_unwritable_var_dir_and_makes_nothing(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    embedded = {"DATABASE_URL": None, "CELERY_BROKER_URL": None, "NEIS_LIMITER_URL": None}
    var_dir = tmp_path / "file" / "var"
    for done in (
        _manage("migrate", env={**embedded, "VAR_DIR": str(var_dir)}),
        _celery("worker", env={**embedded, "VAR_DIR": str(var_dir)}),
    ):
        assert_one_line(done, "VAR_DIR", str(var_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_folder_that_cannot_be_made_leaves_no_other_behind(tmp_path):
    """The SQLite folder is made first; the broker's cannot be (/proc takes no folders, even
    for root, whose access() check says yes): the first must be taken back."""
    done = _manage(
        "migrate",
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path}/db/new/db.sqlite3",
            "CELERY_BROKER_URL": None,
            "NEIS_LIMITER_URL": None,
            "VAR_DIR": "/proc/no-such-folder",
        },
    )
    assert_one_line(done, "VAR_DIR", "/proc/no-such-folder")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_setting_makes_no_folder(tmp_path):
    done = _manage(
        "migrate",
        env={
            "DATABASE_URL": None,
            "CELERY_BROKER_URL": None,
            "VAR_DIR": str(tmp_path / "var"),
            "NEIS_PAGE_SIZE": "5000",
        },
    )
    assert_one_line(done, "NEIS_PAGE_SIZE")
    assert list(tmp_path.iterdir()) == []


def test_importing_the_settings_makes_no_folder(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; settings.VAR_DIR"
    done = run_python(
        code, {"DATABASE_URL": None, "CELERY_BROKER_URL": None, "VAR_DIR": str(tmp_path / "var")}
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_manage_py_makes_the_embedded_default_folders(tmp_path):
    done = _manage(
        "check",
        env={"DATABASE_URL": None, "CELERY_BROKER_URL": None, "VAR_DIR": str(tmp_path / "var")},
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "var" / "broker").iterdir()} == {
        "out",
        "processed",
        "control",
    }
