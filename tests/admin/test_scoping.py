"""Who sees what in the admin: instructors only their courses, admins everything."""

import pytest

from courseprogress.models import Course
from progress.models import ContentProgress
from tests.admin.tools import (
    CONTENTS,
    COURSES,
    ENROLLMENTS,
    PROGRESS,
    listed,
    staff,
)

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
