"""What any request may carry (query strings, Accept, format, OPTIONS) gets a 4xx in the
envelope, in the contract's order of checks (401 -> 403 -> 404 -> 400 -> 409), never a 500."""

import pytest

from tests.test_envelope import assert_failure

# Every API endpoint, as (method, path, body); ids filled in by the test.
ENDPOINTS = {
    "learner progress": ("get", "/user-progress/{course}/{learner}", None),
    "activities": ("get", "/user-progress/{course}/{learner}/activities", None),
    "course page": ("get", "/user-progress/course/{course}/all", None),
    "analytics": ("get", "/user-progress/course/{course}/analytics", None),
    "update": ("post", "/user-progress/update", {"courseId": 1}),
    "bulk": ("post", "/user-progress/bulk", {"courseId": 1}),
    "enrol": ("post", "/user-progress/enrollments", {"courseId": 1}),
    "move": ("patch", "/user-progress/enrollments/{enrollment}", {}),
    "token": ("post", "/auth/token", {"username": "x", "password": "y"}),
}
TOO_MANY_PARAMETERS = "&".join(f"p{i}=1" for i in range(1001))


def call(client, name, ids, query="", **extra):
    method, path, body = ENDPOINTS[name]
    url = path.format(**ids) + (f"?{query}" if query else "")
    if body is None:
        return getattr(client, method)(url, **extra)
    return getattr(client, method)(url, body, format="json", **extra)


@pytest.fixture
def ids(course, learner, enrolled):
    return {"course": course.pk, "learner": learner.pk, "enrollment": enrolled.pk}


@pytest.mark.parametrize("name", ENDPOINTS)
def test_over_1000_query_parameters_are_a_400(client_for, admin_user, ids, name):
    response = call(client_for(admin_user), name, ids, TOO_MANY_PARAMETERS)
    assert_failure(response, 400, "Too many query parameters or form fields (at most 1000).")


@pytest.mark.parametrize("name", [name for name in ENDPOINTS if name != "token"])
@pytest.mark.parametrize(
    ("query", "accept"),
    [
        (TOO_MANY_PARAMETERS, None),
        ("format=xml", None),
        ("", "application/xml"),
    ],
)
def test_anonymous_gets_401_whatever_the_query_or_accept_header(anon, ids, name, query, accept):
    """Negotiating the format and reading the query string come after authentication."""
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    assert_failure(call(anon, name, ids, query, **extra), 401)


@pytest.mark.parametrize("query", [TOO_MANY_PARAMETERS, "format=xml"])
def test_a_learner_gets_403_for_another_learner_whatever_the_query(
    client_for, other_learner, ids, query
):
    response = call(client_for(other_learner), "learner progress", ids, query)
    assert_failure(response, 403, "Access denied")


def test_an_unknown_format_is_a_400_naming_it(client_for, learner, ids):
    response = call(client_for(learner), "learner progress", ids, "format=xml")
    body = assert_failure(response, 400)
    assert body["errors"] == {"format": ["Use one of: json, api."]}


def test_an_unsatisfiable_accept_header_is_a_406_once_authorised(client_for, learner, ids):
    response = call(client_for(learner), "learner progress", ids, HTTP_ACCEPT="application/xml")
    assert_failure(response, 406)


def test_format_json_is_still_understood(client_for, learner, ids):
    response = call(client_for(learner), "learner progress", ids, "format=json")
    assert response.status_code == 200


@pytest.mark.parametrize("name", [name for name in ENDPOINTS if name != "token"])
def test_options_does_not_claim_the_endpoints_success(client_for, admin_user, ids, name):
    method, path, _ = ENDPOINTS[name]
    response = client_for(admin_user).options(path.format(**ids))
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Allowed methods and formats retrieved successfully"
    assert body["results"]["parses"] == ["application/json"]
    assert response["Allow"].split(", ").count(method.upper()) == 1
