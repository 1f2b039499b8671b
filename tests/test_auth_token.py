import pytest
from rest_framework.authtoken.models import Token


@pytest.mark.django_db
def test_token_for_good_credentials(anon, learner):
    response = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["results"] == {"token": Token.objects.get(user=learner).key}


@pytest.mark.django_db
def test_token_works_for_the_api(anon, learner, course, enrolled):
    token = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    ).json()["results"]["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anon.get(f"/user-progress/{course.pk}/{learner.pk}").status_code == 200


@pytest.mark.django_db
def test_same_token_twice(anon, learner):
    first = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    second = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    assert first.json()["results"]["token"] == second.json()["results"]["token"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [{"username": "learner", "password": "wrong"}, {"username": "nobody", "password": "pw"}],
)
def test_bad_credentials_are_401(anon, learner, credentials):
    response = anon.post("/auth/token", credentials, format="json")
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_inactive_user_gets_no_token(anon, learner):
    learner.is_active = False
    learner.save()
    response = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"username": "learner"}, {"username": 5, "password": []}])
def test_missing_fields_are_400(anon, body):
    response = anon.post("/auth/token", body, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "errors" in response.json()


@pytest.mark.django_db
def test_a_bad_authorization_header_does_not_block_login(anon, learner):
    anon.credentials(HTTP_AUTHORIZATION="Token stale")
    response = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    assert response.status_code == 200
