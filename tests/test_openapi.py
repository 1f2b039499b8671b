"""/api/schema/ describes every endpoint well enough to generate a client, and the real
responses match it."""

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from progress import services

ENDPOINTS = {
    ("/auth/token", "post"),
    ("/user-progress/{course_id}/{user_id}", "get"),
    ("/user-progress/{course_id}/{user_id}/activities", "get"),
    ("/user-progress/course/{course_id}/all", "get"),
    ("/user-progress/course/{course_id}/analytics", "get"),
    ("/user-progress/update", "post"),
    ("/user-progress/bulk", "post"),
    ("/user-progress/enrollments", "post"),
    ("/user-progress/enrollments/{enrollment_id}", "patch"),
    ("/user-progress/events", "get"),
}


@pytest.fixture
def spec(anon, db):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def matches(spec, path, method, response):
    operation = spec["paths"][path][method]
    documented = operation["responses"][str(response.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator(
        {**schema, "components": spec["components"]}, format_checker=FormatChecker()
    )
    errors = sorted(validator.iter_errors(response.json()), key=str)
    assert not errors, errors[0]


def test_every_endpoint_is_described(spec):
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert described == ENDPOINTS
    for path, method in ENDPOINTS:
        operation = spec["paths"][path][method]
        assert "200" in operation["responses"] or "201" in operation["responses"]
        assert "401" in operation["responses"] or path == "/auth/token"
        if method in {"post", "patch"}:
            assert "application/json" in operation["requestBody"]["content"]


def test_enums_bounds_and_formats(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["ProgressStatusEnum"]["enum"] == [
        "NOT_STARTED",
        "IN_PROGRESS",
        "COMPLETED",
        "LOCKED",
    ]
    assert schemas["EnrollmentStatusEnum"]["enum"] == [
        "ENROLLED",
        "IN_PROGRESS",
        "COMPLETED",
        "CERTIFIED",
        "DROPPED",
        "EXPIRED",
    ]
    update = schemas["ProgressUpdateInRequest"]
    assert set(update["required"]) == {"courseId", "courseContentId", "progressStatus"}
    assert update["properties"]["progressPercent"]["maximum"] == 100
    assert update["properties"]["activityDuration"]["minimum"] == 0
    assert update["properties"]["metadata"]["type"] == "object"
    bulk = schemas["BulkInRequest"]["properties"]["userIds"]
    assert (bulk["minItems"], bulk["maxItems"]) == (1, 100)
    assert schemas["EnrollmentOut"]["properties"]["enrollmentDate"]["format"] == "date-time"
    path_param = spec["paths"]["/user-progress/{course_id}/{user_id}"]["get"]["parameters"][0]
    assert path_param["schema"]["type"] == "integer"


def test_real_responses_match_the_schema(
    spec, client_for, instructor, learner, course, contents, enrolled
):
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
    )
    staff = client_for(instructor)
    mine = client_for(learner)
    calls = [
        (
            "/user-progress/{course_id}/{user_id}",
            "get",
            mine.get(f"/user-progress/{course.pk}/{learner.pk}"),
        ),
        (
            "/user-progress/{course_id}/{user_id}/activities",
            "get",
            mine.get(f"/user-progress/{course.pk}/{learner.pk}/activities"),
        ),
        (
            "/user-progress/course/{course_id}/all",
            "get",
            staff.get(f"/user-progress/course/{course.pk}/all"),
        ),
        (
            "/user-progress/course/{course_id}/analytics",
            "get",
            staff.get(f"/user-progress/course/{course.pk}/analytics"),
        ),
        (
            "/user-progress/update",
            "post",
            mine.post(
                "/user-progress/update",
                {
                    "courseId": course.pk,
                    "courseContentId": contents[1].pk,
                    "progressStatus": "IN_PROGRESS",
                },
                format="json",
            ),
        ),
        (
            "/user-progress/bulk",
            "post",
            staff.post(
                "/user-progress/bulk",
                {"courseId": course.pk, "userIds": [learner.pk, 999]},
                format="json",
            ),
        ),
        (
            "/user-progress/enrollments",
            "post",
            mine.post("/user-progress/enrollments", {"courseId": course.pk}, format="json"),
        ),
        (
            "/user-progress/enrollments/{enrollment_id}",
            "patch",
            staff.patch(
                f"/user-progress/enrollments/{enrolled.pk}", {"metadata": {"a": 1}}, format="json"
            ),
        ),
        ("/user-progress/events", "get", mine.get("/user-progress/events", {"limit": 2})),
        # failures
        ("/user-progress/update", "post", mine.post("/user-progress/update", {}, format="json")),
        ("/user-progress/events", "get", mine.get("/user-progress/events", {"after": "x"})),
        ("/user-progress/events", "get", mine.get("/user-progress/events", {"userId": 999})),
        (
            "/user-progress/{course_id}/{user_id}",
            "get",
            client_for(None).get(f"/user-progress/{course.pk}/{learner.pk}"),
        ),
        (
            "/user-progress/course/{course_id}/all",
            "get",
            mine.get(f"/user-progress/course/{course.pk}/all"),
        ),
    ]
    for path, method, response in calls:
        matches(spec, path, method, response)


def test_the_feed_parameters_are_described(spec):
    operation = spec["paths"]["/user-progress/events"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"after", "courseId", "userId", "type", "limit"}
    assert parameters["type"]["schema"]["type"] == "array"
    assert parameters["type"]["schema"]["items"]["enum"] == [
        "enrollment.created",
        "enrollment.status_changed",
        "enrollment.deleted",
        "progress.changed",
        "progress.deleted",
    ]
    assert parameters["after"]["schema"]["minimum"] == 0
    assert "410" in operation["responses"]
    pagination = spec["components"]["schemas"]["FeedPaginationOut"]
    assert set(pagination["properties"]) == {"after", "next", "limit", "hasMore"}
