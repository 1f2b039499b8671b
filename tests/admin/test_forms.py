"""The admin's enrollment and progress forms go through the services."""

import pytest

from progress.models import ContentProgress, Enrollment
from tests.admin.tools import (
    ENROLLMENTS,
    PROGRESS,
    enrollment_form,
    messages_of,
    status_of,
)

# --- forms go through the services ------------------------------------------------------------


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
