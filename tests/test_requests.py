"""What any request may carry (query strings, Accept, format, OPTIONS) gets a 4xx in the
envelope, in the contract's order of checks (401 -> 403 -> 404 -> 400 -> 409), never a 500."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest

from progress.models import ContentProgress
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


# --- through the real WSGI entry (config.wsgi.application), as gunicorn calls it -------------


def wsgi(method, path, *, query="", body=b"", headers=None, chunked=False):
    """(status, headers, body) of config.wsgi.application for one request. A chunked body is
    given to the application as a server gives it: decoded, with no Content-Length."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    environ = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        QUERY_STRING=query,
        SERVER_NAME="localhost",
        HTTP_HOST="localhost",
    )
    environ["wsgi.input"] = io.BytesIO(body)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE",) else f"HTTP_{key}"] = value
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: the test's transaction must survive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        content = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], started["headers"], content


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["rot13", "zlib", "base64", "hex", "bz2", "uu"])
@pytest.mark.parametrize("path", ["/user-progress/1/1", "/auth/token", "/healthz"])
def test_a_charset_that_is_not_a_text_encoding_is_a_json_400(charset, path):
    status, headers, content = wsgi(
        "GET", path, query="a=1", headers={"Content-Type": f"text/plain; charset={charset}"}
    )
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(content) == {
        "success": False,
        "message": f"The charset '{charset}' is not a text encoding.",
    }


@pytest.mark.django_db
def test_a_bad_charset_under_admin_is_an_html_400():
    status, headers, content = wsgi(
        "POST",
        "/admin/login/",
        query="next=/admin/",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=rot_13"},
    )
    assert status == 400
    assert headers["Content-Type"].startswith("text/html")
    assert b"<h1>Bad Request (400)</h1>" in content


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "latin-1", "no-such-charset"])
def test_text_charsets_and_unknown_ones_pass(charset):
    status, _, _ = wsgi(
        "GET", "/healthz", query="a=1", headers={"Content-Type": f"text/plain; charset={charset}"}
    )
    assert status == 200


def test_a_chunked_body_is_read(client_for, learner, course, contents, enrolled):
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=learner)
    body = json.dumps(
        {"courseId": course.pk, "courseContentId": contents[0].pk, "progressStatus": "COMPLETED"}
    ).encode()
    status, _, content = wsgi(
        "POST",
        "/user-progress/update",
        body=body,
        chunked=True,
        headers={"Content-Type": "application/json", "Authorization": f"Token {token.key}"},
    )
    assert status == 200, content
    assert json.loads(content)["results"]["progressStatus"] == "COMPLETED"
    assert ContentProgress.objects.get(user=learner, content=contents[0]).status == "COMPLETED"


def test_a_chunked_body_over_the_limit_is_a_413(settings, learner, course, contents, enrolled):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"courseId": course.pk, "metadata": {"a": "x" * 1000}}).encode()
    status, _, content = wsgi(
        "POST",
        "/user-progress/update",
        body=body,
        chunked=True,
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert json.loads(content) == {"success": False, "message": "Request body too large"}
    assert not ContentProgress.objects.exists()
