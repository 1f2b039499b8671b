"""The replica harness: a primary, two streaming replicas, a private Redis and a gunicorn.

Everything runs outside the test process (clusters started with the PostgreSQL binaries, the
app under gunicorn on production settings), so the test process's own database settings and
the machine's PostgreSQL are never used. Run with `make check-replica` (marker `replica`).
"""

from dataclasses import dataclass

import pytest
import requests

from tests.live.conftest import Gunicorn, manage, personas, server_env
from tests.redis_tools import RedisServer
from tests.replica.cluster import PrimaryWithReplicas, available

PROGRESS_TABLE = "user_course_content_progress"


@pytest.fixture(autouse=True)
def _clean_cache():
    """Overrides the suite-wide fixture: the harness never uses the test process's cache."""
    return


@dataclass
class Harness:
    clusters: PrimaryWithReplicas
    server: Gunicorn
    env: dict
    world: dict

    @property
    def primary(self):
        return self.clusters.primary

    @property
    def replicas(self):
        return self.clusters.replicas

    def client(self, role: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.world['tokens'][role]}"
        return session

    def counts(self) -> list[dict[str, int]]:
        """Statements run so far on the primary and on each running replica."""
        return [
            cluster.statements() if cluster.running() else {}
            for cluster in [self.primary, *self.replicas]
        ]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(f"the replica harness {reason}")
    clusters = PrimaryWithReplicas(replicas=2)
    redis = RedisServer()
    server = None
    try:
        clusters.start()
        redis.start()
        env = server_env(
            clusters.primary.url,
            redis.url,
            DATABASE_REPLICA_URLS=",".join(replica.url for replica in clusters.replicas),
            REPLICA_RETRY_SECONDS="1",
            # Tokens and permissions stay cached through the run, so that the statements
            # counted on the primary are the reads' own, however slow the machine.
            AUTH_TOKEN_CACHE_TTL="3600",
            AUTH_PERMISSION_CACHE_TTL="3600",
            THROTTLE_RATE_PROGRESS_UPDATE="off",
        )
        manage(env, "manage.py", "migrate", "--no-input")
        with personas(env) as world:
            server = Gunicorn(env, tmp_path_factory.mktemp("replica") / "gunicorn.log").start()
            yield Harness(clusters, server, env, world)
    finally:
        if server is not None:
            server.stop()
        redis.close()
        clusters.close()


class Served:
    """What each server ran during a `with Served(harness) as served:` block: `primary`, and
    `replicas` (one dict each), as {statement: calls} (pg_stat_statements)."""

    def __init__(self, harness: Harness):
        self.harness = harness
        self.primary: dict[str, int] = {}
        self.replicas: list[dict[str, int]] = []

    def __enter__(self) -> "Served":
        self.before = self.harness.counts()
        return self

    def __exit__(self, *exc) -> None:
        deltas = [
            {query: calls - old.get(query, 0) for query, calls in new.items()}
            for old, new in zip(self.before, self.harness.counts(), strict=True)
        ]
        self.primary, *self.replicas = (
            {query: calls for query, calls in delta.items() if calls} for delta in deltas
        )

    @staticmethod
    def reads_of_progress(statements: dict[str, int]) -> int:
        """Statements that read progress rows: the computation of a read, never its stamp."""
        return sum(
            calls
            for query, calls in statements.items()
            if PROGRESS_TABLE in query and query.lstrip().upper().startswith("SELECT")
        )

    @property
    def primary_computed(self) -> int:
        return self.reads_of_progress(self.primary)

    @property
    def replicas_computed(self) -> list[int]:
        return [self.reads_of_progress(statements) for statements in self.replicas]

    @property
    def primary_statements(self) -> dict[str, int]:
        """The primary's SQL, less the connection health check (`SELECT 1`)."""
        return {query: calls for query, calls in self.primary.items() if query != "SELECT $1"}
