"""Admin actions on enrollments: each move goes through the services."""

import csv
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError

from progress import services
from progress.management.progress_files import PROGRESS_FIELDS
from progress.models import ContentProgress, Enrollment
from tests.admin.tools import (
    ENROLLMENTS,
    enrollment_form,
    messages_of,
    run_action,
    status_of,
)
from tests.commands.tools import run

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
    # The cached API read shows the same write (its stamp moved with it).
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


def test_the_admin_export_and_export_progress_write_the_same_cells(as_instructor, world):
    """Both CSV exports build a progress row's cells with formatting.progress_csv_cells: for
    the same rows (one learner with progress, one with every item done, one without any) the
    columns they share hold the same text, byte for byte."""
    names = ("alice", "bob", "carol")
    admin = as_instructor.post(
        ENROLLMENTS,
        {
            "action": "export_csv",
            "index": 0,
            "_selected_action": [world.enrollment[name].pk for name in names],
        },
    )
    command, _ = run("export_progress", "--course", str(world.course.pk))
    # The columns both exports write under the same name: the progress fields but the file's
    # own timestamps and metadata, and the enrollment's.
    same_name = (
        *(name for name in PROGRESS_FIELDS if name != "metadata" and "_at" not in name),
        *("enrollmentStatus", "enrollmentDate", "completionDate"),
    )
    shared = {  # the admin's column: export_progress's
        **{name: name for name in same_name},
        "progressUpdatedAt": "user_course_content_progress_updated_at",
    }

    def lines(text, columns):
        return sorted(tuple(row[c] for c in columns) for row in csv.DictReader(io.StringIO(text)))

    assert lines(admin.content.decode(), shared) == lines(command, shared.values())
    assert len(lines(command, ["userId"])) == 5  # alice 1 row, bob 3, carol none
