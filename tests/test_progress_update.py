"""POST /user-progress/update (contract 3.3)."""

from decimal import Decimal

import pytest

from courseprogress.models import CourseStaff
from progress import services
from progress.models import ContentProgress, Enrollment
from progress.serializers import ProgressUpdateIn
from tests.helpers import PROGRESS_ROW_KEYS, post_update, snapshot


@pytest.fixture
def learner_client(client_for, learner):
    return client_for(learner)


def row_for(user, content):
    return ContentProgress.objects.get(user=user, content=content)


# --- the happy path and the response --------------------------------------------------------


def test_first_update_creates_the_row(learner_client, learner, course, contents, enrolled):
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        activityDuration=15,
        progressPercent=40.5,
        metadata={"position": 120},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Progress updated successfully"
    result = body["results"]
    row = row_for(learner, contents[0])
    assert result["progressId"] == row.pk
    assert result["userId"] == learner.pk
    assert result["courseId"] == course.pk
    assert result["courseContentId"] == contents[0].pk
    assert result["progressStatus"] == "IN_PROGRESS"
    assert result["activityDuration"] == 15
    assert result["progressPercent"] == "40.50"
    assert result["metadata"] == {"position": 120}
    assert list(result) == PROGRESS_ROW_KEYS
    assert row.percent == Decimal("40.50")
    assert row.duration == 15


def test_completed_without_percent_stores_100(learner_client, learner, course, contents, enrolled):
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    assert response.json()["results"]["progressPercent"] == "100.00"
    assert row_for(learner, contents[0]).percent == Decimal("100.00")


def test_unknown_body_fields_are_ignored(learner_client, learner, course, contents, enrolled):
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        enrollmentStatus="CERTIFIED",
        progressId=999,
        user_course_content_progress_created_at="2000-01-01T00:00:00Z",
    )
    assert response.status_code == 200
    enrolled.refresh_from_db()
    assert enrolled.status == "IN_PROGRESS"
    row = row_for(learner, contents[0])
    assert row.pk != 999
    assert row.created_at.year != 2000


# --- the learner merge ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        ("COMPLETED", "IN_PROGRESS", "COMPLETED"),
        ("COMPLETED", "NOT_STARTED", "COMPLETED"),
        ("IN_PROGRESS", "NOT_STARTED", "IN_PROGRESS"),
        ("NOT_STARTED", "IN_PROGRESS", "IN_PROGRESS"),
        ("IN_PROGRESS", "COMPLETED", "COMPLETED"),
    ],
)
def test_learner_status_keeps_the_further(
    learner_client, learner, course, contents, enrolled, first, second, kept
):
    for status in (first, second):
        post_update(
            learner_client,
            courseId=course.pk,
            courseContentId=contents[0].pk,
            progressStatus=status,
        )
    assert row_for(learner, contents[0]).status == kept


def test_learner_percent_and_duration_keep_the_larger(
    learner_client, learner, course, contents, enrolled
):
    base = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    post_update(learner_client, **base, progressPercent=60, activityDuration=30)
    response = post_update(learner_client, **base, progressPercent=20, activityDuration=5)
    assert response.json()["results"]["progressPercent"] == "60.00"
    assert response.json()["results"]["activityDuration"] == 30
    post_update(learner_client, **base, progressPercent=75.25, activityDuration=31)
    row = row_for(learner, contents[0])
    assert (row.percent, row.duration) == (Decimal("75.25"), 31)


def test_learner_metadata_keys_overwrite(learner_client, learner, course, contents, enrolled):
    base = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    post_update(learner_client, **base, metadata={"a": 1, "b": 2})
    post_update(learner_client, **base, metadata={"b": 3, "c": 4})
    assert row_for(learner, contents[0]).metadata == {"a": 1, "b": 3, "c": 4}


def test_omitted_fields_keep_stored_values(learner_client, learner, course, contents, enrolled):
    base = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    post_update(learner_client, **base, progressPercent=50, activityDuration=10, metadata={"k": 1})
    post_update(learner_client, **base)
    row = row_for(learner, contents[0])
    assert (row.percent, row.duration, row.metadata) == (Decimal("50.00"), 10, {"k": 1})


def test_learner_may_name_themself(learner_client, learner, course, contents, enrolled):
    response = post_update(
        learner_client,
        userId=learner.pk,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    assert response.status_code == 200


# --- system users and admins set exactly ------------------------------------------------------


@pytest.mark.parametrize("actor", ["system_user", "admin_user", "superuser"])
def test_privileged_callers_set_values_exactly(
    request, client_for, actor, learner, course, contents, enrolled
):
    client = client_for(request.getfixturevalue(actor))
    base = {"userId": learner.pk, "courseId": course.pk, "courseContentId": contents[0].pk}
    post_update(
        client, **base, progressStatus="COMPLETED", activityDuration=50, metadata={"a": 1, "b": 2}
    )
    response = post_update(
        client,
        **base,
        progressStatus="IN_PROGRESS",
        progressPercent=10,
        activityDuration=5,
        metadata={"c": 3},
    )
    assert response.status_code == 200
    row = row_for(learner, contents[0])
    assert (row.status, row.percent, row.duration, row.metadata) == (
        "IN_PROGRESS",
        Decimal("10.00"),
        5,
        {"c": 3},
    )


def test_privileged_omitted_fields_keep_stored(
    client_for, system_user, learner, course, contents, enrolled
):
    client = client_for(system_user)
    base = {"userId": learner.pk, "courseId": course.pk, "courseContentId": contents[0].pk}
    post_update(
        client, **base, progressStatus="IN_PROGRESS", progressPercent=30, activityDuration=9
    )
    post_update(client, **base, progressStatus="IN_PROGRESS")
    row = row_for(learner, contents[0])
    assert (row.percent, row.duration) == (Decimal("30.00"), 9)


def test_system_user_without_user_id_updates_own_row(client_for, system_user, course, contents):
    services.enrol(user_id=system_user.pk, course_id=course.pk)
    response = post_update(
        client_for(system_user),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    assert response.status_code == 200
    assert response.json()["results"]["userId"] == system_user.pk


# --- LOCKED ---------------------------------------------------------------------------------


def test_only_privileged_callers_lock(client_for, system_user, learner, course, contents, enrolled):
    before = snapshot()
    response = post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="LOCKED",
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Access denied"
    assert snapshot() == before
    response = post_update(
        client_for(system_user),
        userId=learner.pk,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="LOCKED",
    )
    assert response.status_code == 200
    assert row_for(learner, contents[0]).status == "LOCKED"


def test_learner_cannot_update_locked_content(
    client_for, system_user, learner, course, contents, enrolled
):
    post_update(
        client_for(system_user),
        userId=learner.pk,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="LOCKED",
    )
    before = snapshot()
    response = post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    assert response.status_code == 409
    assert snapshot() == before


def test_privileged_caller_unlocks(client_for, system_user, learner, course, contents, enrolled):
    client = client_for(system_user)
    base = {"userId": learner.pk, "courseId": course.pk, "courseContentId": contents[0].pk}
    post_update(client, **base, progressStatus="LOCKED")
    post_update(client, **base, progressStatus="NOT_STARTED")
    response = post_update(
        client_for(learner),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    assert response.status_code == 200
    assert row_for(learner, contents[0]).status == "IN_PROGRESS"


# --- the order of checks (roles: tests/test_authorization_matrix.py) --------------------------


def test_403_comes_before_400(learner_client, other_learner):
    response = post_update(learner_client, userId=other_learner.pk, courseId="x", progressStatus=5)
    assert response.status_code == 403


def test_404_comes_before_400(learner_client):
    response = post_update(learner_client, courseId=987654, courseContentId="x", progressStatus="?")
    assert response.status_code == 404


def test_a_valid_body_for_a_missing_course_is_404_and_writes_nothing(
    learner_client, other_course, learner
):
    # The content exists, in another course: the write fails on it, the 404 still wins.
    services.enrol(user_id=learner.pk, course_id=other_course.pk)
    before = snapshot()
    response = post_update(
        learner_client,
        courseId=987654,
        courseContentId=other_course.contents.first().pk,
        progressStatus="COMPLETED",
    )
    assert (response.status_code, response.json()["message"]) == (404, "Course not found.")
    assert snapshot() == before


def test_a_valid_body_naming_a_missing_user_is_404_not_409(
    client_for, system_user, course, contents
):
    before = snapshot()
    response = post_update(
        client_for(system_user),
        userId=987654,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    assert (response.status_code, response.json()["message"]) == (404, "User not found.")
    assert snapshot() == before


def test_a_valid_body_for_content_of_another_course_and_a_missing_user_is_404(
    client_for, system_user, course, other_course
):
    response = post_update(
        client_for(system_user),
        userId=987654,
        courseId=course.pk,
        courseContentId=other_course.contents.first().pk,
        progressStatus="COMPLETED",
    )
    assert (response.status_code, response.json()["message"]) == (404, "User not found.")


def test_content_of_another_course_is_400(learner_client, course, other_course, enrolled):
    before = snapshot()
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=other_course.contents.first().pk,
        progressStatus="COMPLETED",
    )
    assert response.status_code == 400
    assert "courseContentId" in response.json()["errors"]
    assert snapshot() == before


def test_not_enrolled_is_409(learner_client, learner, course, contents):
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    assert response.status_code == 409
    assert not ContentProgress.objects.exists()


@pytest.mark.parametrize("status", ["DROPPED", "EXPIRED"])
def test_inactive_enrollment_is_409(learner_client, learner, course, contents, enrolled, status):
    services.move_enrollment(enrolled.pk, status)
    before = snapshot()
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
    )
    assert response.status_code == 409
    assert snapshot() == before


def test_400_comes_before_409(learner_client, course, contents):
    response = post_update(
        learner_client, courseId=course.pk, courseContentId=contents[0].pk, progressStatus="DONE"
    )
    assert response.status_code == 400


# --- bad input changes nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("progressStatus", "DONE"),
        ("progressStatus", None),
        ("progressStatus", 3),
        ("courseContentId", "1"),
        ("courseContentId", None),
        ("courseContentId", 1.5),
        ("courseContentId", True),
        ("activityDuration", -1),
        ("activityDuration", "10"),
        ("activityDuration", 1.5),
        ("activityDuration", True),
        ("activityDuration", 2**40),
        ("progressPercent", -0.01),
        ("progressPercent", 100.01),
        ("progressPercent", 33.333),
        ("progressPercent", "50"),
        ("progressPercent", True),
        ("progressPercent", None),
        ("metadata", []),
        ("metadata", "text"),
        ("metadata", 5),
        ("metadata", {"blob": "x" * 17000}),
        # Outside signed 64 bits: orjson cannot write it, JavaScript would round it.
        ("metadata", {"a": 2**64}),
        ("metadata", {"a": 2**63}),
        ("metadata", {"a": [-(2**63) - 1]}),
        ("metadata", {"a": {"b": 10**30}}),
    ],
)
def test_bad_fields_are_400_and_change_nothing(
    learner_client, learner, course, contents, enrolled, field, value
):
    body = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    post_update(learner_client, **body, progressPercent=10)
    before = snapshot()
    body[field] = value
    response = post_update(learner_client, **body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_400(learner_client, course, contents, enrolled, literal):
    payload = (
        f'{{"courseId": {course.pk}, "courseContentId": {contents[0].pk}, '
        f'"progressStatus": "IN_PROGRESS", "progressPercent": {literal}}}'
    )
    response = learner_client.post(
        "/user-progress/update", data=payload, content_type="application/json"
    )
    assert response.status_code == 400
    assert not ContentProgress.objects.exists()


@pytest.mark.parametrize("payload", ["[]", '"text"', "42", "null"])
def test_body_must_be_an_object(learner_client, enrolled, payload):
    response = learner_client.post(
        "/user-progress/update", data=payload, content_type="application/json"
    )
    assert response.status_code == 400


def test_missing_required_fields_are_listed(learner_client, enrolled):
    response = post_update(learner_client)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"courseId", "courseContentId", "progressStatus"}


def test_update_bodies_validated_side_by_side_keep_their_own_values_and_errors():
    """ProgressUpdateIn copies its declared fields shallowly (its get_fields): two bodies
    validated at once, one good and one bad, each keep their own values and errors, and the
    declared fields stay unbound for the next request."""
    good = ProgressUpdateIn(
        data={"courseId": 1, "courseContentId": 2, "progressStatus": "COMPLETED", "userId": 3}
    )
    bad = ProgressUpdateIn(
        data={"courseId": 0, "courseContentId": 2, "progressStatus": "DONE", "progressPercent": 1.5}
    )
    assert all(good.fields[name] is not bad.fields[name] for name in good.fields)
    assert bad.is_valid() is False
    assert good.is_valid() is True
    assert good.validated_data == {
        "courseId": 1,
        "courseContentId": 2,
        "progressStatus": "COMPLETED",
        "userId": 3,
    }
    assert set(bad.errors) == {"courseId", "progressStatus"}
    assert bad.errors["progressStatus"] == [
        '"DONE" is not a valid choice; use one of: NOT_STARTED, IN_PROGRESS, COMPLETED, LOCKED.'
    ]
    assert bad.validated_data == {}
    assert all(field.parent is None for field in ProgressUpdateIn._declared_fields.values())


# --- enrollment side effects ------------------------------------------------------------------


def test_first_activity_moves_enrolled_to_in_progress(learner_client, course, contents, enrolled):
    before = Enrollment.objects.get(pk=enrolled.pk).updated_at
    post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    enrolled.refresh_from_db()
    assert enrolled.status == "IN_PROGRESS"
    assert enrolled.updated_at > before
    assert enrolled.completed_at is None


@pytest.mark.parametrize("status", ["NOT_STARTED"])
def test_not_started_is_not_activity(learner_client, course, contents, enrolled, status):
    post_update(
        learner_client, courseId=course.pk, courseContentId=contents[0].pk, progressStatus=status
    )
    enrolled.refresh_from_db()
    assert enrolled.status == "ENROLLED"


def test_locked_is_not_activity(client_for, system_user, learner, course, contents, enrolled):
    post_update(
        client_for(system_user),
        userId=learner.pk,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="LOCKED",
    )
    enrolled.refresh_from_db()
    assert enrolled.status == "ENROLLED"


def test_completing_every_item_completes_the_enrollment(learner_client, course, contents, enrolled):
    for content in contents:
        post_update(
            learner_client,
            courseId=course.pk,
            courseContentId=content.pk,
            progressStatus="COMPLETED",
        )
    enrolled.refresh_from_db()
    assert enrolled.status == "COMPLETED"
    assert enrolled.completed_at is not None


def test_status_does_not_move_without_change(learner_client, course, contents, enrolled):
    base = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    post_update(learner_client, **base)
    first = Enrollment.objects.get(pk=enrolled.pk).updated_at
    post_update(learner_client, **base, activityDuration=3)
    assert Enrollment.objects.get(pk=enrolled.pk).updated_at == first


def test_completed_enrollment_never_goes_back(
    client_for, system_user, learner, course, contents, enrolled
):
    learner_client = client_for(learner)
    for content in contents:
        post_update(
            learner_client,
            courseId=course.pk,
            courseContentId=content.pk,
            progressStatus="COMPLETED",
        )
    completed_at = Enrollment.objects.get(pk=enrolled.pk).completed_at
    # New content, and a row corrected downwards, leave it COMPLETED.
    course.contents.create(title="Bonus", position=9)
    post_update(
        client_for(system_user),
        userId=learner.pk,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        progressPercent=10,
    )
    enrolled.refresh_from_db()
    assert enrolled.status == "COMPLETED"
    assert enrolled.completed_at == completed_at


def test_certified_learner_may_still_post(learner_client, learner, course, contents, enrolled):
    for content in contents:
        post_update(
            learner_client,
            courseId=course.pk,
            courseContentId=content.pk,
            progressStatus="COMPLETED",
        )
    services.move_enrollment(enrolled.pk, "CERTIFIED", certificate_url="https://example.com/c/1")
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="COMPLETED",
        activityDuration=99,
    )
    assert response.status_code == 200
    enrolled.refresh_from_db()
    assert enrolled.status == "CERTIFIED"


def test_instructor_of_the_course_still_posts_only_for_themself(
    client_for, instructor, course, contents
):
    # Course staff are not system users: they may post their own progress if enrolled.
    assert CourseStaff.objects.filter(user=instructor, course=course).exists()
    services.enrol(user_id=instructor.pk, course_id=course.pk)
    response = post_update(
        client_for(instructor),
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
    )
    assert response.status_code == 200


# --- cost -------------------------------------------------------------------------------------


def test_a_learner_update_is_a_handful_of_statements(
    learner_client, learner, course, contents, enrolled, django_assert_num_queries
):
    """Token and permissions come from the token cache; the write locks the enrollment once.

    The course's and the user's existence (404) cost no statement of their own when the body is
    valid: the write tells them apart from the rest only when it fails (progress/views.py).

    PostgreSQL: the write, its checks and the automatic moves, one call of cp_record_progress
    (progress/upsert_sql.py). Inside the test's transaction the call runs in a savepoint
    (SAVEPOINT | call | RELEASE), as inside any caller's transaction; a request runs it outside
    any, as one statement: test_concurrency pins that (1 in all).

    SQLite, the Python path: BEGIN | lock the enrollment, content in the course | the row |
    UPDATE the row | the learner's counts | COMMIT. The status did not move,
    so the enrollment is not written by the service; the database's trigger moves its cache
    stamp.

    Without Redis the throttle counts in a database table every worker shares
    (settings.THROTTLE_CACHE): read the count | count the table (culling) | BEGIN | find the
    entry | UPDATE it | COMMIT. With Redis that is one Redis read and write, no query.
    """
    from django.conf import settings
    from django.db import connection

    throttle = 0 if settings.THROTTLE_CACHE == "default" else 6
    write = 3 if connection.vendor == "postgresql" else 6
    fields = {"courseId": course.pk, "courseContentId": contents[0].pk}
    post_update(learner_client, **fields, progressStatus="IN_PROGRESS", progressPercent=10)
    with django_assert_num_queries(write + throttle):
        response = post_update(
            learner_client, **fields, progressStatus="IN_PROGRESS", progressPercent=20
        )
    assert response.status_code == 200
    assert row_for(learner, contents[0]).percent == Decimal("20.00")
    enrolled.refresh_from_db()
    assert enrolled.status == "IN_PROGRESS"


def test_a_learner_update_is_two_redis_round_trips(
    settings, monkeypatch, learner_client, course, contents, enrolled, committed
):
    """With Redis: the token entry and the permission set in one read (MGET), the throttle's
    sliding log in one script (EVALSHA); no delete of the superseded read entries (their stamps
    moved: progress/read_cache.py). A Redis of its own, so that it counts the same without
    REDIS_URL."""
    import redis

    from tests.redis_tools import RedisServer, redis_cache_settings

    server = RedisServer().start()
    try:
        settings.CACHES = redis_cache_settings(server.url)
        settings.THROTTLE_CACHE = "default"
        fields = {"courseId": course.pk, "courseContentId": contents[0].pk}
        for percent in (10, 20):  # the entries stored, the script loaded
            with committed():
                post_update(
                    learner_client,
                    **fields,
                    progressStatus="IN_PROGRESS",
                    **{"progressPercent": percent},
                )
        commands = []
        real = redis.Redis.execute_command

        def counted(self, *args, **kwargs):
            commands.append(args[0])
            return real(self, *args, **kwargs)

        monkeypatch.setattr(redis.Redis, "execute_command", counted)
        with committed():
            response = post_update(
                learner_client, **fields, progressStatus="IN_PROGRESS", progressPercent=30
            )
        assert response.status_code == 200
        assert commands == ["MGET", "EVALSHA"]
    finally:
        server.close()


def test_metadata_integers_at_the_64_bit_bounds_are_kept(
    learner_client, learner, course, contents, enrolled
):
    metadata = {"max": 2**63 - 1, "min": -(2**63)}
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        metadata=metadata,
    )
    assert response.status_code == 200
    assert response.json()["results"]["metadata"] == metadata
    assert row_for(learner, contents[0]).metadata == metadata


def test_the_size_rule_applies_to_the_merged_metadata(
    learner_client, learner, course, contents, enrolled
):
    """Each update is under 16 KiB, but the stored object they merge into may not pass it."""
    base = {"courseId": course.pk, "courseContentId": contents[0].pk}
    first = post_update(
        learner_client, **base, progressStatus="IN_PROGRESS", metadata={"a": "x" * 9000}
    )
    assert first.status_code == 200
    before = snapshot()
    second = post_update(
        learner_client, **base, progressStatus="COMPLETED", metadata={"b": "y" * 9000}
    )
    assert second.status_code == 400
    assert second.json()["errors"] == {
        "metadata": [
            "Metadata may be at most 16384 bytes as JSON, counting the stored keys this update"
            " merges with."
        ]
    }
    assert snapshot() == before  # the status did not move either
    # Overwriting a stored key keeps the object small: accepted.
    third = post_update(
        learner_client, **base, progressStatus="COMPLETED", metadata={"a": "z" * 9000}
    )
    assert third.status_code == 200
    assert row_for(learner, contents[0]).metadata == {"a": "z" * 9000}


def test_a_boolean_over_the_number_it_equals_in_python_is_a_change(
    learner_client, learner, course, contents, enrolled
):
    """JSON's false is not 0 (Python's False == 0 is): the update is stored and answered."""
    base = {"courseId": course.pk, "courseContentId": contents[0].pk}
    post_update(learner_client, **base, progressStatus="IN_PROGRESS", metadata={"done": 0})
    response = post_update(
        learner_client, **base, progressStatus="IN_PROGRESS", metadata={"done": False}
    )
    assert response.status_code == 200
    assert response.json()["results"]["metadata"] == {"done": False}
    stored = row_for(learner, contents[0]).metadata["done"]
    assert stored is False
    read = learner_client.get(f"/user-progress/{course.pk}/{learner.pk}").json()["results"]
    assert read["activityLogs"][0]["metadata"] == {"done": False}


def test_a_float_stored_as_an_integer_beyond_64_bits_is_refused(
    learner_client, learner, course, contents, enrolled
):
    """jsonb stores 1e20 as the integer 100000000000000000000: refused as such an integer."""
    before = snapshot()
    response = post_update(
        learner_client,
        courseId=course.pk,
        courseContentId=contents[0].pk,
        progressStatus="IN_PROGRESS",
        metadata={"big": 1e20},
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["metadata"]
    assert snapshot() == before
