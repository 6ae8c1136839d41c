"""Celery's configuration listings hold no secret: ``celery inspect conf`` (which Flower's
worker page shows) and ``celery report``.

Celery hides a setting by its name; with the Django settings as its configuration the
listing held CELERY_BROKER_URL and NEIS_LIMITER_URL with their passwords.
"""

import json
import socket
import subprocess
import sys

import pytest

from proj.celery import app
from tests.processes import ROOT, celery_worker, child_env

DB_PASSWORD = "db-pw-4e1a"
BROKER_PASSWORD = "broker-pw-0b7d"
LIMITER_PASSWORD = "limiter-pw-c35f"
NEIS_KEY = "neiskey7f20d9c1b8e3"
SECOND_KEY = "neiskey91c4e0a2d7f6"
SECRETS = (DB_PASSWORD, BROKER_PASSWORD, LIMITER_PASSWORD, NEIS_KEY, SECOND_KEY)

LISTINGS = """
import json, django
django.setup()
from celery.worker import control
from proj.celery import app

class State:  # what a worker passes its control commands
    app = app

print(json.dumps({
    "conf": control.Panel.data["conf"](State, with_defaults=False),
    "with_defaults": control.Panel.data["dump_conf"](State, with_defaults=True),
    "report": app.bugreport(),
}))
"""


def test_the_conf_command_and_the_report_mask_every_credential():
    env = child_env(
        {
            "DATABASE_URL": f"postgres://neis:{DB_PASSWORD}@127.0.0.1:5432/neis",
            "CELERY_BROKER_URL": f"redis://:{BROKER_PASSWORD}@127.0.0.1:6379/0",
            "NEIS_LIMITER_URL": f"redis://default:{LIMITER_PASSWORD}@127.0.0.1:6379/1",
            "NEIS_API_KEY": NEIS_KEY,
            "NEIS_API_KEYS": f"{NEIS_KEY},{SECOND_KEY}",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", LISTINGS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listings = json.loads(done.stdout.strip().splitlines()[-1])

    for secret in SECRETS:
        assert secret not in done.stdout
    conf = listings["conf"]
    assert conf["CELERY_BROKER_URL"] == "redis://:***@127.0.0.1:6379/0"
    assert conf["NEIS_LIMITER_URL"] == "redis://default:***@127.0.0.1:6379/1"
    assert conf["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 3600
    assert "CELERY_BROKER_URL" in listings["report"]


@pytest.mark.slow
def test_a_real_worker_answers_inspect_conf_without_secrets(tmp_path):
    """On this session's own broker, which takes no password, so the broker URL carries none
    here; PostgreSQL trusts loopback, so the database URL may (the worker does not connect at
    start, nor to the limiter's Redis)."""
    secrets = {
        "DATABASE_URL": f"postgres://postgres:{DB_PASSWORD}@127.0.0.1:5432/neis",
        "NEIS_LIMITER_URL": f"redis://:{LIMITER_PASSWORD}@127.0.0.1:6379/1",
        "NEIS_API_KEY": NEIS_KEY,
    }
    with celery_worker(tmp_path, secrets, queues="default", concurrency=1) as worker:
        name = worker.args[worker.args.index("-n") + 1].replace("%h", socket.gethostname())
        answers = app.control.inspect([name], timeout=10).conf()
    assert answers and name in answers, answers
    listing = json.dumps(answers)
    for secret in SECRETS:
        assert secret not in listing
    assert answers[name]["NEIS_LIMITER_URL"] == "redis://:***@127.0.0.1:6379/1"
