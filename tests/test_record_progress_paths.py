"""The two homes of the progress write agree: random sequences of learner, system and admin
writes run through the Python path (services.record_progress_in_python) and through the
PostgreSQL function (progress/upsert_sql.py), each on its own course with the same set-up, and
must leave the same rows, enrollments, cache stamps and change events, and give the same
responses and errors.

The sequences mix learners' merges, exact writes (LOCKED set and cleared), retries of the same
update, late arrivals with a lower percent or status, metadata merges that grow past 16 KiB (and
ones only the Python path can size), content of another course or of none, writes of a learner
who is not enrolled, of a user or to a course that does not exist (never written: the
view's 404 rests on that), and enrollment moves and re-enrolments through the services. The clock is
frozen per step, so update and completion dates must match to the microsecond.

PostgreSQL only (the project's requires_postgres): SQLite has the Python path alone.
"""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from courseprogress.exceptions import Conflict
from courseprogress.models import Course, CourseContent
from progress import services
from progress.formatting import format_progress
from progress.models import ContentProgress, Enrollment, Event
from tests.conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db]

ITEMS = 2
FOREIGN, MISSING = "foreign", "missing"  # content of another course; an id nothing has
GHOST = "ghost"
NO_ID = 2**31 - 1
STATUSES = ["NOT_STARTED", "IN_PROGRESS", "COMPLETED", "LOCKED"]
MOVES = ["ENROLLED", "IN_PROGRESS", "COMPLETED", "CERTIFIED", "DROPPED", "EXPIRED"]
# Pads of these sizes merge into objects under, between and over the limits (16 KiB as
# json.dumps; a third of it as jsonb text, past which the function asks the Python path).
PADS = [10, 3000, 6000, 9000]

metadata = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(
        st.sampled_from(["a", "b", "pos", "é"]),
        # booleans beside the numbers they equal in Python (True == 1), floats beside integers
        st.one_of(
            st.integers(-1, 2),
            st.booleans(),
            st.sampled_from([1.0, 0.5]),
            st.text("xyé", max_size=4),
        ),
        min_size=1,
        max_size=3,
    ),
    st.builds(
        lambda key, size: {key: "x" * size}, st.sampled_from(["p", "q"]), st.sampled_from(PADS)
    ),
)
write = st.fixed_dictionaries(
    {
        "op": st.just("write"),
        "item": st.sampled_from([*range(ITEMS)] * 8 + [FOREIGN, MISSING]),
        "status": st.sampled_from([*STATUSES[:3]] * 2 + ["LOCKED"]),
        "percent": st.one_of(
            st.none(),
            st.sampled_from(
                [Decimal("0"), Decimal("10.5"), Decimal("40"), Decimal("80"), Decimal("100")]
            ),
        ),
        "duration": st.one_of(st.none(), st.integers(0, 90)),
        "metadata": metadata,
        "exact": st.sampled_from([False, False, True]),
        # True: a learner with no enrollment; GHOST: a user id nothing has
        "stranger": st.sampled_from([False] * 8 + [True, GHOST]),
        "nowhere": st.sampled_from([False] * 9 + [True]),  # a course id nothing has
    }
)
KINDS = {
    "write": write,
    "retry": st.just({"op": "retry"}),  # the previous write again, as a client's retry sends it
    "move": st.fixed_dictionaries(
        {"op": st.just("move"), "status": st.sampled_from(MOVES), "certificate": st.booleans()}
    ),
    "enrol": st.just({"op": "enrol"}),  # re-enrols a DROPPED or EXPIRED enrollment
}
step = st.sampled_from(["write"] * 10 + ["retry"] * 2 + ["move", "enrol"]).flatmap(KINDS.get)

_names = count()
START = datetime(2025, 1, 1, tzinfo=UTC)


@contextmanager
def frozen(clock):
    with mock.patch.object(timezone, "now", side_effect=lambda: clock[0]):
        yield


def make_side(django_user_model, contents_per_course=ITEMS):
    """A course with ITEMS items, a learner enrolled in it, a stranger, another course's item."""
    n = next(_names)
    course = Course.objects.create(title=f"paths {n}")
    items = [
        CourseContent.objects.create(course=course, title=f"i{i}", position=i)
        for i in range(contents_per_course)
    ]
    elsewhere = Course.objects.create(title=f"elsewhere {n}")
    foreign = CourseContent.objects.create(course=elsewhere, title="f", position=1)
    learner = django_user_model.objects.create_user(username=f"paths{n}")
    stranger = django_user_model.objects.create_user(username=f"stranger{n}")
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    # The dates' defaults are timezone.now as bound when the model was defined, past the
    # frozen clock: the same dates on both sides.
    Enrollment.objects.filter(pk=enrollment.pk).update(enrolled_at=START, updated_at=START)
    enrollment.refresh_from_db()
    ids = {i: item.pk for i, item in enumerate(items)}
    ids.update({FOREIGN: foreign.pk, MISSING: 2**31 - 1})
    return {
        "course": course,
        "items": ids,
        "index": {pk: i for i, pk in ids.items()},
        "learner": learner,
        "stranger": stranger,
        "enrollment": enrollment,
    }


def error(exc: Exception):
    if isinstance(exc, ValidationError):
        return ("ValidationError", exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Conflict):
        return ("Conflict", exc.message)
    if isinstance(exc, PermissionDenied):
        return ("PermissionDenied", str(exc))
    raise exc


def run_step(side, action):
    """One step on one side; what a client would see (the response body, or the error)."""
    try:
        if action["op"] == "write":
            user = side["stranger"] if action["stranger"] else side["learner"]
            missing = action["stranger"] == GHOST or action["nowhere"]
            row = services.record_progress(
                user_id=NO_ID if action["stranger"] == GHOST else user.pk,
                course_id=NO_ID if action["nowhere"] else side["course"].pk,
                content_id=side["items"][action["item"]],
                status=action["status"],
                percent=action["percent"],
                duration=action["duration"],
                metadata=action["metadata"],
                exact=action["exact"],
            )
            # The view's 404 rests on this: a missing course or user is never written to, the
            # write fails as "not in the course" or "no active enrollment" (ProgressUpdateView).
            assert not missing, "a write for a missing course or user succeeded"
            body = format_progress(vars(row))
            assert (
                body["progressId"]
                == ContentProgress.objects.get(user_id=user.pk, content_id=row.content_id).pk
            )
            body.pop("progressId")
            # The created_at default is timezone.now as bound when the model was defined,
            # not the frozen clock: the creation date is not compared.
            for name in (
                "v_created_date",
                "v_created_time",
                "user_course_content_progress_created_at",
            ):
                body.pop(name)
            body["courseId"] = "own" if body["courseId"] == side["course"].pk else "other"
            body["courseContentId"] = side["index"][body["courseContentId"]]
            body["userId"] = "stranger" if action["stranger"] else "learner"
            return ("ok", body)
        if action["op"] == "move":
            url = "https://example.com/cert" if action["certificate"] else services.UNSET
            services.update_enrollment(
                side["enrollment"].pk, status=action["status"], certificate_url=url
            )
            return ("ok", None)
        services.enrol(user_id=side["learner"].pk, course_id=side["course"].pk)
        return ("ok", None)
    except (ValidationError, Conflict, PermissionDenied) as exc:
        return error(exc)


def state(side):
    """What is stored for this side: rows, enrollments, stamps and change events."""
    course = side["course"]
    rows = sorted(
        (
            "learner" if row.user_id == side["learner"].pk else "stranger",
            side["index"][row.content_id],
            row.status,
            row.percent,
            row.duration,
            row.metadata,
            row.updated_at,
        )
        for row in ContentProgress.objects.filter(course=course)
    )
    enrollments = [
        (
            e.status,
            e.enrolled_at,
            e.completed_at,
            e.updated_at,
            e.certificate_url,
            e.cache_version,
        )
        for e in Enrollment.objects.filter(course=course).order_by("pk")
    ]
    course.refresh_from_db()
    events = []
    for event in Event.objects.filter(course_id=course.pk).order_by("sequence"):
        data = dict(event.data)
        data.pop("progressId", None)
        data.pop("enrollmentId", None)
        if "courseContentId" in data:
            data["courseContentId"] = side["index"][data["courseContentId"]]
        events.append((event.type, event.user_id == side["learner"].pk, data))
    return rows, enrollments, course.cache_version, events


@contextmanager
def python_path():
    with mock.patch.object(services, "RECORD_PROGRESS_IN_SQL", False):
        yield


def w(item=0, status="IN_PROGRESS", percent=None, duration=None, metadata=None, exact=False):
    return {
        "op": "write",
        "item": item,
        "status": status,
        "percent": None if percent is None else Decimal(percent),
        "duration": duration,
        "metadata": metadata,
        "exact": exact,
        "stranger": False,
        "nowhere": False,
    }


def move(status, certificate=False):
    return {"op": "move", "status": status, "certificate": certificate}


RETRY, ENROL = {"op": "retry"}, {"op": "enrol"}


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
# Sequences that must always run, whatever Hypothesis draws:
@example(steps=[w(metadata={"a": 1}), w(metadata={"b": 2}, percent="30"), RETRY])  # a merge
@example(steps=[w(metadata={"a": 1}), w(metadata={"a": True}), w(metadata={"a": 1.0}, exact=True)])
@example(steps=[w(status="LOCKED", exact=True), w(percent="50"), w(exact=True), w()])  # LOCKED
@example(steps=[w(status="COMPLETED"), w(percent="40"), w(status="NOT_STARTED", duration=3)])
@example(  # a course or a user that does not exist, with the learner's own item or another's
    steps=[
        {**w(), "nowhere": True},
        {**w(item=FOREIGN, exact=True), "stranger": GHOST},
        {**w(exact=True), "stranger": GHOST},
        {**w(item=MISSING), "nowhere": True, "stranger": GHOST},
    ]
)
@example(  # merges past 16 KiB (a 400), and past a third of it (the Python path decides)
    steps=[w(metadata={"p": "x" * 9000}), w(metadata={"q": "x" * 9000}), w(metadata={"q": "y"})]
)
@example(
    steps=[
        w(status="COMPLETED", metadata={"p": "x" * 6000}),
        w(item=1, status="COMPLETED", metadata={"q": "é" * 3000}),  # completes the course
        w(item=1, metadata={"p": "x" * 3000}),
        move("DROPPED"),
        w(percent="99"),  # 409
        ENROL,  # re-enrolled: at once COMPLETED again, with a new date
        move("CERTIFIED", certificate=True),
        w(item=FOREIGN),
        w(item=1, status="LOCKED", exact=True),
    ]
)
@example(  # the enrollment's moves with and without the count (upsert_sql: an IN_PROGRESS row)
    steps=[
        w(status="NOT_STARTED"),  # no activity: counted, stays ENROLLED
        w(item=1, percent="10"),  # IN_PROGRESS without a count
        w(status="COMPLETED"),  # counted: one of two
        w(item=1, percent="20", exact=True),  # IN_PROGRESS stays, no count
        w(item=1, status="NOT_STARTED", exact=True),  # no activity on this row: counted
        w(item=1, status="COMPLETED"),  # counted: the course is complete
        w(percent="30", status="IN_PROGRESS", exact=True),  # COMPLETED stays COMPLETED
    ]
)
def test_the_sql_and_python_paths_agree(django_user_model, steps):
    with transaction.atomic():
        python_side, sql_side = make_side(django_user_model), make_side(django_user_model)
        clock = [START]
        previous = None
        for number, action in enumerate(steps):
            if action["op"] == "retry":
                if previous is None:
                    continue
                action = previous
            elif action["op"] == "write":
                previous = action
            clock[0] += timedelta(minutes=1)
            with frozen(clock):
                with python_path():
                    expected = run_step(python_side, action)
                got = run_step(sql_side, action)
            assert got == expected, (number, action)
            assert state(sql_side) == state(python_side), (number, action)
        transaction.set_rollback(True)


def test_the_installed_function_is_the_one_upsert_sql_builds(db):
    """A rule changed in progress/rules.py or upsert_sql.py needs a migration that installs the
    function again (upsert_sql.install): until then the database runs the old rule."""
    from django.db import connection

    from progress import upsert_sql

    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [upsert_sql.FUNCTION])
        installed = [source for (source,) in cursor.fetchall()]
    built = upsert_sql.function_sql().split("$fn$")[1]
    assert installed == [built]
