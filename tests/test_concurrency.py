"""Real threads against PostgreSQL: one row per item, and no lost completion."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from courseprogress.models import Course, CourseContent
from progress import services
from progress.models import ContentProgress, Enrollment
from tests.conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


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


def api_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_simultaneous_first_updates_make_one_row(make_user):
    course = Course.objects.create(title="Race")
    content = CourseContent.objects.create(course=course, title="Only", position=1)
    CourseContent.objects.create(course=course, title="Second", position=2)
    learner = make_user("racer")
    services.enrol(user_id=learner.pk, course_id=course.pk)
    client_count = 8
    clients = [api_client(learner) for _ in range(client_count)]

    def post(i):
        return lambda: clients[i].post(
            "/user-progress/update",
            {
                "courseId": course.pk,
                "courseContentId": content.pk,
                "progressStatus": "IN_PROGRESS",
                "progressPercent": 10 + i,
                "activityDuration": 100 - i,
                "metadata": {f"k{i}": i},
            },
            format="json",
        )

    responses = run_together([post(i) for i in range(client_count)])
    assert [r.status_code for r in responses] == [200] * client_count
    row = ContentProgress.objects.get(user=learner, content=content)
    assert ContentProgress.objects.filter(user=learner).count() == 1
    assert row.percent == Decimal(10 + client_count - 1)
    assert row.duration == 100
    assert row.metadata == {f"k{i}": i for i in range(client_count)}
    assert Enrollment.objects.get(user=learner).status == "IN_PROGRESS"


@pytest.mark.parametrize("attempt", range(3))
def test_simultaneous_last_completions_complete_the_enrollment(make_user, attempt):
    course = Course.objects.create(title=f"Finish {attempt}")
    items = [
        CourseContent.objects.create(course=course, title=f"c{i}", position=i) for i in range(4)
    ]
    learner = make_user(f"finisher{attempt}")
    services.enrol(user_id=learner.pk, course_id=course.pk)
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=items[0].pk, status="COMPLETED"
    )
    clients = [api_client(learner) for _ in items[1:]]

    def complete(client, item):
        return lambda: client.post(
            "/user-progress/update",
            {"courseId": course.pk, "courseContentId": item.pk, "progressStatus": "COMPLETED"},
            format="json",
        )

    responses = run_together(
        [complete(c, item) for c, item in zip(clients, items[1:], strict=True)]
    )
    assert [r.status_code for r in responses] == [200] * 3
    enrollment = Enrollment.objects.get(user=learner, course=course)
    assert enrollment.status == "COMPLETED"
    assert enrollment.completed_at is not None


def test_simultaneous_enrolments_make_one_enrollment(make_user):
    course = Course.objects.create(title="Popular")
    learner = make_user("eager")
    clients = [api_client(learner) for _ in range(6)]
    responses = run_together(
        [
            (
                lambda c=c: c.post(
                    "/user-progress/enrollments", {"courseId": course.pk}, format="json"
                )
            )
            for c in clients
        ]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 5 + [201]
    assert Enrollment.objects.filter(user=learner, course=course).count() == 1


def test_simultaneous_moves_follow_the_allowed_moves(make_user):
    """DROP and COMPLETE at once: exactly one wins, the other is refused, never both."""
    course = Course.objects.create(title="Moves")
    CourseContent.objects.create(course=course, title="c", position=1)
    admin = make_user("mover", perms=["view_all_progress"])
    learner = make_user("moved")
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    services.move_enrollment(enrollment.pk, "IN_PROGRESS")
    clients = [api_client(admin), api_client(admin)]
    url = f"/user-progress/enrollments/{enrollment.pk}"
    responses = run_together(
        [
            lambda: clients[0].patch(url, {"enrollmentStatus": "DROPPED"}, format="json"),
            lambda: clients[1].patch(url, {"enrollmentStatus": "COMPLETED"}, format="json"),
        ]
    )
    codes = sorted(r.status_code for r in responses)
    final = Enrollment.objects.get(pk=enrollment.pk).status
    # COMPLETED -> DROPPED is allowed, DROPPED -> COMPLETED is not.
    if final == "DROPPED":
        assert codes in ([200, 200], [200, 409])
    else:
        assert final == "COMPLETED"
        assert codes == [200, 409]
