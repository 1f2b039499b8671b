"""The Django admin as the instructors' workplace (issue 5), through Django's test client.

World: "Python 101" (3 lessons) taught by `instructor`, with alice IN_PROGRESS (lesson 1 at 50 %,
10 min), bob COMPLETED (every lesson, 20/30/40 min) and carol ENROLLED (no activity); "Rust 201"
taught by `other_instructor`, with dave IN_PROGRESS.
"""

import csv
import io
import re
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import services
from progress.admin import EstimatedCountPaginator
from progress.models import ContentProgress, Enrollment
from tests import factories
from tests.conftest import requires_postgres

ENROLLMENTS = "/admin/progress/enrollment/"
PROGRESS = "/admin/progress/contentprogress/"
COURSES = "/admin/courseprogress/course/"
CONTENTS = "/admin/courseprogress/coursecontent/"


def staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def world(make_user, course, contents, other_course, instructor, other_instructor):
    def learner(name, of_course):
        user = make_user(name)
        factories.enrol(user, of_course)
        return user

    alice, bob, carol = (learner(name, course) for name in ("alice", "bob", "carol"))
    dave = learner("dave", other_course)
    factories.record(alice, contents[0], "IN_PROGRESS", percent=50, duration=10)
    factories.complete(bob, contents, durations=(20, 30, 40))
    factories.record(dave, other_course.contents.get(), "IN_PROGRESS")
    return SimpleNamespace(
        course=course,
        contents=contents,
        other_course=other_course,
        instructor=staff(instructor),
        other_instructor=staff(other_instructor),
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        enrollment={
            user.username: Enrollment.objects.get(user=user) for user in (alice, bob, carol, dave)
        },
    )


@pytest.fixture
def as_instructor(client, world):
    client.force_login(world.instructor)
    return client


@pytest.fixture
def as_superuser(client, world, superuser):
    client.force_login(superuser)
    return client


def listed(response) -> list:
    """The objects on a changelist page."""
    return list(response.context["cl"].result_list)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)] or [
        str(message) for message in response.context.get("messages", [])
    ]


def status_of(world, username) -> str:
    return Enrollment.objects.get(pk=world.enrollment[username].pk).status


def run_action(client, action, *enrollments, **extra):
    data = {"action": action, "index": 0, "_selected_action": [e.pk for e in enrollments]}
    return client.post(ENROLLMENTS, {**data, **extra}, follow=True)


# --- who sees what ----------------------------------------------------------------------------


def test_instructor_sees_only_the_courses_they_teach(as_instructor, world):
    response = as_instructor.get(COURSES)
    assert response.status_code == 200
    assert listed(response) == [world.course]
    assert b"Rust 201" not in response.content


def test_instructor_sees_only_their_courses_enrollments_and_progress(as_instructor, world):
    enrollments = listed(as_instructor.get(ENROLLMENTS))
    assert {e.user.username for e in enrollments} == {"alice", "bob", "carol"}
    rows = listed(as_instructor.get(PROGRESS))
    assert {row.course_id for row in rows} == {world.course.pk}
    assert len(rows) == 4
    contents = listed(as_instructor.get(CONTENTS))
    assert {c.course_id for c in contents} == {world.course.pk}


@pytest.mark.parametrize("url", [ENROLLMENTS, PROGRESS, CONTENTS])
def test_course_filter_offers_only_taught_courses(as_instructor, world, url):
    response = as_instructor.get(url)
    assert b"Python 101" in response.content
    assert b"Rust 201" not in response.content
    # Asking for the other course's rows by URL finds nothing.
    assert listed(as_instructor.get(url, {"course": world.other_course.pk})) == []


def test_instructor_filters_enrollments_by_status_and_course(as_instructor, world):
    response = as_instructor.get(
        ENROLLMENTS, {"status__exact": "IN_PROGRESS", "course": world.course.pk}
    )
    assert [e.user.username for e in listed(response)] == ["alice"]


@pytest.mark.parametrize(("term", "found"), [("dave", []), ("Rust", []), ("carol", ["carol"])])
def test_search_never_reaches_other_courses(as_instructor, world, term, found):
    enrollments = listed(as_instructor.get(ENROLLMENTS, {"q": term}))
    assert [e.user.username for e in enrollments] == found
    rows = listed(as_instructor.get(PROGRESS, {"q": term}))
    assert all(row.course_id == world.course.pk for row in rows)


@pytest.mark.parametrize(
    ("term", "found"),
    [("carol python", ["carol"]), ("carol rust", []), ('"Python 101" bob', ["bob"])],
)
def test_every_word_of_a_search_must_match(as_superuser, world, term, found):
    enrollments = listed(as_superuser.get(ENROLLMENTS, {"q": term}))
    assert [e.user.username for e in enrollments] == found


def test_search_by_email(as_instructor, world):
    enrollments = listed(as_instructor.get(ENROLLMENTS, {"q": "bob@example.com"}))
    assert [e.user.username for e in enrollments] == ["bob"]


def test_course_autocomplete_offers_only_taught_courses(as_instructor, world):
    response = as_instructor.get(
        "/admin/autocomplete/",
        {"app_label": "progress", "model_name": "enrollment", "field_name": "course", "term": ""},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Python 101"]


def test_instructor_cannot_open_another_courses_enrollment(as_instructor, world):
    response = as_instructor.get(f"{ENROLLMENTS}{world.enrollment['dave'].pk}/change/")
    assert response.status_code == 302  # "does not exist", exactly as for a missing id
    assert response.url == "/admin/"


def test_instructor_reads_their_course_but_cannot_create_or_change_courses(as_instructor, world):
    page = as_instructor.get(f"{COURSES}{world.course.pk}/change/")
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert b"Lesson 2" in page.content  # the content inline, read only
    assert as_instructor.get(f"{COURSES}add/").status_code == 403
    posted = as_instructor.post(f"{COURSES}{world.course.pk}/change/", {"title": "Renamed"})
    assert posted.status_code == 403
    assert Course.objects.get(pk=world.course.pk).title == "Python 101"
    assert as_instructor.get(f"{COURSES}{world.other_course.pk}/change/").status_code == 302


def test_instructor_reads_progress_rows_but_cannot_change_them(as_instructor, world):
    row = ContentProgress.objects.get(user=world.alice)
    page = as_instructor.get(f"{PROGRESS}{row.pk}/change/")
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    posted = as_instructor.post(f"{PROGRESS}{row.pk}/change/", {"status": "COMPLETED"})
    assert posted.status_code == 403
    assert as_instructor.get(f"{PROGRESS}add/").status_code == 403
    assert ContentProgress.objects.get(pk=row.pk).status == "IN_PROGRESS"


def test_instructor_has_no_delete(as_instructor, world):
    enrollment = world.enrollment["carol"]
    assert as_instructor.get(f"{ENROLLMENTS}{enrollment.pk}/delete/").status_code == 403
    assert (
        "delete_selected"
        not in as_instructor.get(ENROLLMENTS)
        .context["action_form"]
        .fields["action"]
        .choices.__repr__()
    )


@pytest.mark.parametrize("who", ["superuser", "admin_user"])
def test_admins_see_every_course(client, world, who, request):
    user = staff(request.getfixturevalue(who))
    client.force_login(user)
    assert {c.title for c in listed(client.get(COURSES))} == {"Python 101", "Rust 201"}
    usernames = {e.user.username for e in listed(client.get(ENROLLMENTS))}
    assert usernames == {"alice", "bob", "carol", "dave"}
    assert len(listed(client.get(PROGRESS))) == 5


def test_staff_member_who_teaches_nothing_sees_no_progress(client, world, make_user):
    client.force_login(make_user("clerk", is_staff=True))
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"Enrollments" not in index.content
    assert client.get(ENROLLMENTS).status_code == 403
    assert client.get(f"{COURSES}{world.course.pk}/dashboard/").status_code == 403


def test_learner_who_is_not_staff_is_sent_to_the_login_page(client, world):
    client.force_login(world.alice)
    response = client.get(ENROLLMENTS)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


# --- actions ----------------------------------------------------------------------------------


def test_drop_goes_through_the_service_and_the_api_sees_it(as_instructor, world, client_for):
    api = client_for(world.instructor)
    url = f"/user-progress/{world.course.pk}/{world.carol.pk}"
    assert api.get(url).json()["results"]["enrollments"]["enrollmentStatus"] == "ENROLLED"

    response = run_action(as_instructor, "drop", world.enrollment["carol"])

    assert response.status_code == 200
    assert "1 enrollment now DROPPED." in messages_of(response)
    assert status_of(world, "carol") == "DROPPED"
    history = LogEntry.objects.get(object_id=str(world.enrollment["carol"].pk))
    assert (history.user, history.change_message) == (
        world.instructor,
        "Moved to DROPPED (admin action).",
    )
    # The cached API read was invalidated by the same write.
    assert api.get(url).json()["results"]["enrollments"]["enrollmentStatus"] == "DROPPED"


def test_refused_moves_are_error_messages_and_the_others_still_move(as_instructor, world):
    response = run_action(
        as_instructor, "complete", world.enrollment["alice"], world.enrollment["carol"]
    )
    assert response.status_code == 200
    texts = messages_of(response)
    assert "1 enrollment now COMPLETED." in texts
    assert any(
        "1 refused: carol in Python 101: An enrollment cannot move from ENROLLED to COMPLETED"
        in text
        for text in texts
    )
    assert not any(text.endswith("..") for text in texts), texts  # one full stop, not two
    assert status_of(world, "alice") == "COMPLETED"
    assert status_of(world, "carol") == "ENROLLED"


def test_certify_asks_for_certificate_urls_then_certifies(as_instructor, world):
    bob = world.enrollment["bob"]
    page = run_action(as_instructor, "certify", bob)
    assert page.status_code == 200
    assert b"Certificate URL" in page.content
    assert status_of(world, "bob") == "COMPLETED"  # nothing happens before the form is sent

    response = as_instructor.post(
        ENROLLMENTS,
        {
            "action": "certify",
            "_selected_action": [bob.pk],
            "apply": "yes",
            f"url_{bob.pk}": "https://certs.example.com/bob",
        },
        follow=True,
    )

    assert "1 enrollment now CERTIFIED." in messages_of(response)
    bob.refresh_from_db()
    assert (bob.status, bob.certificate_url) == ("CERTIFIED", "https://certs.example.com/bob")


def test_certify_with_a_bad_url_shows_the_form_again(as_instructor, world):
    bob = world.enrollment["bob"]
    response = as_instructor.post(
        ENROLLMENTS,
        {
            "action": "certify",
            "_selected_action": [bob.pk],
            "apply": "yes",
            f"url_{bob.pk}": "not a url",
        },
    )
    assert response.status_code == 200
    assert b"Enter an absolute http(s) URL." in response.content
    assert status_of(world, "bob") == "COMPLETED"


@pytest.mark.parametrize(
    "url",
    ["ftp://certs.example.com/bob", "javascript://x/%0aalert(1)", "https://", "/relative"],
)
def test_admin_refuses_certificate_urls_the_api_refuses(as_instructor, world, client_for, url):
    """One rule for both: what the admin stores, the API (3.1) would have accepted."""
    bob = world.enrollment["bob"]
    response = as_instructor.post(
        ENROLLMENTS,
        {"action": "certify", "_selected_action": [bob.pk], "apply": "yes", f"url_{bob.pk}": url},
    )
    assert b"Enter an absolute http(s) URL." in response.content
    response = as_instructor.post(
        f"{ENROLLMENTS}{bob.pk}/change/",
        enrollment_form(bob, status="CERTIFIED", certificate_url=url),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["certificate_url"] == [
        "Enter an absolute http(s) URL."
    ]
    stored = Enrollment.objects.get(pk=bob.pk)
    assert (stored.status, stored.certificate_url) == ("COMPLETED", None)
    api = client_for(world.instructor).patch(
        f"/user-progress/enrollments/{bob.pk}",
        {"enrollmentStatus": "CERTIFIED", "certificateUrl": url},
        format="json",
    )
    assert api.status_code == 400
    assert api.json()["errors"] == {"certificateUrl": ["Enter an absolute http(s) URL."]}


def test_services_refuse_a_certificate_url_outside_the_rule(world):
    """Commands and shells go through the same rule as the API and the admin."""
    bob = world.enrollment["bob"]
    with pytest.raises(ValidationError) as refused:
        services.move_enrollment(bob.pk, "CERTIFIED", certificate_url="ftp://x.example/1")
    assert refused.value.message_dict == {"certificateUrl": ["Enter an absolute http(s) URL."]}
    assert status_of(world, "bob") == "COMPLETED"


def test_certify_refuses_an_enrollment_that_is_not_completed(as_instructor, world):
    carol = world.enrollment["carol"]
    response = as_instructor.post(
        ENROLLMENTS,
        {
            "action": "certify",
            "_selected_action": [carol.pk],
            "apply": "yes",
            f"url_{carol.pk}": "https://certs.example.com/carol",
        },
        follow=True,
    )
    assert any("cannot move from ENROLLED to CERTIFIED" in text for text in messages_of(response))
    assert status_of(world, "carol") == "ENROLLED"


def test_certify_with_no_url_given_or_stored_is_refused(as_instructor, world):
    bob = world.enrollment["bob"]
    data = {"action": "certify", "_selected_action": [bob.pk], "apply": "yes", f"url_{bob.pk}": ""}
    response = as_instructor.post(ENROLLMENTS, data, follow=True)
    assert any("A certificate URL is required" in text for text in messages_of(response))
    assert status_of(world, "bob") == "COMPLETED"

    services.update_enrollment(bob.pk, certificate_url="https://certs.example.com/stored")
    response = as_instructor.post(ENROLLMENTS, data, follow=True)
    assert "1 enrollment now CERTIFIED." in messages_of(response)
    bob.refresh_from_db()
    assert (bob.status, bob.certificate_url) == ("CERTIFIED", "https://certs.example.com/stored")


def test_expire_then_reenrol(as_instructor, world):
    run_action(as_instructor, "expire", world.enrollment["alice"])
    assert status_of(world, "alice") == "EXPIRED"
    response = run_action(as_instructor, "reenrol", world.enrollment["alice"])
    assert "1 enrollment re-enrolled." in messages_of(response)
    # alice has activity, so the automatic moves take her straight on to IN_PROGRESS.
    assert status_of(world, "alice") == "IN_PROGRESS"


def test_recompute_applies_the_automatic_moves_after_a_bulk_write(as_instructor, world):
    # bulk_create sends no signal: carol's enrollment does not notice her finished lessons.
    ContentProgress.objects.bulk_create(
        ContentProgress(user=world.carol, course=world.course, content=content, status="COMPLETED")
        for content in world.contents
    )
    assert status_of(world, "carol") == "ENROLLED"

    response = run_action(as_instructor, "recompute", world.enrollment["carol"])

    assert "Recomputed 1 enrollment; 1 changed status." in messages_of(response)
    carol = Enrollment.objects.get(pk=world.enrollment["carol"].pk)
    assert carol.status == "COMPLETED"
    assert carol.completed_at is not None


def test_actions_cannot_reach_other_courses(as_instructor, world):
    run_action(as_instructor, "drop", world.enrollment["dave"])
    assert status_of(world, "dave") == "IN_PROGRESS"


def test_export_csv_lists_each_enrollment_with_its_progress(as_instructor, world):
    response = as_instructor.post(
        ENROLLMENTS,
        {
            "action": "export_csv",
            "index": 0,
            "_selected_action": [world.enrollment[name].pk for name in ("alice", "bob", "carol")],
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="enrollments.csv"' in response["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_user = {}
    for line in lines:
        by_user.setdefault(line["username"], []).append(line)
    assert sorted(by_user) == ["alice", "bob", "carol"]
    assert [line["progress"] for line in by_user["alice"]] == ["16.67"]
    assert by_user["alice"][0]["progressStatus"] == "IN_PROGRESS"
    assert by_user["alice"][0]["progressPercent"] == "50.00"
    assert by_user["alice"][0]["activityDuration"] == "10"
    assert [line["contentTitle"] for line in by_user["bob"]] == ["Lesson 1", "Lesson 2", "Lesson 3"]
    assert {line["progress"] for line in by_user["bob"]} == {"100.00"}
    assert by_user["bob"][0]["enrollmentStatus"] == "COMPLETED"
    assert by_user["bob"][0]["completionDate"].endswith("Z")
    assert by_user["carol"] == [
        {
            **by_user["carol"][0],
            "progress": "0.00",
            "courseContentId": "",
            "progressStatus": "",
        }
    ]
    assert by_user["carol"][0]["email"] == "carol@example.com"
    assert by_user["carol"][0]["courseTitle"] == "Python 101"


# --- forms go through the services ------------------------------------------------------------


def enrollment_form(enrollment, **changes):
    data = {
        "status": enrollment.status,
        "certificate_url": enrollment.certificate_url or "",
        "metadata": "{}",
    }
    return {**data, **changes}


def test_enrollment_form_offers_only_the_allowed_moves(as_instructor, world):
    page = as_instructor.get(f"{ENROLLMENTS}{world.enrollment['carol'].pk}/change/")
    choices = [value for value, _ in page.context["adminform"].form.fields["status"].choices]
    assert choices == ["ENROLLED", "IN_PROGRESS", "DROPPED", "EXPIRED"]


def test_enrollment_form_moves_through_the_service(as_instructor, world):
    carol = world.enrollment["carol"]
    response = as_instructor.post(
        f"{ENROLLMENTS}{carol.pk}/change/",
        enrollment_form(carol, status="DROPPED", metadata='{"reason": "asked"}'),
    )
    assert response.status_code == 302
    stored = Enrollment.objects.get(pk=carol.pk)
    assert (stored.status, stored.metadata) == ("DROPPED", {"reason": "asked"})
    assert stored.cache_version > carol.cache_version
    assert stored.updated_at > carol.updated_at


def test_enrollment_form_refusal_is_an_error_message_not_a_500(as_instructor, world):
    bob = world.enrollment["bob"]
    response = as_instructor.post(
        f"{ENROLLMENTS}{bob.pk}/change/", enrollment_form(bob, status="CERTIFIED"), follow=True
    )
    assert response.status_code == 200
    assert any("A certificate URL is required" in text for text in messages_of(response))
    assert status_of(world, "bob") == "COMPLETED"


def test_instructor_enrols_a_learner_in_their_course_only(as_instructor, world, make_user):
    erin = make_user("erin")
    refused = as_instructor.post(
        f"{ENROLLMENTS}add/", {"user": erin.pk, "course": world.other_course.pk}
    )
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["course"]
    assert not Enrollment.objects.filter(user=erin).exists()

    response = as_instructor.post(
        f"{ENROLLMENTS}add/", {"user": erin.pk, "course": world.course.pk}
    )
    assert response.status_code == 302
    assert Enrollment.objects.get(user=erin).status == "ENROLLED"


def progress_form(**fields):
    return {"status": "IN_PROGRESS", "percent": "0", "duration": "0", "metadata": "{}", **fields}


def test_progress_form_refuses_content_of_another_course(as_superuser, world):
    other_content = world.other_course.contents.get()
    response = as_superuser.post(
        f"{PROGRESS}add/",
        progress_form(user=world.carol.pk, course=world.course.pk, content=other_content.pk),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["content"] == [
        "This content is not part of the selected course."
    ]
    assert not ContentProgress.objects.filter(user=world.carol).exists()


def test_progress_form_saves_through_the_service(as_superuser, world):
    response = as_superuser.post(
        f"{PROGRESS}add/",
        progress_form(
            user=world.carol.pk, course=world.course.pk, content=world.contents[1].pk, percent="25"
        ),
    )
    assert response.status_code == 302
    row = ContentProgress.objects.get(user=world.carol)
    assert (row.status, row.percent) == ("IN_PROGRESS", 25)
    assert status_of(world, "carol") == "IN_PROGRESS"  # the first activity promoted her


def test_progress_form_change_sets_the_row_exactly(as_superuser, world):
    row = ContentProgress.objects.get(user=world.alice)
    response = as_superuser.post(
        f"{PROGRESS}{row.pk}/change/",
        progress_form(status="NOT_STARTED", percent="5", duration="10"),
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.percent, row.duration) == ("NOT_STARTED", 5, 10)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ('{"note": "a\\u0000b"}', "Null characters are not allowed."),
        ("[1, 2]", "A JSON object is required."),
        ('{"a": ' * 40 + "1" + "}" * 40, "Metadata may nest at most 32 levels."),
        (
            '{"a": 18446744073709551616}',
            "Integers in metadata must lie between -9223372036854775808 and"
            " 9223372036854775807 (signed 64 bits).",
        ),
    ],
)
def test_forms_refuse_metadata_the_api_refuses(as_superuser, world, metadata, message):
    """The models' metadata rule: a form error, not a 500 from the database, nothing stored."""
    response = as_superuser.post(
        f"{PROGRESS}add/",
        progress_form(
            user=world.carol.pk,
            course=world.course.pk,
            content=world.contents[1].pk,
            metadata=metadata,
        ),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["metadata"] == [message]
    assert not ContentProgress.objects.filter(user=world.carol).exists()
    carol = world.enrollment["carol"]
    response = as_superuser.post(
        f"{ENROLLMENTS}{carol.pk}/change/", enrollment_form(carol, metadata=metadata)
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["metadata"] == [message]
    assert Enrollment.objects.get(pk=carol.pk).metadata == carol.metadata


def test_progress_form_for_a_learner_not_enrolled_is_an_error_message(
    as_superuser, world, make_user
):
    stranger = make_user("stranger")
    response = as_superuser.post(
        f"{PROGRESS}add/",
        progress_form(user=stranger.pk, course=world.course.pk, content=world.contents[0].pk),
        follow=True,
    )
    assert response.status_code == 200
    assert any("no active enrollment" in text for text in messages_of(response))
    assert not ContentProgress.objects.filter(user=stranger).exists()


def test_enrollment_page_shows_progress_rows_and_course_progress(as_instructor, world):
    page = as_instructor.get(f"{ENROLLMENTS}{world.enrollment['alice'].pk}/change/")
    html = page.content.decode()
    assert "16.67 %" in html
    assert html.count("no activity") == 2  # lessons 2 and 3
    assert "Lesson 1" in html
    assert "In Progress" in html or "IN_PROGRESS" in html


# --- dashboard --------------------------------------------------------------------------------


def figure(html: str, key: str) -> str:
    start = html.index(f'data-figure="{key}"')
    value = html.index('class="value">', start) + len('class="value">')
    return html[value : html.index("</div>", value)]


def test_dashboard_shows_the_course_analytics(as_instructor, world):
    response = as_instructor.get(f"{COURSES}{world.course.pk}/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert figure(html, "totalEnrollments") == "3"
    assert figure(html, "activeUsers") == "1"
    assert figure(html, "completedUsers") == "1"
    assert figure(html, "averageProgress") == "38.89 %"  # (50 + 300) / (3 learners x 3 lessons)
    assert figure(html, "completionRate") == "33.33 %"
    assert figure(html, "totalActivities") == "4"
    bars = response.context["content_chart"]["rows"]
    assert [(b["title"], b["completions"], b["minutes"]) for b in bars] == [
        ("Lesson 1", 1, "15"),
        ("Lesson 2", 1, "30"),
        ("Lesson 3", 1, "40"),
    ]
    assert 'data-completions="1" data-minutes="15"' in html
    statuses = {s["status"]: s["count"] for s in response.context["status_chart"]["segments"]}
    assert statuses == {
        "ENROLLED": 1,
        "IN_PROGRESS": 1,
        "COMPLETED": 1,
        "CERTIFIED": 0,
        "DROPPED": 0,
        "EXPIRED": 0,
    }
    behind = response.context["behind"]
    assert [(b["username"], b["progress"]) for b in behind] == [("carol", "0"), ("alice", "16.67")]
    assert "<svg" in html


def test_dashboard_follows_admin_actions(as_instructor, world):
    url = f"{COURSES}{world.course.pk}/dashboard/"
    assert figure(as_instructor.get(url).content.decode(), "completedUsers") == "1"
    run_action(as_instructor, "complete", world.enrollment["alice"])
    assert figure(as_instructor.get(url).content.decode(), "completedUsers") == "2"


def test_course_page_links_to_its_dashboard(as_instructor, world):
    page = as_instructor.get(f"{COURSES}{world.course.pk}/change/")
    assert f'href="{COURSES}{world.course.pk}/dashboard/"'.encode() in page.content


def test_dashboard_of_a_course_not_taught_is_403_whether_or_not_it_exists(as_instructor, world):
    assert as_instructor.get(f"{COURSES}{world.other_course.pk}/dashboard/").status_code == 403
    assert as_instructor.get(f"{COURSES}999999/dashboard/").status_code == 403


def test_admin_sees_any_dashboard_and_is_sent_back_from_a_missing_course(as_superuser, world):
    assert as_superuser.get(f"{COURSES}{world.other_course.pk}/dashboard/").status_code == 200
    # As the admin does for any missing object: the styled course list, with a message.
    response = as_superuser.get(f"{COURSES}999999/dashboard/", follow=True)
    assert response.redirect_chain == [(COURSES, 302)]
    assert response.status_code == 200
    assert 'Course with ID "999999" does not exist. Perhaps it was deleted?' in messages_of(
        response
    )
    assert b'id="changelist"' in response.content


def test_dashboard_says_when_its_figures_were_computed_in_the_site_time_zone(
    as_instructor, world, settings
):
    settings.TIME_ZONE = "Asia/Kolkata"
    response = as_instructor.get(f"{COURSES}{world.course.pk}/dashboard/")
    html = response.content.decode()
    computed = datetime.fromisoformat(response.context["analytics"]["computedAt"])
    local = computed.astimezone(ZoneInfo("Asia/Kolkata"))
    expected = f"Figures as of {local.day} {local:%b %Y, %H:%M:%S} (Asia/Kolkata)."
    assert expected in html
    assert "Z (UTC)" not in html


def test_dashboard_of_an_empty_course(as_superuser, world):
    empty = Course.objects.create(title="Empty")
    response = as_superuser.get(f"{COURSES}{empty.pk}/dashboard/")
    assert response.status_code == 200
    assert b"This course has no content yet." in response.content
    assert b"Nobody is enrolled yet." in response.content


# --- query counts: no query per row -----------------------------------------------------------


def add_learners(world, make_user, start: int, count: int) -> None:
    """More learners in both courses, each with a progress row."""
    for n in range(start, start + count):
        for course in (world.course, world.other_course):
            user = make_user(f"learner{n}-{course.pk}")
            factories.enrol(user, course)
            factories.record(user, course.contents.first(), "IN_PROGRESS")


def add_courses(world, count: int, start: int) -> None:
    for n in range(start, start + count):
        course = Course.objects.create(title=f"Course {n}")
        CourseContent.objects.create(course=course, title="Intro", position=1)
        CourseStaff.objects.create(course=course, user=world.instructor)


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


# Queries per page view, whatever the number of rows (measured; each named):
#   everyone: session, user, the page of rows (users/courses joined or annotated in);
#   instructors: + their CourseStaff course ids (their permissions come from the permission
#     cache once a first page view filled it: courseprogress/auth_backends.py);
#   enrollment, progress and content lists: + the course filter's choices, + one COUNT;
#   unfiltered enrollment and progress lists on PostgreSQL: + the planner's row estimate
#     (pg_class), which replaces the COUNT on big tables (counted exactly below 10,000 rows);
#   enrollment and course lists: + the date hierarchy (min/max date, then the dates to link);
#   course and content lists: + a second COUNT for "(N total)" (small tables, stock admin).
BUDGETS = {
    (ENROLLMENTS, "instructor"): 8,
    (ENROLLMENTS, "superuser"): 8,
    (PROGRESS, "instructor"): 6,
    (PROGRESS, "superuser"): 6,
    (COURSES, "instructor"): 8,
    (COURSES, "superuser"): 7,
    (CONTENTS, "instructor"): 7,
    (CONTENTS, "superuser"): 6,
}


@pytest.mark.parametrize(("url", "who"), list(BUDGETS))
def test_changelists_make_no_query_per_row(
    client, world, make_user, superuser, url, who, django_assert_max_num_queries
):
    client.force_login(world.instructor if who == "instructor" else superuser)
    add_learners(world, make_user, 0, 5)
    add_courses(world, 5, 0)
    queries_for(client, url)  # fills the permission cache
    with django_assert_max_num_queries(BUDGETS[url, who]):
        few = queries_for(client, url)
    add_learners(world, make_user, 5, 25)
    add_courses(world, 25, 5)
    with django_assert_max_num_queries(BUDGETS[url, who]):
        many = queries_for(client, url)
    assert len(listed(client.get(url))) > 30
    assert many == few


@requires_postgres
def test_unfiltered_progress_list_reads_the_planner_estimate_instead_of_counting(
    as_superuser, world, monkeypatch
):
    """At a million rows a COUNT(*) per page view is the slow part; the unfiltered list takes
    pg_class.reltuples (the threshold is lowered so that a few rows show it)."""
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE user_course_content_progress")
    with CaptureQueriesContext(connection) as captured:
        response = as_superuser.get(PROGRESS)
    assert response.status_code == 200
    sql = [query["sql"] for query in captured.captured_queries]
    assert not [q for q in sql if "COUNT(" in q.upper()]
    assert any("reltuples" in q for q in sql)
    assert response.context["cl"].result_count == 5

    # A filtered list counts exactly (it is what the user asked about).
    filtered = as_superuser.get(PROGRESS, {"status__exact": "COMPLETED"})
    assert filtered.context["cl"].result_count == 3


def test_course_autocomplete_counts_nothing(as_superuser, world):
    """The course picker of the enrollment form asks a keystroke at a time: it lists courses
    without the course list's per-row counts of enrollments and content items."""
    with CaptureQueriesContext(connection) as captured:
        response = as_superuser.get(
            "/admin/autocomplete/",
            {"app_label": "progress", "model_name": "enrollment", "field_name": "course"},
        )
    assert response.status_code == 200
    assert {item["id"] for item in response.json()["results"]} == {
        str(world.course.pk),
        str(world.other_course.pk),
    }
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "enrollments" not in sql
    assert "courseprogress_coursecontent" not in sql


# --- list filters and the date hierarchy: a bad value is "?e=1", never a 500 ----------------


@pytest.mark.parametrize(
    "url",
    [
        f"{ENROLLMENTS}?course=abc",
        f"{ENROLLMENTS}?course=1%00",
        f"{ENROLLMENTS}?course=%D9%A1",
        f"{ENROLLMENTS}?status__exact=%00",
        f"{ENROLLMENTS}?q=%00",
        f"{ENROLLMENTS}?enrolled_at__year=9999",
        f"{ENROLLMENTS}?enrolled_at__year=9999&enrolled_at__month=12",
        f"{ENROLLMENTS}?enrolled_at__year=0",
        f"{ENROLLMENTS}?enrolled_at__year=abc",
        f"{PROGRESS}?course=abc",
        f"{PROGRESS}?status__exact=%00",
        f"{COURSES}?created_at__year=9999",
        f"{COURSES}?created_at__year=9999&created_at__month=12&created_at__day=31",
        f"{CONTENTS}?course=x",
    ],
)
def test_bad_filter_values_are_the_admins_bad_filter_page(as_superuser, world, url):
    response = as_superuser.get(url)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    assert as_superuser.get(response["Location"]).status_code == 200


def test_a_valid_year_still_filters(as_superuser, world):
    year = world.enrollment["alice"].enrolled_at.year
    assert len(listed(as_superuser.get(f"{ENROLLMENTS}?enrolled_at__year={year}"))) == 4
    assert listed(as_superuser.get(f"{ENROLLMENTS}?enrolled_at__year=9998")) == []


def test_too_many_form_fields_are_a_400(as_superuser, world):
    fields = {f"field{i}": "1" for i in range(1001)}
    assert as_superuser.post(f"{ENROLLMENTS}add/", fields).status_code == 400
    assert as_superuser.get(ENROLLMENTS, fields).status_code == 400


# --- raw-id widgets name only what the viewer may see -----------------------------------------


def raw_id_label(response, field="user") -> str:
    """What the raw-id widget shows next to the id box (the stock template's <strong>)."""
    widget = response.context["adminform"].form[field]
    html = str(widget)
    start = html.find("<strong>")
    label = html[start + 8 : html.find("</strong>", start)] if start >= 0 else ""
    return re.sub(r"<[^>]+>", "", label)  # the name, without its link


def test_instructor_sees_no_username_behind_an_id_they_cannot_see(as_instructor, world, superuser):
    for stranger in (superuser, world.dave, world.other_instructor):
        response = as_instructor.get(f"{ENROLLMENTS}add/?user={stranger.pk}")
        assert response.status_code == 200
        assert raw_id_label(response) == ""
        assert stranger.username.encode() not in response.content


@pytest.mark.parametrize("who", ["alice", "carol", "instructor"])
def test_instructor_sees_the_names_of_their_own_learners_and_themself(as_instructor, world, who):
    user = world.instructor if who == "instructor" else getattr(world, who)
    response = as_instructor.get(f"{ENROLLMENTS}add/?user={user.pk}")
    assert raw_id_label(response) == user.username


@pytest.mark.parametrize("value", ["abc", "1%00", "99999999999999999999", "-1"])
def test_raw_id_widget_takes_any_value_without_a_500(as_instructor, world, value):
    response = as_instructor.get(f"{ENROLLMENTS}add/?user={value}")
    assert response.status_code == 200
    assert raw_id_label(response) == ""


def test_admins_see_every_username_behind_an_id(as_superuser, world):
    response = as_superuser.get(f"{ENROLLMENTS}add/?user={world.dave.pk}")
    assert raw_id_label(response) == "dave"
    response = as_superuser.get(f"{PROGRESS}add/?content={world.contents[0].pk}")
    assert raw_id_label(response, "content") == str(world.contents[0])
