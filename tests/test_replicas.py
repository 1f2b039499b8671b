"""Replica settings and the default path (issue 18). Reads from real replicas are checked by
the replica harness (tests/replica, `make check-replica`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courseprogress.replicas import lsn_value

ROOT = Path(__file__).resolve().parents[1]
PRINT_DATABASES = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'aliases': s.REPLICA_DATABASES, 'routers': s.DATABASE_ROUTERS, "
    "'databases': {k: {'HOST': v.get('HOST'), 'PORT': v.get('PORT'), 'NAME': v.get('NAME'), "
    "'TEST': v.get('TEST'), 'OPTIONS': v.get('OPTIONS')} for k, v in s.DATABASES.items()}}))"
)


def settings_with(**env) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "test-only-secret-key"}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + PRINT_DATABASES],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_replica_urls_become_aliases_that_mirror_the_primary_in_tests():
    result = settings_with(
        DATABASE_URL="postgres://app@primary:5432/cp",
        DATABASE_REPLICA_URLS="postgres://app@replica-a:5432/cp, postgres://app@replica-b:6432/cp",
        REPLICA_CONNECT_TIMEOUT="3",
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["aliases"] == ["replica_1", "replica_2"]
    assert found["routers"] == ["courseprogress.replicas.ReplicaRouter"]
    databases = found["databases"]
    assert databases["default"]["HOST"] == "primary"
    assert (databases["replica_1"]["HOST"], databases["replica_2"]["PORT"]) == ("replica-a", 6432)
    assert databases["replica_2"]["TEST"]["MIRROR"] == "default"
    assert databases["replica_1"]["OPTIONS"]["connect_timeout"] == 3
    assert "statement_timeout" in databases["replica_1"]["OPTIONS"]["options"]


def test_without_replica_urls_everything_stays_on_the_primary():
    result = settings_with(DATABASE_URL="postgres://app@primary:5432/cp")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["aliases"] == []
    assert found["routers"] == []
    assert list(found["databases"]) == ["default"]


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_REPLICA_URLS": "postgres://app@replica:5432/cp"},  # SQLite primary
        {
            "DATABASE_URL": "postgres://app@primary:5432/cp",
            "DATABASE_REPLICA_URLS": "sqlite:///replica.db",
        },
    ],
)
def test_replicas_need_postgresql_on_both_sides(env):
    result = settings_with(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_wal_positions_compare_as_numbers():
    assert lsn_value("0/4000000") == 0x4000000
    assert lsn_value("1/0") > lsn_value("0/FFFFFFFF")
    assert lsn_value("16/B374D848") > lsn_value("16/B374D847")


@pytest.mark.django_db
def test_without_replicas_the_stamp_does_not_read_the_wal_position(client_for, learner, enrolled):
    client = client_for(learner)
    course_id = enrolled.course_id
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/user-progress/{course_id}/{learner.pk}").status_code == 200
        assert client.get(f"/user-progress/course/{course_id}/analytics").status_code == 403
        bulk = client.post(
            "/user-progress/bulk", {"courseId": course_id, "userIds": [learner.pk]}, format="json"
        )
        assert bulk.status_code == 200
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "wal_lsn" in q["sql"]]
