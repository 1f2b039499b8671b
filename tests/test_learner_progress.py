"""GET /user-progress/{courseId}/{userId} (contract 3.1)."""

from datetime import UTC, datetime, timedelta

from django.db import connection

from progress.models import ContentProgress, Enrollment
from tests import factories


def url(course, user_id):
    return f"/user-progress/{course.pk}/{user_id}"


def test_body_of_an_enrolled_learner(client_for, course, contents, learner, enrolled):
    factories.record(learner, contents[0], "COMPLETED")
    factories.record(learner, contents[1], "IN_PROGRESS")
    body = client_for(learner).get(url(course, learner.pk)).json()
    assert body["message"] == "User progress retrieved successfully"
    enrollment = body["results"]["enrollments"]
    assert list(enrollment) == [
        "v_created_date",
        "v_created_time",
        "v_updated_date",
        "v_updated_time",
        "enrollmentId",
        "userId",
        "courseId",
        "enrollmentStatus",
        "enrollmentDate",
        "completionDate",
        "certificateUrl",
        "metadata",
        "enrollment_created_at",
        "enrollment_updated_at",
    ]
    assert enrollment["enrollmentId"] == enrolled.pk
    assert enrollment["enrollmentStatus"] == "IN_PROGRESS"
    assert enrollment["completionDate"] is None
    logs = body["results"]["activityLogs"]
    assert [log["courseContentId"] for log in logs] == [contents[1].pk, contents[0].pk]


def test_not_enrolled_is_null_enrollment(client_for, course, learner):
    body = client_for(learner).get(url(course, learner.pk)).json()
    assert body["results"] == {"enrollments": None, "activityLogs": []}


def test_missing_course_is_404_for_own_data(client_for, learner, db):
    response = client_for(learner).get(f"/user-progress/987654/{learner.pk}")
    assert response.status_code == 404


def test_missing_user_is_404_for_staff(client_for, instructor, course):
    assert client_for(instructor).get(url(course, 987654)).status_code == 404


def test_learner_asking_for_missing_user_is_403(client_for, learner, course):
    assert client_for(learner).get(url(course, 987654)).status_code == 403
    assert client_for(learner).get("/user-progress/987654/987655").status_code == 403


def test_instructor_of_another_course_gets_403_for_missing_course(
    client_for, other_instructor, learner, db
):
    assert (
        client_for(other_instructor).get(f"/user-progress/987654/{learner.pk}").status_code == 403
    )


def test_admin_gets_404_for_missing_course(client_for, admin_user, learner):
    assert client_for(admin_user).get(f"/user-progress/987654/{learner.pk}").status_code == 404


def test_timestamps_and_virtual_fields_in_kolkata(settings, client_for, course, contents, learner):
    """The guide's example: created 2025-10-13T17:50:51.683Z is 13-Oct-2025 23:20:51 in Kolkata."""
    settings.TIME_ZONE = "Asia/Kolkata"
    created = datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC)
    updated = datetime(2025, 10, 15, 17, 46, 6, 101000, tzinfo=UTC)
    enrollment = Enrollment.objects.create(user=learner, course=course, enrolled_at=created)
    Enrollment.objects.filter(pk=enrollment.pk).update(created_at=created, updated_at=updated)
    row = ContentProgress.objects.create(
        user=learner, course=course, content=contents[0], status="COMPLETED"
    )
    ContentProgress.objects.filter(pk=row.pk).update(
        created_at=updated - timedelta(seconds=1), updated_at=updated
    )
    Enrollment.objects.filter(pk=enrollment.pk).update(updated_at=updated)
    body = client_for(learner).get(url(course, learner.pk)).json()["results"]
    e = body["enrollments"]
    assert e["enrollmentDate"] == "2025-10-13T17:50:51.683Z"
    assert e["enrollment_created_at"] == "2025-10-13T17:50:51.683Z"
    assert e["enrollment_updated_at"] == "2025-10-15T17:46:06.101Z"
    assert (e["v_created_date"], e["v_created_time"]) == ("13-Oct-2025", "23:20:51")
    assert (e["v_updated_date"], e["v_updated_time"]) == ("15-Oct-2025", "23:16:06")
    log = body["activityLogs"][0]
    assert (log["v_updated_date"], log["v_updated_time"]) == ("15-Oct-2025", "23:16:06")
    assert (log["v_created_date"], log["v_created_time"]) == ("15-Oct-2025", "23:16:05")
    assert log["user_course_content_progress_updated_at"] == "2025-10-15T17:46:06.101Z"


def test_virtual_fields_in_utc_by_default(client_for, course, learner):
    created = datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC)
    enrollment = Enrollment.objects.create(user=learner, course=course)
    Enrollment.objects.filter(pk=enrollment.pk).update(created_at=created)
    e = client_for(learner).get(url(course, learner.pk)).json()["results"]["enrollments"]
    assert (e["v_created_date"], e["v_created_time"]) == ("13-Oct-2025", "17:50:51")


def test_query_count_does_not_grow_with_rows(
    client_for, course, learner, enrolled, django_assert_num_queries, make_user
):
    from courseprogress.models import CourseContent

    client = client_for(learner)

    def add_rows(n):
        start = course.contents.count()
        for i in range(n):
            content = CourseContent.objects.create(course=course, title=f"x{i}", position=start + i)
            ContentProgress.objects.create(user=learner, course=course, content=content)

    add_rows(1)
    client.get(url(course, learner.pk))  # warm the token lookup path
    from tests.conftest import clear_test_cache

    clear_test_cache()
    # token, then on PostgreSQL one statement that reads the cache stamp and writes the
    # enrollment and the rows as JSON; elsewhere the stamp, the enrollment, then the rows
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 4) as few:
        client.get(url(course, learner.pk))
    add_rows(30)
    clear_test_cache()
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(url(course, learner.pk))
    assert connection.vendor in {"sqlite", "postgresql"}
