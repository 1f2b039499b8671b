"""Change events are recorded by the database for every writer, in the writing transaction
(contract section 6); on both databases."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from progress import services
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, Event, ProgressStatus
from tests.conftest import requires_postgres
from tests.helpers import post_update


def events(**filters):
    return [
        (event.type, event.user_id, event.course_id, event.data)
        for event in Event.objects.filter(**filters).order_by("sequence")
    ]


def changed(row, status, percent, duration, previous=None):
    return {
        "progressId": row.pk,
        "courseContentId": row.content_id,
        "progressStatus": status,
        "progressPercent": percent,
        "activityDuration": duration,
        "previous": previous,
    }


@pytest.fixture
def mark():
    """The last sequence before the test's own writes: the events after it are the test's."""

    def events_since(start):
        return [
            (event.type, event.data)
            for event in Event.objects.filter(sequence__gt=start).order_by("sequence")
        ]

    class Mark:
        def __init__(self):
            self.start = Event.objects.order_by("-sequence").values_list("sequence", flat=True)
            self.start = self.start.first() or 0

        def since(self):
            return events_since(self.start)

    return Mark


def test_api_update_records_progress_and_enrollment_events(
    client_for, learner, course, contents, enrolled, mark
):
    start = mark()
    response = post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        progressPercent=40,
        activityDuration=12,
    )
    assert response.status_code == 200
    row = ContentProgress.objects.get(user=learner, content=contents[0])
    assert start.since() == [
        ("progress.changed", changed(row, "IN_PROGRESS", "40.00", 12)),
        (
            "enrollment.status_changed",
            {"enrollmentId": enrolled.pk, "from": "ENROLLED", "to": "IN_PROGRESS"},
        ),
    ]
    event = Event.objects.get(sequence__gt=start.start, type="progress.changed")
    assert (event.user_id, event.course_id) == (learner.pk, course.pk)

    # A retry that changes nothing records nothing; a merge that moves percent records it.
    post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        progressPercent=40,
        activityDuration=12,
    )
    assert len(start.since()) == 2
    post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    previous = {"progressStatus": "IN_PROGRESS", "progressPercent": "40.00", "activityDuration": 12}
    assert start.since()[2] == (
        "progress.changed",
        changed(row, "COMPLETED", "100.00", 12, previous),
    )


def test_enrol_move_and_delete_record_enrollment_events(learner, course, mark):
    start = mark()
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    services.move_enrollment(enrollment.pk, EnrollmentStatus.DROPPED)
    Enrollment.objects.filter(pk=enrollment.pk).delete()
    assert start.since() == [
        ("enrollment.created", {"enrollmentId": enrollment.pk, "enrollmentStatus": "ENROLLED"}),
        (
            "enrollment.status_changed",
            {"enrollmentId": enrollment.pk, "from": "ENROLLED", "to": "DROPPED"},
        ),
        ("enrollment.deleted", {"enrollmentId": enrollment.pk, "enrollmentStatus": "DROPPED"}),
    ]


def test_orm_writers_without_signals_record_events(learner, other_learner, course, contents, mark):
    Enrollment.objects.create(user=learner, course=course)
    start = mark()
    ContentProgress.objects.bulk_create(
        [
            ContentProgress(user=learner, course=course, content=contents[0], percent=10),
            ContentProgress(user=other_learner, course=course, content=contents[1], duration=3),
        ]
    )
    ids = sorted(
        ContentProgress.objects.filter(course=course).values_list("pk", "content_id"),
        key=lambda pair: pair[0],
    )
    assert [(kind, data["progressId"], data["previous"]) for kind, data in start.since()] == [
        ("progress.changed", pk, None) for pk, _ in ids
    ]
    assert {data["progressPercent"] for _, data in start.since()} == {"10.00", "0.00"}

    start = mark()
    # One UPDATE statement over two rows: two events; a metadata-only update: none.
    ContentProgress.objects.filter(course=course).update(duration=7)
    ContentProgress.objects.filter(course=course).update(metadata={"note": "x"})
    assert sorted(data["activityDuration"] for _, data in start.since()) == [7, 7]
    assert sorted(data["previous"]["activityDuration"] for _, data in start.since()) == [0, 3]

    start = mark()
    row = ContentProgress.objects.get(pk=ids[0][0])
    row.percent = Decimal("55.50")
    row.save()
    ContentProgress.objects.filter(course=course).delete()
    assert start.since()[0][1]["progressPercent"] == "55.50"
    assert sorted(kind for kind, _ in start.since()[1:]) == ["progress.deleted"] * 2


def test_plain_sql_from_the_guide_records_events(learner, course, contents, mark):
    start = mark()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO user_course_content_progress (userId, courseId, courseContentId, "
            "progressStatus, activityDuration, progressPercent) VALUES (%s, %s, %s, %s, %s, %s)",
            [learner.pk, course.pk, contents[0].pk, "IN_PROGRESS", 30, 45.5],
        )
        cursor.execute(
            "UPDATE user_course_content_progress SET progressStatus = 'COMPLETED', "
            "progressPercent = 100 WHERE userId = %s",
            [learner.pk],
        )
    row = ContentProgress.objects.get(user=learner)
    assert start.since() == [
        ("progress.changed", changed(row, "IN_PROGRESS", "45.50", 30)),
        (
            "progress.changed",
            changed(
                row,
                "COMPLETED",
                "100.00",
                30,
                {
                    "progressStatus": "IN_PROGRESS",
                    "progressPercent": "45.50",
                    "activityDuration": 30,
                },
            ),
        ),
    ]


def test_rolled_back_writes_record_nothing(learner, course, contents, enrolled, mark):
    start = mark()
    seen_inside = []

    def write_then_fail():
        with transaction.atomic():
            services.record_progress(
                user_id=learner.pk,
                course_id=course.pk,
                content_id=contents[0].pk,
                status=ProgressStatus.COMPLETED,
            )
            seen_inside.extend(start.since())
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert [kind for kind, _ in seen_inside] == ["progress.changed", "enrollment.status_changed"]
    assert start.since() == []
    assert not ContentProgress.objects.exists()


def test_a_refused_api_request_records_nothing(client_for, learner, course, contents, mark):
    start = mark()  # no enrollment: a 409, nothing written
    response = post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    assert response.status_code == 409
    assert start.since() == []


def test_commands_record_events(learner, course, enrolled, mark):
    Enrollment.objects.filter(pk=enrolled.pk).update(metadata={"expiresAt": "2020-01-01"})
    start = mark()
    call_command("expire_enrollments", verbosity=0)
    assert start.since() == [
        (
            "enrollment.status_changed",
            {"enrollmentId": enrolled.pk, "from": "ENROLLED", "to": "EXPIRED"},
        )
    ]


def test_admin_action_records_events(client, superuser, enrolled, mark):
    client.force_login(superuser)
    start = mark()
    response = client.post(
        "/admin/progress/enrollment/",
        {"action": "drop", "_selected_action": [enrolled.pk]},
    )
    assert response.status_code == 302
    assert start.since() == [
        (
            "enrollment.status_changed",
            {"enrollmentId": enrolled.pk, "from": "ENROLLED", "to": "DROPPED"},
        )
    ]


def test_events_have_the_contract_shape_in_the_feed(client_for, superuser, learner, enrolled):
    response = client_for(superuser).get("/user-progress/events", {"userId": learner.pk})
    assert response.status_code == 200
    [event] = response.json()["results"]
    assert event["id"].startswith("evt_")
    assert set(event) == {"id", "sequence", "type", "occurredAt", "courseId", "userId", "data"}
    assert event["type"] == "enrollment.created"
    assert event["occurredAt"].endswith("Z") and len(event["occurredAt"]) == 24
    assert (event["courseId"], event["userId"]) == (enrolled.course_id, learner.pk)


@requires_postgres
@pytest.mark.slow
def test_a_bulk_update_that_changes_no_status_is_linear(course, contents, mark):
    """The update triggers' "did anything change?" check is linear in the rows a statement
    touches, even after one-row statements on the same connection (event_sql.CHANGED_ROWS_CHECK).
    As a nested loop it compared every new row with every old one: 22 s for 10,000 enrollments,
    ~14 s for these 8,000; linear, each statement here takes a fraction of a second, far inside
    the 5 s allowed."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    users = User.objects.bulk_create(User(username=f"bulk{i}") for i in range(8_000))
    enrollments = Enrollment.objects.bulk_create(
        Enrollment(user=user, course=course) for user in users
    )
    ContentProgress.objects.bulk_create(
        ContentProgress(user=user, course=course, content=contents[0], percent=Decimal(10))
        for user in users
    )
    # One-row statements first, as the POSTs before a bulk statement on the same connection:
    # PL/pgSQL keeps the plan the first one made.
    for _ in range(6):
        Enrollment.objects.filter(pk=enrollments[0].pk).update(certificate_url=None)
        ContentProgress.objects.filter(user=users[0]).update(metadata={})
    start = mark()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        touched = Enrollment.objects.filter(course=course).update(certificate_url="https://x.test")
        rows = ContentProgress.objects.filter(course=course).update(metadata={"bulk": True})
    assert (touched, rows) == (len(users), len(users))
    assert start.since() == []  # nothing a subscriber is told about changed
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        Enrollment.objects.filter(course=course).update(status=EnrollmentStatus.DROPPED)
    assert [kind for kind, _ in start.since()] == ["enrollment.status_changed"] * len(users)
