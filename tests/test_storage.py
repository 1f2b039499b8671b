"""On PostgreSQL the migrations create the contract's schema (section 4)."""

import time

import pytest
from django.conf import settings
from django.db import close_old_connections, connection

from tests.conftest import requires_postgres

pytestmark = [pytest.mark.django_db, requires_postgres]


def columns(table):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT column_name, data_type, numeric_precision, numeric_scale
            FROM information_schema.columns WHERE table_name = %s
            """,
            [table],
        )
        return {
            name: (kind, precision, scale) for name, kind, precision, scale in cursor.fetchall()
        }


def unique_constraints(table):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT tc.constraint_name, kcu.column_name
            FROM information_schema.table_constraints tc
            JOIN information_schema.key_column_usage kcu
              ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name
            WHERE tc.table_name = %s AND tc.constraint_type IN ('UNIQUE', 'PRIMARY KEY')
            ORDER BY tc.constraint_name, kcu.ordinal_position
            """,
            [table],
        )
        found = {}
        for name, column in cursor.fetchall():
            found.setdefault(name, []).append(column)
        return sorted(tuple(cols) for cols in found.values())


def index_names(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def test_enrollments_table():
    cols = columns("enrollments")
    expected = {
        "enrollmentid": "integer",
        "userid": "integer",
        "courseid": "integer",
        "enrollmentstatus": "character varying",
        "enrollmentdate": "timestamp with time zone",
        "completiondate": "timestamp with time zone",
        "certificateurl": "character varying",
        "metadata": "jsonb",
        "enrollment_created_at": "timestamp with time zone",
        "enrollment_updated_at": "timestamp with time zone",
    }
    for name, kind in expected.items():
        assert cols[name][0] == kind, name
    assert unique_constraints("enrollments") == [("enrollmentid",), ("userid", "courseid")]
    assert {"idx_enrollments_course", "idx_enrollments_status"} <= index_names("enrollments")


def test_progress_table():
    cols = columns("user_course_content_progress")
    expected = {
        "progressid": "integer",
        "userid": "integer",
        "courseid": "integer",
        "coursecontentid": "integer",
        "progressstatus": "character varying",
        "activityduration": "integer",
        "progresspercent": "numeric",
        "metadata": "jsonb",
        "user_course_content_progress_created_at": "timestamp with time zone",
        "user_course_content_progress_updated_at": "timestamp with time zone",
    }
    for name, kind in expected.items():
        assert cols[name][0] == kind, name
    assert cols["progresspercent"][1:] == (5, 2)
    assert unique_constraints("user_course_content_progress") == [
        ("progressid",),
        ("userid", "courseid", "coursecontentid"),
    ]
    assert {"idx_progress_user_course", "idx_progress_content"} <= index_names(
        "user_course_content_progress"
    )


GUIDE_PROGRESS_INSERT = (
    "INSERT INTO user_course_content_progress (userId, courseId, courseContentId) "
    "VALUES (%s, %s, %s)"
)


def insert_guide_rows(learner, course, content):
    """An enrollment and a progress row by the guide's own INSERTs, every other column defaulted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO enrollments (userId, courseId) VALUES (%s, %s)", [learner.pk, course.pk]
        )
        cursor.execute(GUIDE_PROGRESS_INSERT, [learner.pk, course.pk, content.pk])


def test_guide_sql_runs_unchanged(learner, course, contents):
    """The guide's own INSERT and SELECT work against the tables, defaults included."""
    insert_guide_rows(learner, course, contents[0])
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT enrollmentStatus, TO_CHAR(enrollment_created_at, 'DD-Mon-YYYY') AS v_created_date
            FROM enrollments WHERE courseId = %s AND userId = %s
            """,
            [course.pk, learner.pk],
        )
        status, v_created_date = cursor.fetchone()
        cursor.execute(
            "SELECT progressStatus, activityDuration, progressPercent, metadata "
            "FROM user_course_content_progress WHERE courseId = %s",
            [course.pk],
        )
        progress_row = cursor.fetchone()
    assert status == "ENROLLED"
    assert len(v_created_date) == 11
    assert progress_row[:3] == ("NOT_STARTED", 0, 0)


@pytest.mark.parametrize(
    ("sql", "values"),
    [
        ("UPDATE enrollments SET enrollmentStatus = 'PAUSED'", []),
        ("UPDATE user_course_content_progress SET progressStatus = 'DONE'", []),
        ("UPDATE user_course_content_progress SET progressPercent = 100.5", []),
        ("UPDATE user_course_content_progress SET activityDuration = -1", []),
    ],
)
def test_check_constraints_refuse_bad_values(sql, values, learner, course, contents):
    from django.db import IntegrityError, transaction

    insert_guide_rows(learner, course, contents[0])
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, values)


def test_duplicate_rows_are_refused(learner, course, contents):
    from django.db import IntegrityError, transaction

    with connection.cursor() as cursor:
        cursor.execute(GUIDE_PROGRESS_INSERT, [learner.pk, course.pk, contents[0].pk])
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(GUIDE_PROGRESS_INSERT, [learner.pk, course.pk, contents[0].pk])


def test_sessions_run_without_jit_and_with_the_statement_timeout():
    """The app's PostgreSQL sessions: JIT off (it spent 25 of the course page's 45 ms compiling),
    and the statement timeout that keeps a stuck query below gunicorn's worker timeout."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
        assert int(cursor.fetchone()[0]) == settings.DB_STATEMENT_TIMEOUT_MS


def test_the_health_check_of_an_idle_connection_sends_nothing():
    """CONN_HEALTH_CHECKS asks the socket, not the server (courseprogress/db/base.py): no
    `SELECT 1` round trip before each request's first statement."""
    from unittest import mock

    connection.ensure_connection()
    raw = connection.connection
    with mock.patch.object(raw, "cursor", side_effect=AssertionError("a round trip")):
        assert connection.is_usable()


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_next_request(client):
    import psycopg

    client.get("/healthz")
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        # The server's goodbye reaches the socket before the next request starts.
        for _ in range(50):
            if not connection.is_usable():
                break
            time.sleep(0.02)
    assert not connection.is_usable()
    close_old_connections()  # what Django's handler runs as a request starts (the test client
    # leaves it out); the health check then runs before the request's first statement
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert connection.connection.info.backend_pid != old_pid
