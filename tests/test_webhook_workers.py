"""deliver_webhooks as real processes on PostgreSQL: a worker killed (SIGKILL) mid-attempt, and
two workers sharing the work, against a real HTTP receiver."""

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.management import call_command
from django.db import connection

from progress import services, webhooks
from progress.models import Event, WebhookDelivery
from tests.conftest import requires_postgres
from tests.webhook_receiver import HANG, running_receiver

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _local_receivers(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT = 1.0
    settings.WEBHOOK_LEASE_SECONDS = 3.0


def worker_env() -> dict:
    """The test database (pytest-django's, not DATABASE_URL's) for a worker process."""
    url = urlsplit(os.environ["DATABASE_URL"])
    database = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "DATABASE_URL": database,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "test-only-secret-key",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
        "WEBHOOK_TIMEOUT": "1",
        "WEBHOOK_LEASE_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    }


def start_worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "deliver_webhooks", *args],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def learners(make_user, course, count: int) -> list[str]:
    """`count` learners enrolled in `course`: one enrollment.created event each; their ids."""
    for n in range(count):
        user = make_user(f"hook_learner_{n}")
        services.enrol(user_id=user.pk, course_id=course.pk)
    return [event.public_id for event in Event.objects.filter(type="enrollment.created")]


def test_a_worker_killed_mid_attempt_loses_nothing(make_user, course):
    with running_receiver() as receiver:
        webhooks.create_subscription(url=receiver.url)
        expected = learners(make_user, course, 3)
        receiver.plan = [HANG]  # the first attempt never gets an answer
        worker = start_worker("--interval", "0.2")
        try:
            assert receiver.wait_for(1, timeout=60), worker.stdout.read() if worker.poll() else ""
            os.kill(worker.pid, signal.SIGKILL)  # mid-attempt: the receiver is still holding it
        finally:
            worker.kill()
            worker.wait(30)
        assert worker.returncode == -signal.SIGKILL
        hung = receiver.ids()[0]
        leased = WebhookDelivery.objects.get(sequence=int(hung.removeprefix("evt_")))
        assert (leased.state, leased.attempts) == ("pending", 1)
        assert leased.leased_until is not None  # left behind by the killed worker

        # Another run delivers once the lease has run out; poll, bounded.
        for _ in range(60):
            call_command("deliver_webhooks", "--once", stdout=io.StringIO())
            if WebhookDelivery.objects.exclude(state="delivered").count() == 0:
                break
            time.sleep(0.25)

    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}
    assert sorted(set(receiver.ids())) == sorted(expected)
    counts = Counter(receiver.ids())
    assert counts[hung] == 2  # at least once: the killed attempt is made again
    assert all(counts[other] == 1 for other in expected if other != hung)


def test_two_workers_share_the_work_and_deliver_each_event_once(make_user, course):
    with running_receiver() as receiver:
        webhooks.create_subscription(url=receiver.url)
        expected = learners(make_user, course, 60)
        webhooks.fan_out()
        receiver.delay = 0.05
        workers = [start_worker("--once", "--batch-size", "2") for _ in range(2)]
        outputs = [worker.communicate(timeout=180)[0] for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert Counter(receiver.ids()) == Counter(expected)  # every event exactly once
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {("delivered", 1)}
    attempted = [int(re.search(r"attempted (\d+)", out).group(1)) for out in outputs]
    assert sum(attempted) == 60
    assert all(count > 0 for count in attempted), attempted  # both took a share


def test_sigterm_lets_the_attempt_in_flight_finish(make_user, course):
    with running_receiver() as receiver:
        webhooks.create_subscription(url=receiver.url)
        learners(make_user, course, 1)
        receiver.delay = 0.5
        worker = start_worker("--interval", "0.2")
        try:
            assert receiver.wait_for(1, timeout=60)
            worker.send_signal(signal.SIGTERM)
            output = worker.communicate(timeout=30)[0]
        finally:
            worker.kill()
    assert worker.returncode == 0, output
    assert "delivered 1" in output
    assert WebhookDelivery.objects.get().state == "delivered"
