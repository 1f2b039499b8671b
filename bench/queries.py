"""SQL queries per request, and the plans of the heavy ones: `python -m bench.queries`.

Each benchmarked request is sent through Django's test client under CaptureQueriesContext,
as in a running server: once to prime (connection, the user's token in the token cache), then
cold (the endpoint's cache entries removed) and warm (again), with the same users and tokens as
the load test. For the update, cold creates a row and warm changes it. Every SELECT of the cold
request is then run again under EXPLAIN (ANALYZE, BUFFERS); the slowest plans are kept for
bench/RESULTS.md.

Counts are what Django logs: BEGIN / COMMIT / SAVEPOINT / RELEASE of atomic blocks included, the
`SELECT 1` of CONN_HEALTH_CHECKS (once per request on a reused connection, sent by psycopg
directly) not.

Prints one line `BENCH_QUERIES {json}`.
"""

import argparse
import json
import random
import re
import sys
import time

from bench.calls import BenchData, drop_cached_reads, make_requests, setup_django

ENDPOINTS = ("learner", "activities", "course_page", "analytics", "update", "bulk")
PLAN_KEEP = re.compile(
    r"(Seq Scan|Index Scan|Index Only Scan|Bitmap|Hash Join|Nested Loop|Merge Join|Aggregate|"
    r"Sort Method|Sort Key|Execution Time|Planning Time|Rows Removed|Subquery|SubPlan|Gather|"
    r"Memoize|Limit|Buffers)"
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.queries")
    parser.add_argument("--data", required=True)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the cold SELECTs")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    args = parser.parse_args(argv)

    setup_django()
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    data = BenchData.read(args.data)
    result = {}
    for endpoint in args.endpoints.split(","):
        client, (send,) = make_requests(data, endpoint, random.Random(11), 1)
        before_cold = None
        if endpoint == "update":
            before_cold, cold_send, warm_send = update_pair(data)
        else:
            cold_send = warm_send = send
        cold_send(client)  # imports, the connection, and the user's token into the token cache
        drop_cached_reads(cache, [endpoint])  # this endpoint's entries only
        if before_cold:
            before_cold()
        with CaptureQueriesContext(connection) as cold:
            response = cold_send(client)
        status_cold = response.status_code
        path = response.wsgi_request.get_full_path()
        with CaptureQueriesContext(connection) as warm:
            response = warm_send(client)
        entry = {
            "cold": len(cold.captured_queries),
            "warm": len(warm.captured_queries),
            "status": [status_cold, response.status_code],
            "path": path,
            "cold_sql": [q["sql"] for q in cold.captured_queries],
            "warm_sql": [q["sql"] for q in warm.captured_queries],
        }
        if args.explain and endpoint in ("course_page", "analytics", "learner", "bulk"):
            entry["plans"] = explain(connection, cold.captured_queries)
        result[endpoint] = entry
    print("BENCH_QUERIES " + json.dumps(result), flush=True)


def update_pair(data):
    """(delete the row, a post that creates it, a post that changes it): one learner, one item
    of the POST course; the second post is a real update, not a no-op repeat."""
    import json

    user_id, token = data.learners[7]
    content = data.post_contents[-1]
    headers = {"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "application/json"}

    def post(status, percent):
        body = {
            "courseId": data.post_course,
            "courseContentId": content,
            "progressStatus": status,
            "progressPercent": percent,
            "activityDuration": percent // 5,
        }
        return lambda c: c.post(
            "/user-progress/update", json.dumps(body), content_type="application/json", **headers
        )

    def delete_row():
        from progress.models import ContentProgress

        ContentProgress.objects.filter(
            user_id=user_id, course_id=data.post_course, content_id=content
        ).delete()

    return delete_row, post("IN_PROGRESS", 30), post("IN_PROGRESS", 60)


def explain(connection, captured) -> list[dict]:
    """The cold request's SELECTs under EXPLAIN ANALYZE, slowest first (at most 4)."""
    plans = []
    with connection.cursor() as cursor:
        for query in captured:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            started = time.perf_counter()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            lines = [row[0] for row in cursor.fetchall()]
            elapsed = time.perf_counter() - started
            execution = next(
                (
                    float(m.group(1))
                    for line in lines
                    if (m := re.search(r"Execution Time: ([\d.]+)", line))
                ),
                elapsed * 1000,
            )
            plans.append(
                {
                    "sql": sql,
                    "execution_ms": execution,
                    "plan": lines,
                    "key_lines": [line for line in lines if PLAN_KEEP.search(line)][:40],
                }
            )
    plans.sort(key=lambda plan: plan["execution_ms"], reverse=True)
    return plans[:4]


if __name__ == "__main__":
    sys.exit(main())
