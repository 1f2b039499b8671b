"""Replay paused between a stamp read and the computation, inside the app's own code.

Run by tests/replica/test_replica_reads.py with the harness's environment:
`python -m tests.replica.probe '{"course", "user", "content", "primary", "replicas"}'`.
Prints one JSON line: for a stamp read before a write and one read after it (replay paused
on every replica from just after the first stamp read), where the miss was computed, and the
stamp and percent of the entry stored in the cache.
"""

import json
import sys
import time

import psycopg

UPDATE = (
    "UPDATE user_course_content_progress SET progresspercent = %s,"
    " user_course_content_progress_updated_at = now()"
    " WHERE userid = %s AND courseid = %s AND coursecontentid = %s"
)
PERCENT = (
    "SELECT progresspercent FROM user_course_content_progress"
    " WHERE userid = %s AND courseid = %s AND coursecontentid = %s"
)


def main(args: dict) -> dict:
    import django

    django.setup()
    from django.core.cache import cache as backend

    from courseprogress import replicas
    from courseprogress.replicas import lsn_value
    from progress import read_cache, selectors

    ids = (args["user"], args["course"], args["content"])
    key = read_cache.learner_key(args["course"], args["user"])
    computed_on = []

    def compute():
        computed_on.append(replicas.reading_on())
        return selectors.learner_progress(course_id=args["course"], user_id=args["user"])

    def stored() -> tuple[str, float]:
        entry = backend.get(key)
        rows = json.loads(entry["parts"]["activityLogs"])
        (row,) = [row for row in rows if row["courseContentId"] == args["content"]]
        return entry["stamp"], float(row["progressPercent"])

    with psycopg.connect(args["primary"], autocommit=True) as primary:
        (old_percent,) = primary.execute(PERCENT, ids).fetchone()
        # 1. The stamp and the WAL position, read by the app as for any request.
        first = read_cache.learner_stamp(course_id=args["course"], user_id=args["user"])
        # 2. Every replica has replayed up to there (the harness waited), then pauses.
        for url in args["replicas"]:
            with psycopg.connect(url, autocommit=True) as replica:
                for _ in range(3000):
                    (replayed,) = replica.execute(
                        "SELECT pg_last_wal_replay_lsn()::text"
                    ).fetchone()
                    if lsn_value(replayed) >= lsn_value(first.position):
                        break
                    time.sleep(0.01)
                replica.execute("SELECT pg_wal_replay_pause()")
        try:
            # 3. Another writer changes the row, in plain SQL, on the primary.
            new_percent = float(old_percent) + 0.5  # a value the other tests never write
            primary.execute(UPDATE, (new_percent, *ids))
            # 4. The miss for the stamp of step 1: computed after the write, on a replica.
            read_cache.get_or_compute(key, first, compute, 300)
            before = dict(zip(("stored_stamp", "stored_percent"), stored(), strict=True))
            before.update(stamp=first.value, computed_on=computed_on[-1])
            # 5. A read after the write: its stamp is newer than every replica's data.
            second = read_cache.learner_stamp(course_id=args["course"], user_id=args["user"])
            read_cache.get_or_compute(key, second, compute, 300)
            after = dict(zip(("stored_stamp", "stored_percent"), stored(), strict=True))
            after.update(stamp=second.value, computed_on=computed_on[-1])
        finally:
            for url in args["replicas"]:
                with psycopg.connect(url, autocommit=True) as replica:
                    replica.execute("SELECT pg_wal_replay_resume()")
    return {
        "old_percent": float(old_percent),
        "new_percent": new_percent,
        "before_write": before,
        "after_write": after,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
