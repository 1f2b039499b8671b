"""What a client reads when something is refused or changed: each message says what happened
and, for a refusal, what to send instead (issue 14, item 11)."""

from progress import services
from progress.models import Enrollment, EnrollmentStatus
from tests.helpers import snapshot


def test_re_enrolling_a_dropped_learner_says_so(client_for, learner, course, enrolled):
    services.move_enrollment(enrolled.pk, EnrollmentStatus.DROPPED)
    response = client_for(learner).post(
        "/user-progress/enrollments", {"courseId": course.pk}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["message"] == "Re-enrolled successfully"
    assert response.json()["results"]["enrollmentStatus"] == "ENROLLED"
    again = client_for(learner).post(
        "/user-progress/enrollments", {"courseId": course.pk}, format="json"
    )
    assert again.status_code == 200
    assert again.json()["message"] == "Enrollment retrieved successfully"
    assert Enrollment.objects.get(pk=enrolled.pk).status == EnrollmentStatus.ENROLLED


def test_a_learner_sending_locked_is_told_why(client_for, learner, course, contents, enrolled):
    before = snapshot()
    response = client_for(learner).post(
        "/user-progress/update",
        {"courseId": course.pk, "courseContentId": contents[0].pk, "progressStatus": "LOCKED"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "message": "Access denied",
        "errors": {"progressStatus": ["Only system users and admins set or clear LOCKED."]},
    }
    assert snapshot() == before


def test_a_learner_naming_another_user_is_told_why_without_learning_if_it_exists(
    client_for, learner, other_learner, course, contents, enrolled
):
    bodies = [
        client_for(learner)
        .post(
            "/user-progress/update",
            {
                "userId": user_id,
                "courseId": course.pk,
                "courseContentId": contents[0].pk,
                "progressStatus": "IN_PROGRESS",
            },
            format="json",
        )
        .json()
        for user_id in (other_learner.pk, 987_654)
    ]
    assert bodies[0] == bodies[1]
    assert bodies[0]["errors"] == {
        "userId": ["Only system users and admins post progress for others."]
    }


def test_an_invalid_choice_lists_the_valid_values(
    client_for, learner, instructor, course, contents, enrolled
):
    body = (
        client_for(learner)
        .post(
            "/user-progress/update",
            {"courseId": course.pk, "courseContentId": contents[0].pk, "progressStatus": "DONE"},
            format="json",
        )
        .json()
    )
    assert body["errors"]["progressStatus"] == [
        '"DONE" is not a valid choice; use one of: NOT_STARTED, IN_PROGRESS, COMPLETED, LOCKED.'
    ]
    staff = client_for(instructor)
    patch = staff.patch(
        f"/user-progress/enrollments/{enrolled.pk}", {"enrollmentStatus": "done"}, format="json"
    ).json()
    assert patch["errors"]["enrollmentStatus"] == [
        '"done" is not a valid choice; use one of: ENROLLED, IN_PROGRESS, COMPLETED, '
        "CERTIFIED, DROPPED, EXPIRED."
    ]
    listing = staff.get(f"/user-progress/course/{course.pk}/all?sortBy=name&order=up").json()
    assert listing["errors"] == {
        "sortBy": [
            "name is not a valid choice; use one of: progress, enrollmentDate, completionDate."
        ],
        "order": ["up is not a valid choice; use one of: asc, desc."],
    }
    activities = (
        client_for(learner)
        .get(f"/user-progress/{course.pk}/{learner.pk}/activities?status=done")
        .json()
    )
    assert activities["errors"]["status"] == [
        "done is not a valid choice; use one of: NOT_STARTED, IN_PROGRESS, COMPLETED, LOCKED."
    ]


def test_an_unencoded_plus_in_a_date_offset_gets_a_hint(client_for, learner, course, enrolled):
    client = client_for(learner)
    url = f"/user-progress/{course.pk}/{learner.pk}/activities"
    # What arrives when a client writes ?startDate=2025-10-13T10:00:00+02:00 in a URL.
    response = client.get(url + "?startDate=2025-10-13T10:00:00+02:00")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["startDate"]
    assert "%2B" in message
    assert client.get(url + "?startDate=2025-10-13T10:00:00%2B02:00").status_code == 200


def test_an_empty_user_list_reads_naturally(client_for, instructor, course):
    response = client_for(instructor).post(
        "/user-progress/bulk", {"courseId": course.pk, "userIds": []}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"userIds": ["Send at least one id."]}


def test_progress_is_the_same_json_number_for_the_unenrolled(
    client_for, instructor, learner, other_learner, course, enrolled
):
    response = client_for(instructor).post(
        "/user-progress/bulk",
        {"courseId": course.pk, "userIds": [learner.pk, other_learner.pk]},
        format="json",
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert text.count('"progress":0.0') == 2
    assert '"progress":0,' not in text
