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


# --- what a generated client and Swagger UI show (issue 14, items 6 to 9) -------------------

WITH_BODY = {(path, method) for path, method in ENDPOINTS if method in {"post", "patch"}}
THROTTLED = {("/auth/token", "post"), ("/user-progress/update", "post")}


def test_every_operation_says_what_it_does_and_who_may_call_it(spec):
    for path, method in ENDPOINTS:
        operation = spec["paths"][path][method]
        assert operation["summary"], (path, method)
        assert "**Who:**" in operation["description"], (path, method)
    paths = spec["paths"]
    assert "minutes" in paths["/user-progress/update"]["post"]["description"]
    analytics = paths["/user-progress/course/{course_id}/analytics"]["get"]["description"]
    assert "`averageCompletionTime` is days" in analytics
    assert "`contentEngagement[].avgDuration` is minutes" in analytics


def test_error_bodies_say_success_false_and_every_status_is_listed(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["FailureOut"]["properties"]["success"] == {"type": "boolean", "const": False}
    assert schemas["ValidationFailureOut"]["properties"]["success"]["const"] is False
    assert schemas["LearnerProgressEnvelope"]["properties"]["success"]["const"] is True
    for path, method in ENDPOINTS:
        responses = spec["paths"][path][method]["responses"]
        expected = {"405", "503"}
        expected |= {"413", "415"} if (path, method) in WITH_BODY else set()
        expected |= {"429"} if (path, method) in THROTTLED else set()
        assert expected <= set(responses), (path, method, sorted(responses))
        for code, response in responses.items():
            if code.startswith("4") or code.startswith("5"):
                content = response["content"].get("application/json")
                if content is None:
                    assert code == "414"  # gunicorn's own HTML page
                    continue
                for example in content["examples"].values():
                    assert example["value"]["success"] is False, (path, method, code)


def test_dates_have_concrete_types_and_ids_start_at_one(spec):
    operation = spec["paths"]["/user-progress/{course_id}/{user_id}/activities"]["get"]
    params = {param["name"]: param for param in operation["parameters"]}
    for name in ("startDate", "endDate"):
        branches = params[name]["schema"]["anyOf"]
        assert [(b["type"], b["format"]) for b in branches] == [
            ("string", "date"),
            ("string", "date-time"),
        ]
        assert "%2B" in params[name]["description"]
    for path, method in ENDPOINTS:
        for param in spec["paths"][path][method].get("parameters", []):
            if param["in"] == "path":
                assert param["schema"]["minimum"] == 1, (path, param["name"])


def test_the_token_scheme_comes_first_and_says_how_to_paste_it(spec):
    schemes = spec["components"]["securitySchemes"]
    first = next(iter(schemes))
    assert first == "apiToken"
    assert "Paste `Token <key>`" in schemes[first]["description"]
    operation = spec["paths"]["/user-progress/{course_id}/{user_id}"]["get"]
    assert operation["security"][0] == {"apiToken": []}


def test_refusals_before_the_view_match_the_schema(spec, client_for, learner, course, enrolled):
    client = client_for(learner)
    wrong_method = client.get("/user-progress/update")
    assert wrong_method.status_code == 405
    matches(spec, "/user-progress/update", "post", wrong_method)
    not_json = client.generic(
        "POST", "/user-progress/update", "courseId=1", content_type="text/plain"
    )
    assert not_json.status_code == 415
    matches(spec, "/user-progress/update", "post", not_json)
    too_big = client.generic(
        "POST",
        "/user-progress/bulk",
        b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}',
        content_type="application/json",
    )
    assert too_big.status_code == 413
    matches(spec, "/user-progress/bulk", "post", too_big)
    locked = client.post(
        "/user-progress/update",
        {"courseId": course.pk, "courseContentId": 1, "progressStatus": "LOCKED"},
        format="json",
    )
    assert locked.status_code == 403
    matches(spec, "/user-progress/update", "post", locked)


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
