"""GET /user-progress/events: roles, filters, limits, the cursor, retention (contract section 6)."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from courseprogress.models import Course, CourseContent
from progress import services
from progress.models import Event, EventPruneMark
from tests.conftest import requires_postgres
from tests.helpers import post_update

URL = "/user-progress/events"


@pytest.fixture
def activity(learner, other_learner, course, other_course, contents):
    """learner and other_learner enrolled in course (and learner in other_course), with one
    progress update each in course."""
    for user in (learner, other_learner):
        services.enrol(user_id=user.pk, course_id=course.pk)
        services.record_progress(
            user_id=user.pk, course_id=course.pk, content_id=contents[0].pk, status="IN_PROGRESS"
        )
    services.enrol(user_id=learner.pk, course_id=other_course.pk)


def feed(client, **params):
    response = client.get(URL, params)
    return response


def pairs(response):
    return [
        (event["type"], event["userId"], event["courseId"]) for event in response.json()["results"]
    ]


def test_anonymous_gets_401(anon):
    assert anon.get(URL).status_code == 401


def test_learner_sees_only_their_own_events(
    client_for, learner, other_learner, course, other_course, activity
):
    response = feed(client_for(learner))
    assert response.status_code == 200
    assert pairs(response) == [
        ("enrollment.created", learner.pk, course.pk),
        ("progress.changed", learner.pk, course.pk),
        ("enrollment.status_changed", learner.pk, course.pk),
        ("enrollment.created", learner.pk, other_course.pk),
    ]
    # Their own, named; and their own in one course.
    assert pairs(feed(client_for(learner), userId=learner.pk)) == pairs(response)
    assert len(pairs(feed(client_for(learner), courseId=other_course.pk))) == 1


@pytest.mark.parametrize("user_id", ["other", "999999", "abc", "0"])
def test_learner_naming_anyone_else_gets_403(client_for, learner, other_learner, activity, user_id):
    value = other_learner.pk if user_id == "other" else user_id
    response = feed(client_for(learner), userId=value)
    assert response.status_code == 403
    assert response.json() == {"success": False, "message": "Access denied"}


def test_course_staff_see_their_course(
    client_for, instructor, learner, other_learner, course, activity
):
    response = feed(client_for(instructor))
    assert response.status_code == 200
    assert {(user, course_id) for _, user, course_id in pairs(response)} == {
        (learner.pk, course.pk),
        (other_learner.pk, course.pk),
    }
    named = feed(client_for(instructor), courseId=course.pk, userId=other_learner.pk)
    assert {user for _, user, _ in pairs(named)} == {other_learner.pk}


def test_course_staff_asking_for_another_course_get_403(
    client_for, instructor, other_course, activity
):
    assert feed(client_for(instructor), courseId=other_course.pk).status_code == 403
    assert feed(client_for(instructor), courseId="abc").status_code == 403
    # Their own events as a learner elsewhere, named as such, are theirs to read.
    assert (
        feed(client_for(instructor), courseId=other_course.pk, userId=instructor.pk).status_code
        == 200
    )


def test_admin_sees_everything_and_system_users_get_403(
    client_for, admin_user, superuser, system_user, activity
):
    assert len(feed(client_for(admin_user)).json()["results"]) == 7
    assert len(feed(client_for(superuser)).json()["results"]) == 7
    assert feed(client_for(system_user)).status_code == 403


def test_filters_by_course_user_and_type(
    client_for, superuser, learner, course, other_course, activity
):
    client = client_for(superuser)
    assert {c for _, _, c in pairs(feed(client, courseId=other_course.pk))} == {other_course.pk}
    assert {u for _, u, _ in pairs(feed(client, userId=learner.pk))} == {learner.pk}
    by_type = feed(client, type="enrollment.created")
    assert [kind for kind, _, _ in pairs(by_type)] == ["enrollment.created"] * 3
    repeated = client.get(f"{URL}?type=enrollment.created&type=progress.changed")
    comma = feed(client, type="enrollment.created,progress.changed")
    assert pairs(repeated) == pairs(comma)
    assert sorted({kind for kind, _, _ in pairs(comma)}) == [
        "enrollment.created",
        "progress.changed",
    ]
    assert len(pairs(comma)) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("after=1_0", "after"),
        ("after=%D9%A3", "after"),
        ("after=", "after"),
        ("after=1&after=2", "after"),
        ("courseId=0", "courseId"),
        ("courseId=x", "courseId"),
        ("userId=2147483648", "userId"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("limit=" + "0" * 30, "limit"),
        ("type=enrollment.updated", "type"),
        ("type=enrollment.created,", "type"),
        ("type=", "type"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(client_for, superuser, query, field):
    response = client_for(superuser).get(f"{URL}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert list(body["errors"]) == [field]


def test_limit_default_and_maximum(client_for, superuser, learner, course, contents):
    services.enrol(user_id=learner.pk, course_id=course.pk)
    rows = [(learner.pk, course.pk, contents[0].pk, "IN_PROGRESS", n, 1) for n in range(1, 1101)]
    with connection.cursor() as cursor:  # 1,100 updates of one row, one event each
        cursor.execute(
            "INSERT INTO user_course_content_progress (userId, courseId, courseContentId, "
            "progressStatus, activityDuration, progressPercent) VALUES (%s, %s, %s, %s, %s, %s)",
            rows[0],
        )
        for row in rows[1:]:
            cursor.execute(
                "UPDATE user_course_content_progress SET activityDuration = %s WHERE userId = %s",
                [row[4], learner.pk],
            )
    client = client_for(superuser)
    first = feed(client).json()
    assert len(first["results"]) == 100
    assert first["pagination"]["limit"] == 100
    assert first["pagination"]["hasMore"] is True
    assert feed(client, limit="1" + "0" * 40).json()["pagination"]["limit"] == 1000
    big = feed(client, limit=5000).json()
    assert big["pagination"]["limit"] == 1000
    assert len(big["results"]) == 1000
    rest = feed(client, after=big["pagination"]["next"], limit=5000).json()
    assert len(rest["results"]) == 101  # 1 enrollment.created + 1,100 progress.changed in all
    assert rest["pagination"]["hasMore"] is False
    sequences = [e["sequence"] for e in big["results"] + rest["results"]]
    assert sequences == sorted(set(sequences))


def test_following_next_pages_through_every_event_once(client_for, superuser, activity):
    client = client_for(superuser)
    everything = [e["sequence"] for e in feed(client).json()["results"]]
    seen, after = [], None
    for _ in range(20):
        params = {"limit": 2} if after is None else {"limit": 2, "after": after}
        body = feed(client, **params).json()
        seen += [e["sequence"] for e in body["results"]]
        after = body["pagination"]["next"]
        assert body["pagination"]["after"] <= after
        if not body["pagination"]["hasMore"]:
            break
    assert seen == everything
    # At the end: nothing more, and `next` stays put.
    last = feed(client, after=after).json()
    assert last["results"] == []
    assert last["pagination"] == {"after": after, "next": after, "limit": 100, "hasMore": False}


def test_feed_page_costs_a_fixed_number_of_queries(
    client, superuser, activity, django_assert_num_queries
):
    client.force_login(superuser)
    # 1. the session, 2. the user, 3. the prune mark, 4. the horizon, 5. the events.
    with django_assert_num_queries(5):
        response = client.get(URL, {"limit": 1000}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200


def test_prune_events_and_410_for_a_cursor_older_than_retention(
    client_for, superuser, learner, course, settings
):
    settings.EVENT_RETENTION_DAYS = 30
    services.enrol(user_id=learner.pk, course_id=course.pk)
    old = list(Event.objects.order_by("sequence").values_list("sequence", flat=True))
    Event.objects.update(occurred_at=timezone.now() - timedelta(days=31))
    second = Course.objects.create(title="Kept")
    CourseContent.objects.create(course=second, title="x", position=1)
    services.enrol(user_id=learner.pk, course_id=second.pk)
    kept = Event.objects.order_by("sequence").last().sequence

    call_command("prune_events", verbosity=0)
    assert list(Event.objects.values_list("sequence", flat=True)) == [kept]
    assert EventPruneMark.objects.get().pruned_through == old[-1]

    client = client_for(superuser)
    gone = feed(client, after=old[-1] - 1)
    assert gone.status_code == 410
    assert "start again without `after`" in gone.json()["message"]
    # From the mark, and without `after`: the events kept.
    assert [e["sequence"] for e in feed(client, after=old[-1]).json()["results"]] == [kept]
    fresh = feed(client).json()
    assert [e["sequence"] for e in fresh["results"]] == [kept]
    assert fresh["pagination"]["after"] == old[-1]
    # A second run deletes nothing more.
    call_command("prune_events", verbosity=0)
    assert Event.objects.count() == 1


def test_learner_post_appears_in_their_feed(client_for, learner, course, contents, enrolled):
    client = client_for(learner)
    before = feed(client).json()["pagination"]["next"]
    post_update(
        client, courseId=course.pk, courseContentId=contents[1].pk, progressStatus="COMPLETED"
    )
    body = feed(client, after=before).json()
    assert [e["type"] for e in body["results"]] == ["progress.changed", "enrollment.status_changed"]
    assert body["results"][0]["data"]["progressStatus"] == "COMPLETED"


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_older_transaction_committing_last_is_neither_missed_nor_repeated(
    client_for, superuser, learner, other_learner, course
):
    """Two connections: the older transaction numbers its event first and commits last. A naive
    `sequence > after` reader would list the younger event and move past the older one; the
    feed holds `next` back until the older one has committed."""
    client = client_for(superuser)
    start = feed(client).json()["pagination"]["next"]
    older_wrote, older_may_commit = threading.Event(), threading.Event()
    errors = []

    def older():
        try:
            with transaction.atomic():
                services.enrol(user_id=learner.pk, course_id=course.pk)
                older_wrote.set()
                if not older_may_commit.wait(30):
                    raise TimeoutError("never told to commit")
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def younger():
        try:
            services.enrol(user_id=other_learner.pk, course_id=course.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=older)
    thread.start()
    try:
        assert older_wrote.wait(30)
        second = threading.Thread(target=younger)
        second.start()
        second.join()
        younger_seq = Event.objects.get(user_id=other_learner.pk).sequence
        # The younger event is committed and visible, the older one not yet: a naive reader
        # would list younger_seq now and never come back for the older one.
        assert list(
            Event.objects.filter(sequence__gt=start).values_list("sequence", flat=True)
        ) == [younger_seq]

        seen, after = [], start
        body = feed(client, after=after).json()
        assert body["results"] == []
        assert body["pagination"]["hasMore"] is False
        assert body["pagination"]["next"] < younger_seq
        after = body["pagination"]["next"]
    finally:
        older_may_commit.set()
        thread.join()
    assert errors == []

    for _ in range(10):
        body = feed(client, after=after, limit=1).json()
        seen += [(e["sequence"], e["userId"]) for e in body["results"]]
        after = body["pagination"]["next"]
        if not body["pagination"]["hasMore"] and not body["results"]:
            break
    older_seq = Event.objects.get(user_id=learner.pk).sequence
    assert older_seq < younger_seq
    assert seen == [(older_seq, learner.pk), (younger_seq, other_learner.pk)]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_releases_its_hold_on_the_horizon(
    client_for, superuser, learner, other_learner, course
):
    """The horizon lock taken inside a savepoint that rolls back goes with it: the feed is not
    held back by a transaction that, in the end, records nothing."""
    client = client_for(superuser)
    inside, finish = threading.Event(), threading.Event()

    def writer():
        try:
            with transaction.atomic():
                try:
                    with transaction.atomic():
                        services.enrol(user_id=learner.pk, course_id=course.pk)
                        raise RuntimeError("roll back the savepoint")
                except RuntimeError:
                    pass
                inside.set()
                finish.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(30)
        services.enrol(user_id=other_learner.pk, course_id=course.pk)
        mine = Event.objects.get(user_id=other_learner.pk).sequence
        assert [e["sequence"] for e in feed(client).json()["results"]] == [mine]
    finally:
        finish.set()
        thread.join()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_consumer_sees_every_event_once_in_order_while_writers_commit_out_of_order(
    client_for, superuser, make_user, course
):
    """Four writers, each transaction held open a random while after it numbered its event;
    a consumer follows `next` all along. It sees each event exactly once, in sequence order."""
    import random

    client = client_for(superuser)
    start = feed(client).json()["pagination"]["next"]
    users = [make_user(f"writer_{n}").pk for n in range(40)]
    errors = []

    def writer(ids, seed):
        rng = random.Random(seed)
        try:
            for user_id in ids:
                with transaction.atomic():
                    services.enrol(user_id=user_id, course_id=course.pk)
                    threading.Event().wait(rng.uniform(0, 0.03))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(users[n::4], n)) for n in range(4)]
    for thread in threads:
        thread.start()
    seen, after = [], start
    while any(thread.is_alive() for thread in threads):
        body = feed(client, after=after, limit=3).json()
        seen += [event["sequence"] for event in body["results"]]
        after = body["pagination"]["next"]
    for thread in threads:
        thread.join()
    while True:
        body = feed(client, after=after, limit=3).json()
        seen += [event["sequence"] for event in body["results"]]
        after = body["pagination"]["next"]
        if not body["results"]:
            break
    assert errors == []
    everything = list(
        Event.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert len(everything) == 40
    assert seen == everything


@requires_postgres
def test_the_event_sequence_hands_out_numbers_one_at_a_time(db):
    """The horizon reads the sequence's last value: it must be the one the triggers use, and
    with CACHE 1 (no session keeps numbers of its own in reserve)."""
    from progress import event_sql

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('progress_events', 'sequence')")
        assert cursor.fetchone()[0] == f"public.{event_sql.EVENTS_SEQUENCE}"
        cursor.execute(
            "SELECT seqcache FROM pg_sequence WHERE seqrelid = %s::regclass",
            [event_sql.EVENTS_SEQUENCE],
        )
        assert cursor.fetchone()[0] == 1
