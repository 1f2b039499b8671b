"""Each enrollment's progress total is kept by the database (progress/total_sql.py): whoever
writes the progress rows, and however, every enrollment's `progress_total` equals the sum of its
learner's item scores in the course, counted again from the rows (in hundredths, exactly).

The property test runs random sequences of writes through every path (the service as learner,
system and admin, on PostgreSQL its Python path too, Model.save, QuerySet.update, bulk_create,
delete, plain SQL, content deleted, enrollments deleted and made again or moved, rows moved to
another learner or course, stale enrollment saves) on both databases. The threads test holds
the total exact under concurrent writers on PostgreSQL, where a recount would miss a row.
"""

import io
from contextlib import nullcontext
from decimal import Decimal
from unittest import mock

import psycopg
import psycopg.conninfo
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from courseprogress.exceptions import Conflict
from courseprogress.models import Course, CourseContent
from progress import rules, services, total_sql
from progress.models import ContentProgress, Enrollment
from tests.conftest import requires_postgres
from tests.helpers import run_together

REFUSED = (IntegrityError, Conflict, PermissionDenied, ValidationError)
STATUSES = ["NOT_STARTED", "IN_PROGRESS", "COMPLETED", "LOCKED"]
USERS, COURSES = 3, 2


def hundredths(status: str, percent) -> int:
    """A row's score in hundredths, by rules.STATUS_SCORES, in Python."""
    if status in rules.STATUS_SCORES:
        return rules.STATUS_SCORES[status] * 100
    return int((Decimal(str(percent)) * 100).to_integral_value())


def recounted() -> dict[tuple[int, int], int]:
    totals: dict[tuple[int, int], int] = {}
    for user_id, course_id, status, percent in ContentProgress.objects.values_list(
        "user_id", "course_id", "status", "percent"
    ):
        key = (user_id, course_id)
        totals[key] = totals.get(key, 0) + hundredths(status, percent)
    return totals


def assert_every_total_recounts():
    totals = recounted()
    stored = {
        (user_id, course_id): total
        for user_id, course_id, total in Enrollment.objects.values_list(
            "user_id", "course_id", "progress_total"
        )
    }
    assert stored == {key: totals.get(key, 0) for key in stored}


# --- the installed triggers are the ones total_sql builds ---------------------------------------


def test_the_installed_triggers_are_the_ones_total_sql_builds(db):
    """A score rule changed in rules.py or total_sql.py needs a migration that installs the
    triggers again: until then the database keeps totals by the old rule."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            built = {
                name: sql.split("$fn$")[1] for name, sql in total_sql.postgres_functions().items()
            }
            cursor.execute(
                "SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(%s)",
                [list(total_sql.FUNCTIONS)],
            )
            assert dict(cursor.fetchall()) == built
        else:
            built_sqlite = [sql for sql in total_sql.sqlite_install() if sql.startswith("CREATE")]
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name IN (%s, %s)"
                " ORDER BY name DESC",
                ["cp_enrollments_version", "cp_enrollments_counted"],
            )
            assert [sql for (sql,) in cursor.fetchall()] == built_sqlite
    assert "COMPLETED' THEN 10000" in total_sql.score_sql("r")  # rules.STATUS_SCORES


# --- every writer keeps every total -------------------------------------------------------------


def make_world(django_user_model):
    users = [django_user_model.objects.create(username=f"total-{i}") for i in range(USERS)]
    courses = []
    for size in (3, 2):
        course = Course.objects.create(title=f"Totals {size}")
        for position in range(1, size + 1):
            CourseContent.objects.create(course=course, title=f"{position}", position=position)
        courses.append(course)
    for user, course in [(0, 0), (1, 0), (0, 1)]:  # user 2 writes rows without an enrollment
        services.enrol(user_id=users[user].pk, course_id=courses[course].pk)
    return users, courses


def content_of(course, item):
    contents = list(course.contents.order_by("position", "pk"))
    return contents[item % len(contents)] if contents else None


def row_of(users, courses, step):
    return (
        ContentProgress.objects.filter(user=users[step["user"]], course=courses[step["course"]])
        .order_by("pk")
        .first()
    )


def run_step(users, courses, step):
    op = step["op"]
    user, course = users[step["user"]], courses[step["course"]]
    status, percent = step["status"], step["percent"]
    content = content_of(course, step["item"])
    if op in ("learner", "system", "python") and content is not None:
        in_python = mock.patch.object(services, "RECORD_PROGRESS_IN_SQL", False)
        with in_python if op == "python" else nullcontext():
            services.record_progress(
                user_id=user.pk,
                course_id=course.pk,
                content_id=content.pk,
                status=status,
                percent=percent,
                exact=op != "learner",
            )
    elif op == "save" and (row := row_of(users, courses, step)):
        row.status, row.percent = status, percent
        row.save()
    elif op == "queryset_update":
        ContentProgress.objects.filter(user=user, course=course).update(
            status=status, percent=percent
        )
    elif op == "bulk_create":
        ContentProgress.objects.bulk_create(
            [
                ContentProgress(user=user, course=course, content=item, status=status, percent=p)
                for item, p in zip(
                    course.contents.all(), [percent, Decimal("33.33"), 0], strict=False
                )
            ],
            ignore_conflicts=True,
        )
    elif op == "delete" and content is not None:
        ContentProgress.objects.filter(user=user, content=content).delete()
    elif op == "sql_update":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE user_course_content_progress SET progressstatus = %s,"
                " progresspercent = %s WHERE userid = %s AND courseid = %s",
                [status, percent, user.pk, course.pk],
            )
    elif op == "sql_delete":
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM user_course_content_progress WHERE userid = %s AND courseid = %s"
                " AND progresspercent <= %s",
                [user.pk, course.pk, percent],
            )
    elif op == "content_delete" and content is not None:
        content.delete()
    elif op == "content_add":
        CourseContent.objects.create(course=course, title="added", position=9)
    elif op == "re_enrol":
        Enrollment.objects.filter(user=user, course=course).delete()
        services.enrol(user_id=user.pk, course_id=course.pk)
    elif op == "move_row" and (row := row_of(users, courses, step)):
        other = users[(step["user"] + 1) % USERS]
        ContentProgress.objects.filter(pk=row.pk).update(user=other)
    elif op == "move_row_course" and (row := row_of(users, courses, step)):
        other = courses[(step["course"] + 1) % COURSES]
        target = content_of(other, step["item"])
        if target is not None:
            ContentProgress.objects.filter(pk=row.pk).update(course=other, content=target)
    elif op == "move_enrollment":
        other = users[(step["user"] + 1) % USERS]
        Enrollment.objects.filter(user=user, course=course).update(user=other)
    elif op == "stale_enrollment":
        enrollment = Enrollment.objects.filter(user=user, course=course).first()
        if enrollment is not None:
            if content is not None:  # the total moves after the enrollment was read
                ContentProgress.objects.filter(user=user, content=content).update(
                    status="COMPLETED"
                )
            enrollment.progress_total = 123_456
            enrollment.save()
            Enrollment.objects.filter(pk=enrollment.pk).update(progress_total=-7)


OPS = [
    "learner",
    "system",
    "python",
    "save",
    "queryset_update",
    "bulk_create",
    "delete",
    "sql_update",
    "sql_delete",
    "content_delete",
    "content_add",
    "re_enrol",
    "move_row",
    "move_row_course",
    "move_enrollment",
    "stale_enrollment",
]
step = st.fixed_dictionaries(
    {
        "op": st.sampled_from(OPS),
        "user": st.integers(0, USERS - 1),
        "course": st.integers(0, COURSES - 1),
        "item": st.integers(0, 2),
        "status": st.sampled_from(STATUSES),
        # two decimals, as the column holds: 0.29 * 100 is not whole in floating point
        "percent": st.one_of(
            st.sampled_from([Decimal("0.29"), Decimal("0.57"), Decimal("99.99"), Decimal(100)]),
            st.decimals(0, 100, places=2, allow_nan=False, allow_infinity=False),
        ),
    }
)


def s(op, user=0, course=0, item=0, status="IN_PROGRESS", percent="12.34"):
    return {
        "op": op,
        "user": user,
        "course": course,
        "item": item,
        "status": status,
        "percent": Decimal(percent),
    }


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
@example(  # rows outlive the enrollment: made again, it starts from them
    steps=[s("learner", percent="0.29"), s("system", item=1, status="COMPLETED"), s("re_enrol")]
)
@example(  # a row moved to another learner, then to another course
    steps=[s("bulk_create", percent="0.57"), s("move_row"), s("move_row_course", user=1)]
)
@example(steps=[s("learner"), s("stale_enrollment", item=1), s("move_enrollment", user=1)])
@example(steps=[s("bulk_create", user=2), s("re_enrol", user=2), s("content_delete", user=2)])
def test_every_writer_keeps_every_total(django_user_model, steps):
    with transaction.atomic():
        users, courses = make_world(django_user_model)
        for action in steps:
            try:
                with transaction.atomic():
                    run_step(users, courses, action)
            except REFUSED:  # a 400, 403 or 409, or a row that would not be unique: no change
                pass
            assert_every_total_recounts()
        transaction.set_rollback(True)


def test_the_course_page_reads_the_kept_total(client_for, learner, instructor, course, contents):
    """3.2's progress is progress_total / 100 / items, and a total a writer tried to set is
    not what the page shows."""
    services.enrol(user_id=learner.pk, course_id=course.pk)
    for content, percent in zip(contents, ["0.29", "33.33"], strict=False):
        services.record_progress(
            user_id=learner.pk,
            course_id=course.pk,
            content_id=content.pk,
            status="IN_PROGRESS",
            percent=Decimal(percent),
        )
    Enrollment.objects.filter(user=learner).update(progress_total=30_000)
    body = client_for(instructor).get(f"/user-progress/course/{course.pk}/all").json()
    assert [entry["progress"] for entry in body["results"]] == [11.21]  # 33.62 / 3
    assert Enrollment.objects.get(user=learner).progress_total == 3362


@requires_postgres
@pytest.mark.django_db
def test_truncate_empties_every_total(learner, course, contents, enrolled):
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
    )
    assert Enrollment.objects.get(pk=enrolled.pk).progress_total == 10_000
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending
        cursor.execute("TRUNCATE user_course_content_progress")
    assert Enrollment.objects.get(pk=enrolled.pk).progress_total == 0


# --- concurrent writers -------------------------------------------------------------------------


THREADS = 8


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_posts_of_one_learner_end_with_the_exact_total(make_user, attempt):
    course = Course.objects.create(title="Race")
    contents = [
        CourseContent.objects.create(course=course, title=f"{i}", position=i)
        for i in range(THREADS)
    ]
    learner = make_user("racer")
    services.enrol(user_id=learner.pk, course_id=course.pk)
    token = Token.objects.get_or_create(user=learner)[0].key

    def post(i):
        def call():
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            return client.post(
                "/user-progress/update",
                {
                    "courseId": course.pk,
                    "courseContentId": contents[i].pk,
                    "progressStatus": "COMPLETED" if i % 3 == 0 else "IN_PROGRESS",
                    "progressPercent": float(f"{10 + i}.{i}7"),
                },
                format="json",
            )

        return call

    responses = run_together([post(i) for i in range(THREADS)])
    assert [r.status_code for r in responses] == [200] * THREADS
    expected = sum(10_000 if i % 3 == 0 else (10 + i) * 100 + i * 10 + 7 for i in range(THREADS))
    assert Enrollment.objects.get(user=learner).progress_total == expected
    assert_every_total_recounts()


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_plain_sql_writers_end_with_the_exact_total(make_user, attempt):
    """Writers that never lock the enrollment first (plain SQL from another service): each
    statement's trigger waits for the others' lock on the enrollment, then adds its delta to
    the row they committed. A recount in that UPDATE would use its statement's old snapshot
    and lose the rows committed meanwhile."""
    course = Course.objects.create(title="Plain race")
    contents = [
        CourseContent.objects.create(course=course, title=f"{i}", position=i)
        for i in range(THREADS)
    ]
    learner = make_user("plain-racer")
    services.enrol(user_id=learner.pk, course_id=course.pk)

    def insert(i):
        def call():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO user_course_content_progress"
                    " (userid, courseid, coursecontentid, progressstatus, progresspercent)"
                    " VALUES (%s, %s, %s, 'IN_PROGRESS', %s)",
                    [learner.pk, course.pk, contents[i].pk, Decimal(f"{i}.01")],
                )

        return call

    results = run_together([insert(i) for i in range(THREADS)])
    assert results == [None] * THREADS
    expected = sum(i * 100 + 1 for i in range(THREADS))
    assert Enrollment.objects.get(user=learner).progress_total == expected
    assert_every_total_recounts()


# --- the repair: recount_progress_totals ------------------------------------------------------


def corrupt_total(enrollment, value: int) -> None:
    """Set a total as no writer can (the triggers guard it): what a race would leave."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # no triggers
        else:
            cursor.execute("DROP TRIGGER cp_enrollments_version")
        Enrollment.objects.filter(pk=enrollment.pk).update(progress_total=value)
        if connection.vendor == "postgresql":  # a savepoint's release keeps SET LOCAL
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            for statement in total_sql.sqlite_install():
                if "cp_enrollments_version" in statement:  # the one dropped above
                    cursor.execute(statement)


def recount(*args) -> str:
    out = io.StringIO()
    call_command("recount_progress_totals", *args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_the_recount_repairs_a_drifted_total_and_nothing_else(learner, course, contents, enrolled):
    ContentProgress.objects.create(
        user=learner, course=course, content=contents[0], status="COMPLETED", percent=100
    )
    enrollment = Enrollment.objects.get(user=learner, course=course)
    assert enrollment.progress_total == 10000
    corrupt_total(enrollment, 4242)
    version = Enrollment.objects.get(pk=enrollment.pk).cache_version

    assert recount("--dry-run") == f"1 enrollment total(s) would be counted again: {enrollment.pk}"
    assert Enrollment.objects.get(pk=enrollment.pk).progress_total == 4242
    assert recount("--course", str(course.pk + 1000)) == "0 enrollment total(s) counted again"
    assert recount("--course", str(course.pk)) == (
        f"1 enrollment total(s) counted again: {enrollment.pk}"
    )
    repaired = Enrollment.objects.get(pk=enrollment.pk)
    assert (repaired.progress_total, repaired.cache_version > version) == (10000, True)
    assert recount() == "0 enrollment total(s) counted again"
    assert_every_total_recounts()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_enrollment_made_while_its_rows_are_written_is_repaired(make_user):
    """The one race the triggers leave (total_sql): the enrollment is inserted while another
    transaction writes the learner's row; each misses the other's uncommitted work. This test
    shows the drift, so that whoever closes the race sees it here, and the repair."""
    course = Course.objects.create(title="Race")
    content = CourseContent.objects.create(course=course, title="Only", position=1)
    learner = make_user("latecomer")
    settings = connection.settings_dict
    dsn = psycopg.conninfo.make_conninfo(
        dbname=settings["NAME"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
    )
    with psycopg.connect(dsn) as enrol, psycopg.connect(dsn) as write:
        enrol.execute(
            "INSERT INTO enrollments (userid, courseid) VALUES (%s, %s)", [learner.pk, course.pk]
        )
        write.execute(
            "INSERT INTO user_course_content_progress"
            " (userid, courseid, coursecontentid, progressstatus, progresspercent)"
            " VALUES (%s, %s, %s, 'COMPLETED', 100)",
            [learner.pk, course.pk, content.pk],
        )
        write.commit()
        enrol.commit()
    enrollment = Enrollment.objects.get(user=learner, course=course)
    assert enrollment.progress_total == 0  # the drift: the row counted by neither side
    assert recount() == f"1 enrollment total(s) counted again: {enrollment.pk}"
    assert Enrollment.objects.get(pk=enrollment.pk).progress_total == 10000
