"""Cached reads: hits, invalidation by every write path, authorisation first, and Redis faults.

The fault tests start their own redis-server on a free port (and a TCP proxy in front of it)
so that they can stop, pause or cut it off without disturbing anything else.
"""

import os
import shutil
import threading
import time

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courseprogress.models import CourseContent
from progress import read_cache as progress_cache
from progress import selectors, services
from progress.models import ContentProgress, Enrollment
from tests import factories
from tests.conftest import requires_postgres
from tests.redis_tools import CuttableProxy, RedisServer, redis_cache_settings

needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"),
    reason="needs redis-server installed (CI always has it)",
)


def learner_url(course, user):
    return f"/user-progress/{course.pk}/{user.pk}"


def analytics_url(course):
    return f"/user-progress/course/{course.pk}/analytics"


def count_queries(call):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, len(ctx.captured_queries)


@pytest.fixture
def warm(client_for, learner, instructor, course, contents, enrolled):
    """A learner with one item done, and every cached read warmed."""
    factories.record(learner, contents[0], "COMPLETED")
    staff = client_for(instructor)
    mine = client_for(learner)

    def reads():
        return {
            "learner": mine.get(learner_url(course, learner)).json()["results"],
            "activities": mine.get(learner_url(course, learner) + "/activities").json(),
            "page": staff.get(f"/user-progress/course/{course.pk}/all").json(),
            "analytics": staff.get(analytics_url(course)).json()["results"],
        }

    reads()
    return reads


# --- hits and misses --------------------------------------------------------------------------


def test_cached_learner_read_makes_only_the_version_query(client_for, learner, course, enrolled):
    client = client_for(learner)
    _, cold = count_queries(lambda: client.get(learner_url(course, learner)))
    response, hot = count_queries(lambda: client.get(learner_url(course, learner)))
    assert response.status_code == 200
    # cold: token, then on PostgreSQL one statement (the stamp, the enrollment and its rows);
    # elsewhere the stamp, the enrollment, the rows; hot: the stamp only (the token is cached)
    assert (cold, hot) == (2 if connection.vendor == "postgresql" else 4, 1)


def test_cached_analytics_make_no_analytics_query(client_for, instructor, course, enrolled):
    client = client_for(instructor)
    _, cold = count_queries(lambda: client.get(analytics_url(course)))
    with CaptureQueriesContext(connection) as ctx:
        client.get(analytics_url(course))
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    assert cold == 5
    # the staff check and the course stamp, one statement (the token is cached)
    assert len(ctx.captured_queries) == 1
    assert "user_course_content_progress" not in sql


def test_entries_of_another_layout_are_misses_not_errors(client_for, learner, course, enrolled):
    """While old and new workers run side by side (a rolling deploy), neither may trip on the
    other's entries: the keys name the layout, and an entry of any other shape is recomputed."""
    from django.core.cache import cache

    assert progress_cache.learner_key(course.pk, learner.pk) != f"learner:{course.pk}:{learner.pk}"
    client = client_for(learner)
    fresh = client.get(learner_url(course, learner)).json()
    version = Enrollment.objects.get(pk=enrolled.pk).cache_version
    key = progress_cache.learner_key(course.pk, learner.pk)
    cache.set(key, {"stamp": version, "data": {"enrollments": None, "activityLogs": []}})
    response = client.get(learner_url(course, learner))
    assert response.status_code == 200
    assert response.json() == fresh


# --- every write path invalidates ---------------------------------------------------------------


def test_update_endpoint_invalidates(warm, client_for, learner, course, contents):
    response = client_for(learner).post(
        "/user-progress/update",
        {"courseId": course.pk, "courseContentId": contents[1].pk, "progressStatus": "COMPLETED"},
        format="json",
    )
    assert response.status_code == 200
    after = warm()
    assert len(after["learner"]["activityLogs"]) == 2
    assert after["activities"]["pagination"]["totalItems"] == 2
    assert after["page"]["results"][0]["progress"] == 66.67
    assert after["analytics"]["totalActivities"] == 2


def test_patch_invalidates(warm, client_for, instructor, enrolled):
    client_for(instructor).patch(
        f"/user-progress/enrollments/{enrolled.pk}", {"enrollmentStatus": "DROPPED"}, format="json"
    )
    after = warm()
    assert after["learner"]["enrollments"]["enrollmentStatus"] == "DROPPED"
    assert after["page"]["results"][0]["enrollments"]["enrollmentStatus"] == "DROPPED"
    assert after["analytics"]["activeUsers"] == 0


def test_enrol_endpoint_invalidates(
    warm, client_for, make_user, instructor, learner, course, enrolled
):
    services.move_enrollment(enrolled.pk, "EXPIRED")
    warm()
    client_for(learner).post("/user-progress/enrollments", {"courseId": course.pk}, format="json")
    newcomer = make_user("newcomer")
    client_for(instructor).post(
        "/user-progress/enrollments", {"courseId": course.pk, "userId": newcomer.pk}, format="json"
    )
    after = warm()
    assert after["learner"]["enrollments"]["enrollmentStatus"] == "IN_PROGRESS"  # has activity
    assert after["analytics"]["totalEnrollments"] == 2
    assert after["page"]["pagination"]["totalItems"] == 2


def test_a_plain_model_save_invalidates(warm, learner, course, contents):
    """The admin and the shell save models; the signal bumps the version."""
    row = ContentProgress.objects.get(user=learner, content=contents[0])
    row.duration = 42
    row.save()
    after = warm()
    assert after["learner"]["activityLogs"][0]["activityDuration"] == 42
    assert after["analytics"]["contentEngagement"][0]["avgDuration"] == 42


def test_a_deleted_row_invalidates(warm, learner, contents):
    ContentProgress.objects.get(user=learner, content=contents[0]).delete()
    after = warm()
    assert after["learner"]["activityLogs"] == []
    assert after["analytics"]["totalActivities"] == 0


def test_new_content_invalidates_course_reads(warm, course):
    CourseContent.objects.create(course=course, title="New", position=10)
    after = warm()
    assert after["page"]["results"][0]["progress"] == 25
    assert len(after["analytics"]["contentEngagement"]) == 4


def test_a_deleted_enrollment_invalidates(warm, enrolled):
    Enrollment.objects.filter(pk=enrolled.pk).delete()
    after = warm()
    assert after["learner"]["enrollments"] is None
    assert after["analytics"]["totalEnrollments"] == 0


def test_service_moves_invalidate(warm, enrolled):
    services.move_enrollment(enrolled.pk, "EXPIRED")  # the admin actions and commands call this
    assert warm()["learner"]["enrollments"]["enrollmentStatus"] == "EXPIRED"


# --- authorisation runs before the cache --------------------------------------------------------


def test_a_warm_entry_is_never_served_to_someone_who_may_not_see_it(
    client_for, instructor, learner, other_learner, course, enrolled
):
    staff = client_for(instructor)
    assert staff.get(learner_url(course, learner)).status_code == 200
    assert staff.get(analytics_url(course)).status_code == 200
    assert staff.get(f"/user-progress/course/{course.pk}/all").status_code == 200
    intruder = client_for(other_learner)
    assert intruder.get(learner_url(course, learner)).status_code == 403
    assert intruder.get(analytics_url(course)).status_code == 403
    assert client_for(learner).get(analytics_url(course)).status_code == 403
    assert intruder.get(f"/user-progress/course/{course.pk}/all").status_code == 403


# --- stampede -----------------------------------------------------------------------------------


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_expired_analytics_entry_is_computed_about_once(
    client_for, make_user, monkeypatch, course, contents
):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    admin = make_user("busy_admin", perms=["view_all_progress"])
    token = Token.objects.create(user=admin).key
    calls = []
    real = selectors.course_analytics

    def slow_analytics(**kwargs):
        calls.append(kwargs)
        time.sleep(0.3)  # a heavy course: the others arrive while this one computes
        return real(**kwargs)

    monkeypatch.setattr(selectors, "course_analytics", slow_analytics)
    barrier = threading.Barrier(8)
    codes = []

    def hit():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        barrier.wait()
        codes.append(client.get(analytics_url(course)).status_code)
        connection.close()

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 8
    assert 1 <= len(calls) <= 2


# --- Redis faults -------------------------------------------------------------------------------


@pytest.fixture
def private_redis(settings):
    server = RedisServer().start()
    settings.CACHES = redis_cache_settings(server.url)
    settings.THROTTLE_CACHE = "default"  # as with REDIS_URL set: the throttles count in Redis
    yield server
    server.close()


def every_endpoint(client_for, learner, instructor, course, contents, enrolled):
    mine, staff = client_for(learner), client_for(instructor)
    return {
        "learner": mine.get(learner_url(course, learner)).status_code,
        "activities": mine.get(learner_url(course, learner) + "/activities").status_code,
        "page": staff.get(f"/user-progress/course/{course.pk}/all").status_code,
        "analytics": staff.get(analytics_url(course)).status_code,
        "bulk": staff.post(
            "/user-progress/bulk", {"courseId": course.pk, "userIds": [learner.pk]}, format="json"
        ).status_code,
        "update": mine.post(
            "/user-progress/update",
            {
                "courseId": course.pk,
                "courseContentId": contents[2].pk,
                "progressStatus": "IN_PROGRESS",
            },
            format="json",
        ).status_code,
        "enrol": mine.post(
            "/user-progress/enrollments", {"courseId": course.pk}, format="json"
        ).status_code,
        "patch": staff.patch(
            f"/user-progress/enrollments/{enrolled.pk}", {"metadata": {"x": 1}}, format="json"
        ).status_code,
    }


@needs_redis_server
def test_redis_stopped_mid_test(
    private_redis, client_for, learner, instructor, course, contents, enrolled, anon
):
    assert set(
        every_endpoint(client_for, learner, instructor, course, contents, enrolled).values()
    ) == {200}
    assert anon.get("/healthz").json()["cache"] == "ok"
    private_redis.kill()
    assert set(
        every_endpoint(client_for, learner, instructor, course, contents, enrolled).values()
    ) == {200}
    health = anon.get("/healthz")
    assert health.status_code == 200
    assert health.json()["cache"] == "degraded"
    # A write while Redis is down, then Redis comes back (empty): the write is seen.
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
    )
    private_redis.start()
    assert anon.get("/healthz").json()["cache"] == "ok"
    body = client_for(learner).get(learner_url(course, learner)).json()["results"]
    assert {log["courseContentId"] for log in body["activityLogs"]} >= {contents[0].pk}


@needs_redis_server
def test_redis_paused_is_answered_from_the_database(
    private_redis, client_for, learner, course, contents, enrolled
):
    client = client_for(learner)
    assert client.get(learner_url(course, learner)).status_code == 200
    private_redis.pause()
    try:
        services.record_progress(
            user_id=learner.pk, course_id=course.pk, content_id=contents[1].pk, status="COMPLETED"
        )
        started = time.monotonic()
        response = client.get(learner_url(course, learner))
        elapsed = time.monotonic() - started
    finally:
        private_redis.resume()
    assert response.status_code == 200
    assert [log["courseContentId"] for log in response.json()["results"]["activityLogs"]] == [
        contents[1].pk
    ]
    # A hang detector, not a speed target: a few cache calls of 0.25 s each at most.
    assert elapsed < 5


@needs_redis_server
def test_a_lost_invalidation_never_serves_the_old_entry(
    private_redis, settings, client_for, learner, instructor, course, contents, enrolled
):
    proxy = CuttableProxy(private_redis.port)
    settings.CACHES = redis_cache_settings(proxy.url)
    try:
        mine, staff = client_for(learner), client_for(instructor)
        assert mine.get(learner_url(course, learner)).json()["results"]["activityLogs"] == []
        assert staff.get(analytics_url(course)).json()["results"]["totalActivities"] == 0
        proxy.cut()
        services.record_progress(  # Redis is cut off while the write commits
            user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
        )
        proxy.heal()
        # Redis kept the old entries all along ...
        direct = redis.Redis(port=private_redis.port)
        prefix = settings.CACHES["default"]["KEY_PREFIX"]
        kept = {key.decode() for key in direct.keys(f"{prefix}:*")}
        assert any(progress_cache.learner_key(course.pk, learner.pk) in key for key in kept)
        assert any(progress_cache.analytics_key(course.pk) in key for key in kept)
        # ... yet the next reads show the write.
        logs = mine.get(learner_url(course, learner)).json()["results"]["activityLogs"]
        assert [log["courseContentId"] for log in logs] == [contents[0].pk]
        assert staff.get(analytics_url(course)).json()["results"]["totalActivities"] == 1
    finally:
        proxy.close()


def test_cache_is_the_configured_one(settings):
    """Tests hit real Redis when REDIS_URL is set; local memory only on the embedded defaults."""
    from django.core.cache import caches

    backend = type(caches["default"]).__name__
    assert backend == ("RedisCache" if os.environ.get("REDIS_URL") else "LocMemCache")


def test_the_suite_deletes_only_the_keys_it_wrote(settings):
    """`make test` on a REDIS_URL that holds someone's data (the README's own example) leaves
    that data alone: the tests write under their own prefix and delete only that."""
    from django.core.cache import caches
    from django.test import override_settings

    from tests.conftest import TEST_KEY_PREFIX, clear_test_cache

    server = RedisServer().start()
    try:
        others = redis.Redis(port=server.port)
        others.set("cp:1:learner:v2:1:1", b"the app's entry")
        others.set("somebody-else", b"not ours")
        private = redis_cache_settings(server.url)
        private["default"]["KEY_PREFIX"] = TEST_KEY_PREFIX
        with override_settings(CACHES=private):
            caches["default"].set("mine", 1)
            caches["default"].set("mine", 2, version=7)
            assert others.dbsize() == 4
            clear_test_cache(caches["default"])
            assert sorted(others.keys()) == [b"cp:1:learner:v2:1:1", b"somebody-else"]
    finally:
        server.close()
    # Whatever the mode, the suite's own cache never has the app's prefix.
    assert settings.CACHES["default"].get("KEY_PREFIX") != "cp"


@pytest.mark.parametrize(
    ("cached", "asked", "field"),
    [
        ("?limit=2&order=desc", "?limit=2%26order%3Ddesc", "limit"),
        ("?status=ENROLLED&limit=2", "?status=ENROLLED%26limit%3D2", "status"),
        ("?page=1&limit=2", "?page=1%26limit%3D2", "page"),
    ],
)
def test_an_escaped_ampersand_never_finds_another_requests_entry(
    client_for, instructor, course, enrolled, cached, asked, field
):
    """Validation runs before the cache is consulted, and the key is built from the validated
    values, so a value holding "&" and "=" is a bad value, not another request's page."""
    client = client_for(instructor)
    url = f"/user-progress/course/{course.pk}/all"
    assert client.get(url + cached).status_code == 200
    response = client.get(url + asked)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_an_escaped_ampersand_in_activities_is_a_400_after_a_cached_page(
    client_for, learner, course, enrolled
):
    client = client_for(learner)
    url = f"/user-progress/{course.pk}/{learner.pk}/activities"
    assert client.get(url + "?limit=2&status=COMPLETED").status_code == 200
    response = client.get(url + "?limit=2%26status%3DCOMPLETED")
    assert response.status_code == 400
    assert "limit" in response.json()["errors"]


def test_equal_validated_parameters_share_one_entry(
    client_for, instructor, course, enrolled, django_assert_num_queries
):
    client = client_for(instructor)
    url = f"/user-progress/course/{course.pk}/all"
    first = client.get(url + "?page=1&limit=20&order=asc").json()
    with django_assert_num_queries(1):  # staff check with the course stamp (token cached): a hit
        second = client.get(url + "?order=asc&limit=20&page=01").json()
    assert second == first
