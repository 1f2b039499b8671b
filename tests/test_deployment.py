"""Production settings: `check --deploy` is clean, SECRET_KEY is required, DEBUG is off by
default, and no response shows a traceback or SQL."""

import os
import secrets

import pytest

from tests.helpers import manage_py

PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "progress.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
}


def manage(*args, **env):
    # manage.py reads .secret_key when SECRET_KEY is unset: after `make run` the clone has one.
    return manage_py(*args, **{"SECRET_KEY_FILE": os.devnull + ".missing", **env})


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_key_is_required_when_debug_is_off():
    result = manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_debug_is_off_by_default():
    result = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.DEBUG)",
        SECRET_KEY="k",
    )
    assert result.stdout.strip() == "False"


@pytest.mark.django_db
def test_no_traceback_or_sql_in_error_responses(client_for, learner, course, enrolled, monkeypatch):
    from django.db import connection

    from progress import selectors

    def broken(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_here")

    monkeypatch.setattr(selectors, "cached_learner_progress", broken)
    response = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    text = response.content.decode()
    assert response.status_code == 500
    for leak in ("Traceback", "no_such_table_here", "SELECT", "File ", ".py"):
        assert leak not in text
