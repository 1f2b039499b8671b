"""Responses are freed when they are sent, not when Python's cyclic collector next runs.

DRF leaves a response, its view and its request in reference cycles; with 840 KB course pages
that kept hundreds of MB per worker alive between collections (bench/RESULTS.md). The API's
middleware breaks those cycles; these requests go through Django's WSGI handler as gunicorn
calls it, with the cyclic collector off, and check that the response object is gone once the
server has closed it.
"""

import gc
import io
import json
import weakref

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test.client import RequestFactory
from rest_framework.authtoken.models import Token


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def keep_connections():
    """As Django's test client does: the test's connection stays open across requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def serve(path: str, *, user=None, method: str = "GET", body=None):
    """(status, weak reference to the response object) after a WSGI server would be done."""
    environ = RequestFactory()._base_environ(
        PATH_INFO=path, REQUEST_METHOD=method, SERVER_NAME="localhost", HTTP_HOST="localhost"
    )
    payload = json.dumps(body).encode() if body is not None else b""
    environ.update(
        {"wsgi.input": io.BytesIO(payload), "CONTENT_LENGTH": str(len(payload))},
        CONTENT_TYPE="application/json",
    )
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        environ["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    started = {}
    response = WSGIHandler()(environ, lambda status, headers: started.setdefault("s", status))
    b"".join(response)
    response.close()
    return int(started["s"].split()[0]), weakref.ref(response)


@pytest.mark.django_db
def test_api_responses_are_freed_when_sent(
    collector_off, keep_connections, learner, other_learner, instructor, course, contents, enrolled
):
    cases = [
        (f"/user-progress/{course.pk}/{learner.pk}", learner, "GET", None, 200),
        (f"/user-progress/course/{course.pk}/all", instructor, "GET", None, 200),
        (f"/user-progress/course/{course.pk}/analytics", instructor, "GET", None, 200),
        (f"/user-progress/{course.pk}/{learner.pk}", other_learner, "GET", None, 403),
        (f"/user-progress/{course.pk}/{learner.pk}", None, "GET", None, 401),
        (f"/user-progress/course/{course.pk + 1000}/all", instructor, "GET", None, 403),
        ("/user-progress/update", learner, "POST", {"courseId": "x"}, 400),
        (
            "/user-progress/update",
            learner,
            "POST",
            {
                "courseId": course.pk,
                "courseContentId": contents[0].pk,
                "progressStatus": "IN_PROGRESS",
            },
            200,
        ),
    ]
    for path, user, method, body, expected in cases:
        status, response = serve(path, user=user, method=method, body=body)
        assert status == expected, path
        assert response() is None, f"{method} {path} ({status}) outlived its request"
