import pytest
from django.db import connection


@pytest.mark.django_db
def test_healthy(anon):
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_database_down_is_503(anon, monkeypatch):
    def refuse(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = anon.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


@pytest.mark.django_db
def test_cache_trouble_is_degraded_not_failed(anon, monkeypatch):
    from django.core.cache import cache

    monkeypatch.setattr(cache, "get", lambda *a, **k: None)
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "degraded"}


@pytest.mark.django_db
def test_schema_and_docs_are_served(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/user-progress/update" in schema.json()["paths"]
    docs = anon.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "10.0.0.5", "localhost", "evil.example"])
def test_healthz_answers_a_probe_whatever_the_host_header(anon, settings, host):
    """Docker's HEALTHCHECK and load balancers probe by address, over plain HTTP."""
    settings.ALLOWED_HOSTS = ["progress.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = anon.get("/healthz", HTTP_HOST=host)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}
    # The rest of the site still refuses that Host and still redirects to HTTPS.
    assert anon.get("/user-progress/1/1", HTTP_HOST=host).status_code == 400
    assert anon.get("/healthz/", HTTP_HOST="progress.example.com").status_code == 301


@pytest.mark.django_db
def test_the_site_root_points_to_the_docs(anon):
    response = anon.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["results"]["docs"] == "/api/docs/"
    assert anon.get(body["results"]["docs"]).status_code == 200
    assert anon.get(body["results"]["schema"]).status_code == 200
    browser = anon.get("/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert (browser.status_code, browser["Location"]) == (302, "/api/docs/")
    assert anon.post("/").status_code == 405
