"""What reaches gunicorn before the app has a say (issue 13), on a live server: the
X-Forwarded-For header and the throttles, Content-Type charsets, chunked bodies, too many query
parameters; and the throttles without Redis, counted once across two workers.

Each server runs on production settings against DATABASE_URL, with its own cache key prefix,
so reruns and other runs never share a count.
"""

import json
import uuid

import pytest
import requests

from tests.live.conftest import personas, running_gunicorn, server_env

pytestmark = pytest.mark.live

WRONG = {"username": "nobody-at-all", "password": "wrong"}


@pytest.fixture(scope="module")
def live(migrated, redis_url, tmp_path_factory):
    env = server_env(
        migrated,
        redis_url,
        THROTTLE_RATE_AUTH_TOKEN="5/min",
        THROTTLE_RATE_PROGRESS_UPDATE="off",
        CACHE_KEY_PREFIX=f"cplive-{uuid.uuid4().hex[:10]}",
    )
    log = tmp_path_factory.mktemp("requests") / "gunicorn.log"
    with personas(env) as data, running_gunicorn(env, log) as server:
        yield server, data


def test_a_new_forwarded_address_per_request_does_not_escape_the_login_limit(live):
    server, _ = live
    codes = [
        requests.post(
            f"{server.url}/auth/token",
            json=WRONG,
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
            timeout=10,
        ).status_code
        for n in range(1, 9)
    ]
    assert codes == [401] * 5 + [429] * 3


@pytest.mark.parametrize("charset", ["rot13", "zlib", "base64", "hex"])
def test_a_charset_that_is_not_text_is_a_json_400(live, charset):
    server, data = live
    response = requests.get(
        f"{server.url}/user-progress/{data['course']}/{data['users']['learner']}?a=1",
        headers={"Content-Type": f"text/plain; charset={charset}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "success": False,
        "message": f"The charset '{charset}' is not a text encoding.",
    }


def test_a_charset_that_is_not_text_under_admin_is_an_html_400(live):
    server, _ = live
    response = requests.post(
        f"{server.url}/admin/login/?next=/admin/",
        data=b"username=x",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=zlib"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")


def chunks(body: bytes, size: int = 7):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_update_is_read(live):
    server, data = live
    body = json.dumps(
        {
            "courseId": data["course"],
            "courseContentId": data["contents"][2],
            "progressStatus": "IN_PROGRESS",
            "progressPercent": 30,
        }
    ).encode()
    headers = {
        "Authorization": f"Token {data['tokens']['learner']}",
        "Content-Type": "application/json",
    }
    response = requests.post(
        f"{server.url}/user-progress/update", data=chunks(body), headers=headers, timeout=10
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["results"]["progressPercent"] == "30.00"
    read = requests.get(
        f"{server.url}/user-progress/{data['course']}/{data['users']['learner']}",
        headers=headers,
        timeout=10,
    ).json()["results"]["activityLogs"]
    assert [
        log["progressPercent"] for log in read if log["courseContentId"] == data["contents"][2]
    ] == ["30.00"]


def test_a_chunked_body_over_the_limit_is_a_json_413(live):
    server, data = live
    body = b'{"metadata": "' + b"x" * (1024 * 1024) + b'"}'
    response = requests.post(
        f"{server.url}/user-progress/update",
        data=chunks(body, 64 * 1024),
        headers={
            "Authorization": f"Token {data['tokens']['learner']}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json() == {"success": False, "message": "Request body too large"}


@pytest.mark.parametrize("who", [None, "learner", "admin"])
def test_over_1000_query_parameters(live, who):
    """1001 empty parameters fit in gunicorn's request line; they are a 400 once the caller
    is known (401 before that)."""
    server, data = live
    query = "&".join(["a="] * 1001)
    headers = {"Authorization": f"Token {data['tokens'][who]}"} if who else {}
    response = requests.get(
        f"{server.url}/user-progress/{data['course']}/{data['users']['learner']}?{query}",
        headers=headers,
        timeout=10,
    )
    expected = 401 if who is None else 400
    assert response.status_code == expected
    assert response.json()["success"] is False


def test_without_redis_two_workers_share_one_login_count(migrated, tmp_path):
    """No REDIS_URL: the throttle counts in a database table, so two workers together let
    exactly the rate through (each counting on its own let about twice through)."""
    env = server_env(
        migrated,
        "",
        THROTTLE_RATE_AUTH_TOKEN="6/min",
        CACHE_KEY_PREFIX=f"cplive-{uuid.uuid4().hex[:10]}",
    )
    env.pop("REDIS_URL")
    with running_gunicorn(env, tmp_path / "gunicorn.log", workers=2) as server:
        codes = []
        for _ in range(16):
            with requests.Session() as fresh:  # a new connection each time: both workers serve
                codes.append(fresh.post(f"{server.url}/auth/token", json=WRONG, timeout=10))
        statuses = [response.status_code for response in codes]
    assert statuses == [401] * 6 + [429] * 10, statuses
