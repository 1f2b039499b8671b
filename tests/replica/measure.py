"""What a cache miss costs the primary, with and without a replica: `make measure-replica`.

Starts the harness's primary and one streaming replica, seeds one course (LEARNERS learners,
CONTENTS items, progress rows for most of them), and serves the app twice on the same primary:
once with DATABASE_REPLICA_URLS, once without. For each cached read it makes ROUNDS misses on
each server (a write moves the stamps first, then the replica is let catch up), and prints, per
miss, the primary's statements and execution time and the replica's (pg_stat_statements), and
the client's median time. One line `REPLICA_MEASURE {json}` at the end.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.live.conftest import Gunicorn, manage, server_env
from tests.redis_tools import RedisServer
from tests.replica.cluster import PrimaryWithReplicas

LEARNERS = 300
CONTENTS = 10
ROUNDS = 20
READS = ("3.1", "3.4", "3.2", "3.5", "3.6")

SEED_ROWS = """
INSERT INTO user_course_content_progress
    (userid, courseid, coursecontentid, progressstatus, activityduration, progresspercent,
     metadata, user_course_content_progress_created_at, user_course_content_progress_updated_at)
SELECT e.userid, e.courseid, c.id,
       CASE WHEN (e.userid + c.id) %% 3 = 0 THEN 'COMPLETED' ELSE 'IN_PROGRESS' END,
       (e.userid * c.id) %% 90, ((e.userid + c.id) %% 100)::numeric, '{}'::jsonb, now(), now()
FROM enrollments e JOIN courseprogress_coursecontent c ON c.course_id = e.courseid
WHERE e.courseid = %s AND (e.userid + c.id) %% 4 <> 0
ON CONFLICT DO NOTHING
"""


def main() -> dict:
    from tests.live.conftest import personas

    clusters = PrimaryWithReplicas(replicas=1)
    redis = RedisServer()
    servers = []
    try:
        clusters.start()
        redis.start()
        base = server_env(clusters.primary.url, redis.url, THROTTLE_RATE_PROGRESS_UPDATE="off")
        manage(base, "manage.py", "migrate", "--no-input")
        logs = Path(tempfile.mkdtemp(prefix="replica-measure-"))
        with personas(base, contents=CONTENTS, load_learners=LEARNERS) as world:
            clusters.primary.sql(SEED_ROWS, [world["course"]])
            clusters.primary.sql("ANALYZE")
            variants = {
                "with_replica": {"DATABASE_REPLICA_URLS": clusters.replicas[0].url},
                "primary_only": {},
            }
            for name, extra in variants.items():
                server = Gunicorn({**base, **extra}, logs / f"{name}.log").start()
                servers.append(server)
                variants[name] = server
            return measure(clusters, world, variants)
    finally:
        for server in servers:
            server.stop()
        redis.close()
        clusters.close()


def measure(clusters, world, servers) -> dict:
    course, learner = world["course"], world["users"]["learner"]
    paths = {
        "3.1": ("learner", "GET", f"/user-progress/{course}/{learner}", None),
        "3.4": ("learner", "GET", f"/user-progress/{course}/{learner}/activities", None),
        "3.2": ("admin", "GET", f"/user-progress/course/{course}/all", None),
        "3.5": ("admin", "GET", f"/user-progress/course/{course}/analytics", None),
        "3.6": (
            "admin",
            "POST",
            "/user-progress/bulk",
            {
                "courseId": course,
                "userIds": [learner, *[u["id"] for u in world["load_learners"]][:99]],
            },
        ),
    }
    sessions = {}
    for role in ("learner", "admin", "system"):
        sessions[role] = requests.Session()
        sessions[role].headers["Authorization"] = f"Token {world['tokens'][role]}"
    percent = iter(range(10**6))

    def write(server):
        response = sessions["system"].post(
            server.url + "/user-progress/update",
            json={
                "userId": learner,
                "courseId": course,
                "courseContentId": world["contents"][0],
                "progressStatus": "IN_PROGRESS",
                "progressPercent": next(percent) % 100,
            },
            timeout=30,
        )
        response.raise_for_status()

    def send(server, read):
        role, method, path, body = paths[read]
        started = time.perf_counter()
        response = sessions[role].request(method, server.url + path, json=body, timeout=30)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed

    clusters_list = [clusters.primary, clusters.replicas[0]]
    report = {}
    for read in READS:
        for server in servers.values():  # warm: connections, tokens, permissions
            send(server, read)
        for name, server in servers.items():
            totals = [[0, 0.0], [0, 0.0]]
            times = []
            for _ in range(ROUNDS):
                write(server)
                clusters.wait_for_replay()
                before = [cluster.statement_stats() for cluster in clusters_list]
                times.append(send(server, read))
                after = [cluster.statement_stats() for cluster in clusters_list]
                for n, (old, new) in enumerate(zip(before, after, strict=True)):
                    for query, (calls, ms) in new.items():
                        if query == "SELECT $1":
                            continue  # the connection health check
                        old_calls, old_ms = old.get(query, (0, 0.0))
                        totals[n][0] += calls - old_calls
                        totals[n][1] += ms - old_ms
            report.setdefault(read, {})[name] = {
                "primary_statements": round(totals[0][0] / ROUNDS, 2),
                "primary_ms": round(totals[0][1] / ROUNDS, 3),
                "replica_statements": round(totals[1][0] / ROUNDS, 2),
                "replica_ms": round(totals[1][1] / ROUNDS, 3),
                "client_median_ms": round(statistics.median(times) * 1000, 1),
            }
            print(read, name, report[read][name], file=sys.stderr)
    return report


if __name__ == "__main__":
    print("REPLICA_MEASURE " + json.dumps(main()))
