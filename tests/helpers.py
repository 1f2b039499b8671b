"""Small helpers shared by the endpoint tests."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.core.cache import cache
from django.db import connection

from progress.models import ContentProgress, Enrollment

ROOT = Path(__file__).resolve().parent.parent

# A progress row object's keys, in the contract's order (section 3.3); written out here, not
# taken from the code under test.
PROGRESS_ROW_KEYS = [
    "v_created_date",
    "v_created_time",
    "v_updated_date",
    "v_updated_time",
    "progressId",
    "userId",
    "courseId",
    "courseContentId",
    "progressStatus",
    "activityDuration",
    "progressPercent",
    "metadata",
    "user_course_content_progress_created_at",
    "user_course_content_progress_updated_at",
]


def manage_py(*args, **env) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` in the checkout, as an operator's shell runs it: this process's
    environment without SECRET_KEY and DEBUG, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot():
    """Everything stored about progress, to show that a refused request changed nothing."""
    return (
        list(ContentProgress.objects.order_by("id").values()),
        list(Enrollment.objects.order_by("id").values()),
    )


def post_update(client, **body):
    return client.post("/user-progress/update", body, format="json")


def seconds_left(key: str) -> float:
    """How long the default cache keeps this entry (Redis or local memory); 0 when absent."""
    if hasattr(cache, "pttl"):  # django-redis
        return max(cache.pttl(key), 0) / 1000
    expiry = cache._expire_info.get(cache.make_and_validate_key(key))
    return 0 if expiry is None else max(expiry - time.time(), 0)


def expire(key: str) -> None:
    """What the end of an entry's TTL does, without waiting for it."""
    assert cache.touch(key, 0) or cache.get(key) is None
    assert cache.get(key) is None


def run_together(calls):
    """Start every call at the same moment on its own thread (and connection); return results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # surfaced by the assertions below
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results
