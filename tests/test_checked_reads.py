"""Cached reads in fewer statements (bench/notes.md, issue 17, "the reads (third pass)").

- 3.1 on PostgreSQL: the entry is read first; with none, one statement returns the learner's
  stamp and the JSON; with one, the small stamp statement checks it (a hit runs nothing else).
  A stale or foreign entry is replaced; every write, by any writer, shows on the next read.
- 3.2 and 3.5: the course-staff check and the course stamp are one statement; 403 still comes
  before 404, and staff removed from a course are refused on their next request.
"""

import json

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from courseprogress.models import CourseStaff
from progress import read_cache, selectors, services
from progress.models import ContentProgress, Enrollment
from tests import factories
from tests.conftest import clear_test_cache

pytestmark = pytest.mark.django_db


def learner_url(course, user):
    return f"/user-progress/{course.pk}/{user.pk}"


def statements(call):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, len(ctx.captured_queries)


def uncached(course, user) -> dict:
    """3.1 as the database says now, through no cache."""
    data = read_cache.as_data(selectors.learner_progress(course_id=course.pk, user_id=user.pk))
    return json.loads(json.dumps(data))


def current_stamp(course, user) -> str:
    return read_cache.learner_version(course_id=course.pk, user_id=user.pk)


# --- 3.1: one statement, hit or miss -------------------------------------------------------------


def test_hit_and_miss_are_one_statement_each(client_for, learner, course, contents, enrolled):
    factories.record(learner, contents[0], "COMPLETED")
    client = client_for(learner)
    client.get(learner_url(course, learner))  # the token is cached from here on
    cache.delete(read_cache.learner_key(course.pk, learner.pk))
    miss, on_miss = statements(lambda: client.get(learner_url(course, learner)))
    hit, on_hit = statements(lambda: client.get(learner_url(course, learner)))
    assert miss.status_code == hit.status_code == 200
    assert hit.json() == miss.json()
    one = 1 if connection.vendor == "postgresql" else 3  # elsewhere: stamp, enrollment, rows
    assert (on_miss, on_hit) == (one, 1)


def test_a_current_entry_is_served_as_stored(client_for, learner, course, enrolled):
    """A hit serves the entry's bytes: nothing is computed when the stamps agree."""
    client = client_for(learner)
    client.get(learner_url(course, learner))
    key = read_cache.learner_key(course.pk, learner.pk)
    marked = {"enrollments": b'{"marked": true}', "activityLogs": b"[]"}
    cache.set(key, {"stamp": current_stamp(course, learner), "parts": marked})
    body = client.get(learner_url(course, learner)).json()["results"]
    assert body == {"enrollments": {"marked": True}, "activityLogs": []}


@pytest.mark.parametrize(("stamp", "on_postgres"), [("0.0", 2), (None, 1), (17, 1)])
def test_a_stale_or_foreign_entry_is_replaced(
    client_for, learner, course, contents, enrolled, stamp, on_postgres
):
    """A stale entry: the stamp, then the JSON (two statements on PostgreSQL); an entry of
    another shape counts as none: one statement reads both. Elsewhere: stamp, enrollment, rows."""
    factories.record(learner, contents[1], "IN_PROGRESS", percent=30)
    client = client_for(learner)
    client.get(learner_url(course, learner))
    key = read_cache.learner_key(course.pk, learner.pk)
    cache.set(key, {"stamp": stamp, "parts": {"enrollments": b"null", "activityLogs": b"[]"}})
    response, count = statements(lambda: client.get(learner_url(course, learner)))
    assert response.json()["results"] == uncached(course, learner)
    assert count == (on_postgres if connection.vendor == "postgresql" else 3)
    assert cache.get(key)["stamp"] == current_stamp(course, learner)


def test_a_hit_is_the_stamp_statement_alone(client_for, learner, course, contents, enrolled):
    """A hit runs the small stamp statement only: no JSON, no progress row read."""
    factories.record(learner, contents[0], "COMPLETED")
    client = client_for(learner)
    client.get(learner_url(course, learner))
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(learner_url(course, learner)).status_code == 200
    (only,) = ctx.captured_queries
    assert "user_course_content_progress" not in only["sql"]


def test_not_enrolled_answers_as_before(client_for, learner, other_learner, course, admin_user):
    client = client_for(admin_user)
    response = client.get(learner_url(course, learner))
    assert response.status_code == 200
    assert response.json()["results"] == {"enrollments": None, "activityLogs": []}
    assert client.get(f"/user-progress/{course.pk}/999999").status_code == 404
    assert client.get(f"/user-progress/999999/{learner.pk}").status_code == 404
    assert cache.get(read_cache.learner_key(course.pk, learner.pk)) is None  # not cached


def test_a_write_between_two_reads_is_always_seen(client_for, learner, course, contents, enrolled):
    """Read, write through the API, read: every time, the second read shows the write (the
    after-commit deletes never run in a test transaction: only the stamp keeps it fresh)."""
    client = client_for(learner)
    for step, content in enumerate(contents * 2):
        before = client.get(learner_url(course, learner)).json()["results"]
        posted = client.post(
            "/user-progress/update",
            {
                "courseId": course.pk,
                "courseContentId": content.pk,
                "progressStatus": "IN_PROGRESS",
                "progressPercent": 10 * (step + 1),
            },
            format="json",
        )
        assert posted.status_code == 200
        after = client.get(learner_url(course, learner)).json()["results"]
        assert after != before
        assert after == uncached(course, learner)
        row = next(r for r in after["activityLogs"] if r["courseContentId"] == content.pk)
        assert row["progressPercent"] == f"{10 * (step + 1)}.00"


def test_a_plain_sql_write_from_another_service_is_seen(
    client_for, learner, course, contents, enrolled
):
    factories.record(learner, contents[0], "IN_PROGRESS", percent=20)
    client = client_for(learner)
    client.get(learner_url(course, learner))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE user_course_content_progress SET progressPercent = 55"
            " WHERE userId = %s AND courseId = %s",
            [learner.pk, course.pk],
        )
    after = client.get(learner_url(course, learner)).json()["results"]
    assert [row["progressPercent"] for row in after["activityLogs"]] == ["55.00"]
    assert after == uncached(course, learner)


def test_a_write_deletes_no_cache_entry(
    client_for, learner, course, contents, enrolled, committed, monkeypatch
):
    """A POST costs no Redis delete (one round trip fewer): the stale entry stays until the
    next read, which replaces it."""
    client = client_for(learner)
    client.get(learner_url(course, learner))
    key = read_cache.learner_key(course.pk, learner.pk)
    old = cache.get(key)["stamp"]
    deletes = []
    for name in ("delete", "delete_many"):
        monkeypatch.setattr(cache, name, lambda *args, **kwargs: deletes.append(args))
    with committed():
        response = client.post(
            "/user-progress/update",
            {
                "courseId": course.pk,
                "courseContentId": contents[0].pk,
                "progressStatus": "COMPLETED",
            },
            format="json",
        )
    assert response.status_code == 200
    assert deletes == []
    assert cache.get(key)["stamp"] == old
    after = client.get(learner_url(course, learner)).json()["results"]
    assert [row["courseContentId"] for row in after["activityLogs"]] == [contents[0].pk]
    assert cache.get(key)["stamp"] == current_stamp(course, learner) != old


class Rollback(Exception):
    pass


steps = st.lists(
    st.tuples(
        st.sampled_from(["read", "api", "sql", "drop", "enrol", "delete_enrollment"]),
        st.integers(0, 2),
        st.integers(0, 100),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_any_sequence_of_writes_reads_as_uncached(
    steps, client_for, learner, admin_user, course, contents
):
    """Random writes (the API, plain SQL, moves, deletes) between reads of 3.1, by the learner
    and an admin: every read equals 3.1 computed with no cache (PostgreSQL: the one-statement
    path; SQLite: the stamp, then the reads)."""
    clients = [client_for(learner), client_for(admin_user)]

    def check():
        clear_test_cache()
        services.enrol(user_id=learner.pk, course_id=course.pk)
        for number, (action, item, value) in enumerate(steps):
            content = contents[item]
            enrollment = Enrollment.objects.filter(user=learner, course=course).first()
            if action == "api" and enrollment and enrollment.status in {"ENROLLED", "IN_PROGRESS"}:
                clients[1].post(
                    "/user-progress/update",
                    {
                        "userId": learner.pk,
                        "courseId": course.pk,
                        "courseContentId": content.pk,
                        "progressStatus": "IN_PROGRESS",
                        "progressPercent": value,
                    },
                    format="json",
                )
            elif action == "sql":
                ContentProgress.objects.filter(user=learner, content=content).update(percent=value)
            elif action == "drop" and enrollment and enrollment.status != "DROPPED":
                services.move_enrollment(enrollment.pk, "DROPPED")
            elif action == "enrol":
                services.enrol(user_id=learner.pk, course_id=course.pk)
            elif action == "delete_enrollment" and enrollment:
                enrollment.delete()
            response = clients[number % 2].get(learner_url(course, learner))
            assert response.status_code == 200
            assert response.json()["results"] == uncached(course, learner), (number, action)

    try:
        with transaction.atomic():
            check()
            raise Rollback
    except Rollback:
        pass


# --- 3.2 and 3.5: the staff check with the course stamp ----------------------------------------

COURSE_READS = ["analytics", "all"]


@pytest.mark.parametrize("read", COURSE_READS)
def test_403_before_404_for_a_missing_course(
    client_for, learner, instructor, other_instructor, admin_user, read
):
    url = f"/user-progress/course/999999/{read}"
    for refused in (learner, instructor, other_instructor):  # nobody teaches a missing course
        assert client_for(refused).get(url).status_code == 403
    assert client_for(admin_user).get(url).status_code == 404


@pytest.mark.parametrize("read", COURSE_READS)
def test_one_statement_for_staff_and_admins_on_a_hit(
    client_for, instructor, admin_user, course, enrolled, read
):
    url = f"/user-progress/course/{course.pk}/{read}"
    for user in (instructor, admin_user):
        client = client_for(user)
        first = client.get(url)
        second, count = statements(lambda client=client: client.get(url))
        assert first.status_code == second.status_code == 200
        assert count == 1  # the staff check with the stamp (the token is cached)


@pytest.mark.parametrize("read", COURSE_READS)
def test_staff_removed_from_a_course_are_refused_at_once(
    client_for, instructor, course, enrolled, read
):
    client = client_for(instructor)
    url = f"/user-progress/course/{course.pk}/{read}"
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200  # cached
    CourseStaff.objects.filter(user=instructor, course=course).delete()
    assert client.get(url).status_code == 403


def test_staff_added_by_plain_sql_are_allowed_at_once(client_for, make_user, course, enrolled):
    newcomer = make_user("newcomer")
    client = client_for(newcomer)
    url = f"/user-progress/course/{course.pk}/analytics"
    assert client.get(url).status_code == 403
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CourseStaff._meta.db_table} (user_id, course_id, role)"
            " VALUES (%s, %s, 'INSTRUCTOR')",
            [newcomer.pk, course.pk],
        )
    assert client.get(url).status_code == 200


def test_a_course_write_between_two_reads_is_seen(
    client_for, instructor, learner, course, contents, enrolled
):
    client = client_for(instructor)
    url = f"/user-progress/course/{course.pk}"
    before = client.get(f"{url}/analytics").json()["results"]
    page_before = client.get(f"{url}/all").json()["results"]
    factories.record(learner, contents[0], "COMPLETED")
    after = client.get(f"{url}/analytics").json()["results"]
    page_after = client.get(f"{url}/all").json()["results"]
    assert (before["totalActivities"], after["totalActivities"]) == (0, 1)
    assert (page_before[0]["progress"], page_after[0]["progress"]) == (0, 33.33)
