"""POST /user-progress/enrollments and PATCH /user-progress/enrollments/{id} (contract 3.7)."""

import pytest

from progress import services
from progress.models import Enrollment
from tests.helpers import snapshot


def enrol(client, **body):
    return client.post("/user-progress/enrollments", body, format="json")


def patch(client, enrollment_id, **body):
    return client.patch(f"/user-progress/enrollments/{enrollment_id}", body, format="json")


# --- POST -----------------------------------------------------------------------------------


def test_learner_enrols_themself(client_for, learner, course):
    response = enrol(client_for(learner), courseId=course.pk)
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    enrollment = Enrollment.objects.get(user=learner, course=course)
    assert body["results"]["enrollmentId"] == enrollment.pk
    assert body["results"]["enrollmentStatus"] == "ENROLLED"
    assert body["results"]["userId"] == learner.pk


def test_enrolling_again_is_200_with_the_same(client_for, learner, course):
    client = client_for(learner)
    first = enrol(client, courseId=course.pk).json()["results"]
    second = enrol(client, courseId=course.pk)
    assert second.status_code == 200
    assert second.json()["results"]["enrollmentId"] == first["enrollmentId"]
    assert Enrollment.objects.count() == 1


@pytest.mark.parametrize("status", ["DROPPED", "EXPIRED"])
def test_re_enrolment(client_for, learner, course, enrolled, status):
    services.move_enrollment(enrolled.pk, status)
    response = enrol(client_for(learner), courseId=course.pk)
    assert response.status_code == 200
    assert response.json()["results"]["enrollmentStatus"] == "ENROLLED"
    assert Enrollment.objects.get(pk=enrolled.pk).status == "ENROLLED"


@pytest.mark.parametrize("body", [{}, {"courseId": "1"}, {"courseId": None}, {"courseId": 1.5}])
def test_bad_bodies_are_400(client_for, learner, course, body):
    response = enrol(client_for(learner), **body)
    assert response.status_code == 400
    assert "courseId" in response.json()["errors"]
    assert not Enrollment.objects.exists()


# --- PATCH ----------------------------------------------------------------------------------


ALL = ["ENROLLED", "IN_PROGRESS", "COMPLETED", "CERTIFIED", "DROPPED", "EXPIRED"]
ALLOWED = {
    ("ENROLLED", "IN_PROGRESS"),
    ("IN_PROGRESS", "COMPLETED"),
    ("COMPLETED", "CERTIFIED"),
    ("ENROLLED", "DROPPED"),
    ("IN_PROGRESS", "DROPPED"),
    ("COMPLETED", "DROPPED"),
    ("ENROLLED", "EXPIRED"),
    ("IN_PROGRESS", "EXPIRED"),
    ("COMPLETED", "EXPIRED"),
    ("DROPPED", "ENROLLED"),
    ("EXPIRED", "ENROLLED"),
}


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_every_move(client_for, admin_user, enrolled, source, target):
    Enrollment.objects.filter(pk=enrolled.pk).update(
        status=source, certificate_url="https://example.com/cert"
    )
    response = patch(client_for(admin_user), enrolled.pk, enrollmentStatus=target)
    stored = Enrollment.objects.get(pk=enrolled.pk)
    if source == target:
        assert response.status_code == 200  # not a move: nothing changes
        assert stored.status == source
    elif (source, target) in ALLOWED:
        assert response.status_code == 200
        assert response.json()["results"]["enrollmentStatus"] == target
        assert stored.status == target
    else:
        assert response.status_code == 409
        assert response.json()["success"] is False
        assert stored.status == source


def test_refused_move_changes_nothing_else(client_for, admin_user, enrolled):
    Enrollment.objects.filter(pk=enrolled.pk).update(
        status="CERTIFIED", certificate_url="https://a.b/c"
    )
    before = snapshot()
    response = patch(
        client_for(admin_user), enrolled.pk, enrollmentStatus="ENROLLED", metadata={"x": 1}
    )
    assert response.status_code == 409
    assert snapshot() == before


def test_completed_sets_completion_date(client_for, instructor, enrolled):
    client = client_for(instructor)
    patch(client, enrolled.pk, enrollmentStatus="IN_PROGRESS")
    body = patch(client, enrolled.pk, enrollmentStatus="COMPLETED").json()["results"]
    assert body["completionDate"] is not None
    assert Enrollment.objects.get(pk=enrolled.pk).completed_at is not None


def test_certify_needs_a_certificate_url(client_for, instructor, enrolled):
    Enrollment.objects.filter(pk=enrolled.pk).update(status="COMPLETED")
    client = client_for(instructor)
    response = patch(client, enrolled.pk, enrollmentStatus="CERTIFIED")
    assert response.status_code == 400
    assert "certificateUrl" in response.json()["errors"]
    assert Enrollment.objects.get(pk=enrolled.pk).status == "COMPLETED"
    response = patch(
        client, enrolled.pk, enrollmentStatus="CERTIFIED", certificateUrl="https://example.com/c/9"
    )
    assert response.status_code == 200
    assert response.json()["results"]["certificateUrl"] == "https://example.com/c/9"


def test_certify_with_a_stored_url(client_for, instructor, enrolled):
    client = client_for(instructor)
    Enrollment.objects.filter(pk=enrolled.pk).update(status="COMPLETED")
    patch(client, enrolled.pk, certificateUrl="https://example.com/c/1")
    assert patch(client, enrolled.pk, enrollmentStatus="CERTIFIED").status_code == 200


def test_metadata_replaced(client_for, instructor, enrolled):
    client = client_for(instructor)
    patch(client, enrolled.pk, metadata={"cohort": "A"})
    response = patch(client, enrolled.pk, metadata={"note": "late"})
    assert response.json()["results"]["metadata"] == {"note": "late"}


def test_status_update_moves_updated_at_only_with_status(client_for, instructor, enrolled):
    client = client_for(instructor)
    before = Enrollment.objects.get(pk=enrolled.pk).updated_at
    patch(client, enrolled.pk, metadata={"a": 1})
    assert Enrollment.objects.get(pk=enrolled.pk).updated_at == before
    patch(client, enrolled.pk, enrollmentStatus="DROPPED")
    assert Enrollment.objects.get(pk=enrolled.pk).updated_at > before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enrollmentStatus": "PAUSED"}, "enrollmentStatus"),
        ({"certificateUrl": "not a url"}, "certificateUrl"),
        ({"metadata": [1]}, "metadata"),
        ({"metadata": {"x": "y" * 17000}}, "metadata"),
    ],
)
def test_bad_patch_is_400_and_changes_nothing(client_for, instructor, enrolled, body, field):
    before = snapshot()
    response = patch(client_for(instructor), enrolled.pk, **body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert snapshot() == before


def test_immutable_fields_are_ignored(client_for, instructor, learner, other_learner, enrolled):
    response = patch(
        client_for(instructor),
        enrolled.pk,
        userId=other_learner.pk,
        courseId=999,
        enrollmentId=5,
        completionDate="2000-01-01T00:00:00Z",
    )
    assert response.status_code == 200
    stored = Enrollment.objects.get(pk=enrolled.pk)
    assert (stored.user_id, stored.completed_at) == (learner.pk, None)


def test_enrol_ignores_fields_a_caller_may_not_set(client_for, learner, course):
    response = enrol(
        client_for(learner),
        courseId=course.pk,
        enrollmentStatus="CERTIFIED",
        certificateUrl="https://evil.example/cert",
        enrollmentDate="2000-01-01T00:00:00Z",
        enrollmentId=777,
        metadata={"vip": True},
    )
    assert response.status_code == 201
    stored = Enrollment.objects.get(user=learner, course=course)
    assert stored.status == "ENROLLED"
    assert stored.certificate_url is None
    assert stored.enrolled_at.year != 2000
    assert stored.pk != 777
    assert stored.metadata == {}


def test_a_whole_number_float_is_an_integer(client_for, learner, course):
    """JSON Schema's integer includes 3.0; so does the API."""
    response = enrol(client_for(learner), courseId=float(course.pk))
    assert response.status_code == 201
