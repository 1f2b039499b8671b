"""The bench's Redis database and PostgreSQL database, for the runs' before/after hooks, and the
check of the POST course's rows after a writing run (none lost, none duplicated)."""

import contextlib
import time
from pathlib import Path


class Databases:
    def __init__(self, env: dict):
        import psycopg
        import redis

        self.redis = redis.Redis.from_url(env["REDIS_URL"])
        self.prefix = env["CACHE_KEY_PREFIX"]
        self.url = env["DATABASE_URL"]
        self.pg = psycopg.connect(self.url, autocommit=True)

    def sql(self, query: str, params=()) -> list[tuple]:
        """Run one statement; reconnect and retry if the server went away (shared machines:
        somebody may restart PostgreSQL while the bench runs)."""
        import psycopg

        for attempt in range(30):
            try:
                cursor = self.pg.execute(query, params)
                return cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError:
                if attempt == 29:
                    raise
                time.sleep(1)
                with contextlib.suppress(psycopg.OperationalError):
                    self.pg = psycopg.connect(self.url, autocommit=True)
        return []

    def postmaster_started(self) -> str:
        return str(self.sql("SELECT pg_postmaster_start_time()")[0][0])

    def keys(self, kind: str) -> int:
        # SCAN may return a key twice: count distinct names.
        return len(set(self.redis.scan_iter(match=f"{self.prefix}:*:{kind}:*", count=5000)))

    def drop(self, kind: str) -> None:
        self.delete_matching(f"*:{kind}:*")

    def clear(self) -> None:
        """Every key the bench made (prefix cpbench), and nothing else."""
        self.delete_matching("*")

    def delete_matching(self, pattern: str) -> None:
        """The bench's keys matching `pattern` (after the prefix), deleted in batches."""
        batch = []
        for key in self.redis.scan_iter(match=f"{self.prefix}:{pattern}", count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                self.redis.delete(*batch)
                batch = []
        if batch:
            self.redis.delete(*batch)

    def reset_post_course(self, course_id: int) -> None:
        self.sql("DELETE FROM user_course_content_progress WHERE courseid = %s", [course_id])
        self.vacuum("enrollments", "user_course_content_progress")

    def vacuum(self, *tables: str) -> None:
        """VACUUM (ANALYZE) what the writing rounds churn: every progress write rewrites its
        learner's enrollment row (the stamp). A server runs autovacuum for this; the shared
        server of these machines has it off (`SHOW autovacuum`), and without it the stamps'
        index scans wade through dead row versions (bench/notes.md, issue 17 third pass)."""
        self.sql(f"VACUUM (ANALYZE) {', '.join(tables)}")

    def post_course_rows(self, course_id: int) -> list[tuple[int, int, int]]:
        return self.sql(
            "SELECT userid, coursecontentid, progressid FROM user_course_content_progress "
            "WHERE courseid = %s",
            [course_id],
        )

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


def verify_writes(
    databases: Databases, course_id: int, triples_path: Path, connections: int
) -> dict:
    """Rows after the run against the accepted (2xx) answers: none lost, none duplicated."""
    time.sleep(1.0)  # requests in flight when wrk stopped finish on the server
    accepted = {}
    if triples_path.exists():
        for line in triples_path.read_text().splitlines():
            user, content, pid = (int(x) for x in line.split())
            accepted[(user, content)] = pid
    rows = databases.post_course_rows(course_id)
    stored = {}
    duplicated = 0
    for user, content, pid in rows:
        if (user, content) in stored:
            duplicated += 1
        stored[(user, content)] = pid
    lost = sum(1 for pair, pid in accepted.items() if stored.get(pair) != pid)
    unanswered = sum(1 for pair in stored if pair not in accepted)
    return {
        "accepted_rows": len(accepted),
        "rows_after": len(rows),
        "lost": lost,
        "duplicated": duplicated,
        "in_flight_at_stop": unanswered,
        "ok": lost == 0 and duplicated == 0 and unanswered <= connections,
    }
