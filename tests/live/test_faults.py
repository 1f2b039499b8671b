"""Faults under load: Redis killed and restarted, PostgreSQL restarted, a gunicorn worker killed.

About 30 seconds of load from 20 client threads against a gunicorn with 2 workers on
production settings, with a private redis-server as its cache. While the load runs, the three
faults happen one after the other. What a user would notice is asserted:
- no 5xx and no failed connection outside a few seconds around a PostgreSQL restart or a worker
  kill, and none at all while Redis is down (the contract: Redis never fails a request);
- no request hangs: every one is answered or gives up within its timeout;
- no progress lost or duplicated: every accepted update is in the database, once, and each row
  holds what the merge of the updates that reached it gives; reads agree with the database;
- /healthz says the cache is "degraded" while Redis is down and "ok" again after.
"""

import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests.live.conftest import personas, running_gunicorn, server_env
from tests.redis_tools import RedisServer

pytestmark = pytest.mark.live

LOAD_SECONDS = 30
CLIENTS = 20
TIMEOUT = (5, 10)  # connect, read: seconds
HANG_LIMIT = 15  # no request may take longer than this, answered or not
LEARNERS = 40
CONTENTS = 10
# A request that overlaps [fault start - BEFORE, fault end + AFTER] may fail.
WINDOW_BEFORE = 1.0
WINDOW_AFTER = 4.0


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    status: int | None = None
    error: str | None = None
    pair: tuple[int, int] | None = None
    duration: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status or 0) >= 500

    def overlaps(self, window: tuple[float, float]) -> bool:
        return self.started <= window[1] and self.ended >= window[0]


@dataclass
class Fault:
    name: str
    started: float
    ended: float

    @property
    def window(self) -> tuple[float, float]:
        return (self.started - WINDOW_BEFORE, self.ended + WINDOW_AFTER)


def postgres_cluster() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_cluster(), "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def pg_ready(database_url: str) -> bool:
    parts = urlsplit(database_url)
    result = subprocess.run(
        ["pg_isready", "-q", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)],
        check=False,
        timeout=10,
    )
    return result.returncode == 0


@pytest.fixture
def restartable_postgres(migrated):
    """The machine's PostgreSQL, which this test may restart: it is up again afterwards."""
    host = urlsplit(migrated).hostname
    if host not in {"127.0.0.1", "localhost", "::1"} or not shutil.which("pg_ctlcluster"):
        pytest.skip("restarting PostgreSQL needs the local cluster and pg_ctlcluster")
    if not os.path.isdir("/etc/postgresql") or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs root and /etc/postgresql")
    yield migrated
    if not pg_ready(migrated):
        with contextlib.suppress(subprocess.SubprocessError):
            pg_ctl("start")
    deadline = time.monotonic() + 60
    while not pg_ready(migrated) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pg_ready(migrated), "PostgreSQL is not back up after the test"


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    server = RedisServer().start()
    yield server
    server.close()


def wait_for(predicate, timeout: float, interval: float = 0.2):
    """predicate()'s first truthy value within timeout, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError):
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    return None


class Load:
    """CLIENTS threads, each looping over a mix of progress updates and reads until stopped."""

    def __init__(self, base_url: str, data: dict):
        self.base = base_url
        self.course = data["course"]
        self.contents = data["contents"]
        self.learners = data["load_learners"]
        self.staff_token = data["tokens"]["instructor"]
        self.pairs = [(n, content) for n in range(len(self.learners)) for content in self.contents]
        self.sequence = itertools.count(1)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.outcomes: list[Outcome] = []

    def next_update(self):
        with self.lock:
            number = next(self.sequence)
        learner, content = self.pairs[number % len(self.pairs)]
        return self.learners[learner], content, number

    def one(self, session: requests.Session, rng: random.Random) -> Outcome:
        roll = rng.random()
        pair = duration = None
        if roll < 0.6:
            learner, content, duration = self.next_update()
            pair = (learner["id"], content)
            kind, method, path, token = "update", "POST", "/user-progress/update", learner["token"]
            body = {
                "courseId": self.course,
                "courseContentId": content,
                "progressStatus": "IN_PROGRESS",
                "activityDuration": duration,
                "progressPercent": duration % 100,
            }
        elif roll < 0.9:
            learner = rng.choice(self.learners)
            kind, method, token, body = "learner", "GET", learner["token"], None
            path = f"/user-progress/{self.course}/{learner['id']}"
        else:
            kind, method, token, body = "course", "GET", self.staff_token, None
            path = rng.choice(
                [
                    f"/user-progress/course/{self.course}/all?limit=20",
                    f"/user-progress/course/{self.course}/analytics",
                ]
            )
        started = time.monotonic()
        outcome = Outcome(kind, started, started, pair=pair, duration=duration)
        try:
            response = session.request(
                method,
                self.base + path,
                json=body,
                headers={"Authorization": f"Token {token}"},
                timeout=TIMEOUT,
            )
            outcome.status = response.status_code
        except requests.RequestException as exc:
            outcome.error = type(exc).__name__
        outcome.ended = time.monotonic()
        return outcome

    def client(self, index: int) -> None:
        rng = random.Random(1000 + index)
        mine = []
        with requests.Session() as session:
            while not self.stop.is_set():
                mine.append(self.one(session, rng))
        with self.lock:
            self.outcomes.extend(mine)


def healthz(base: str) -> tuple[int, dict]:
    response = requests.get(f"{base}/healthz", timeout=5)
    return response.status_code, response.json()


class HealthMonitor:
    """/healthz every 0.25 s while the load runs, for the report: what an operator would see."""

    def __init__(self, base: str):
        self.base = base
        self.samples: list[tuple[float, int | str, dict]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.25):
            now = time.monotonic()
            try:
                status, body = healthz(self.base)
            except (requests.RequestException, ValueError) as exc:
                status, body = type(exc).__name__, {}
            self.samples.append((now, status, body))

    def timeline(self, t0: float) -> str:
        """Runs of identical answers: '0.3-4.1 s 200 cache ok', ..."""
        runs = []
        for when, status, body in self.samples:
            label = f"{status} " + " ".join(f"{k}={v}" for k, v in sorted(body.items()))
            if runs and runs[-1][2] == label:
                runs[-1][1] = when
            else:
                runs.append([when, when, label])
        return "; ".join(f"{a - t0:.1f}-{b - t0:.1f} s: {label}" for a, b, label in runs)


def test_faults_under_load(restartable_postgres, private_redis, tmp_path):
    database_url = restartable_postgres
    env = server_env(
        database_url,
        private_redis.url,
        CACHE_KEY_PREFIX=f"cpfaults{os.getpid()}",
        # The throttle keeps counting in Redis (and fails open while Redis is away), at a rate
        # this load never reaches, so that a 429 hides nothing.
        THROTTLE_RATE_PROGRESS_UPDATE="100000/min",
    )
    log = tmp_path / "gunicorn.log"
    with (
        personas(env, contents=CONTENTS, load_learners=LEARNERS) as data,
        running_gunicorn(env, log, workers=2) as server,
    ):
        base = server.url
        load = Load(base, data)
        faults: list[Fault] = []
        seen = {}
        monitor = HealthMonitor(base)
        pool = ThreadPoolExecutor(CLIENTS)
        t0 = time.monotonic()
        futures = [pool.submit(load.client, index) for index in range(CLIENTS)]
        monitor.thread.start()
        try:
            # Redis: killed, then started again on the same port, empty.
            time.sleep(4)
            start = time.monotonic()
            private_redis.kill()
            seen["redis down"] = wait_for(
                lambda: (h := healthz(base))[1].get("cache") == "degraded" and h, 5
            )
            time.sleep(max(0.0, start + 4 - time.monotonic()))
            private_redis.start()
            seen["redis back"] = wait_for(
                lambda: (h := healthz(base))[1].get("cache") == "ok" and h, 10
            )
            faults.append(Fault("redis", start, time.monotonic()))

            # PostgreSQL: restarted (fast shutdown: open connections are cut).
            time.sleep(max(0.0, t0 + 12 - time.monotonic()))
            start = time.monotonic()
            pg_ctl("restart")
            seen["postgres back"] = wait_for(
                lambda: (h := healthz(base))[0] == 200 and h[1]["database"] == "ok" and h, 20
            )
            faults.append(Fault("postgres", start, time.monotonic()))

            # A gunicorn worker: SIGKILL; the master starts another. Late enough that the two
            # faults' windows do not overlap, so that each failure is put down to one of them.
            kill_at = max(t0 + 22, faults[-1].ended + WINDOW_AFTER + WINDOW_BEFORE + 0.5)
            time.sleep(max(0.0, kill_at - time.monotonic()))
            workers = server.worker_pids()
            start = time.monotonic()
            os.kill(workers[0], signal.SIGKILL)
            seen["worker replaced"] = wait_for(
                lambda: len(pids := server.worker_pids()) == 2 and workers[0] not in pids and pids,
                30,
            )
            faults.append(Fault("worker", start, time.monotonic()))

            time.sleep(max(0.0, max(t0 + LOAD_SECONDS, start + 6) - time.monotonic()))
        finally:
            load.stop.set()
            monitor.stop.set()
            for future in futures:
                future.result(timeout=60)
            pool.shutdown()
            monitor.thread.join(10)
        seen["after"] = healthz(base)
        reads = {
            learner["id"]: requests.get(
                f"{base}/user-progress/{data['course']}/{learner['id']}",
                headers={"Authorization": f"Token {learner['token']}"},
                timeout=10,
            ).json()["results"]
            for learner in data["load_learners"]
        }
        stored = stored_rows(database_url, data)
        report = summarise(load.outcomes, faults, t0, seen, log, stored)
        report += f"\n/healthz: {monitor.timeline(t0)}"
        print(report)
        (tmp_path / "summary.txt").write_text(report)

        # /healthz followed Redis and PostgreSQL down and up again.
        assert seen["redis down"] == (200, {"status": "ok", "database": "ok", "cache": "degraded"})
        assert seen["redis back"] == (200, {"status": "ok", "database": "ok", "cache": "ok"})
        assert seen["postgres back"], "the service did not recover from the PostgreSQL restart"
        assert seen["worker replaced"], "gunicorn did not replace the killed worker"
        assert seen["after"] == (200, {"status": "ok", "database": "ok", "cache": "ok"})

        check_outcomes(load.outcomes, faults)
        check_rows(load.outcomes, stored, reads, data)


def summarise(outcomes, faults, t0, seen, log, stored) -> str:
    """The figures a person would look at, printed (`pytest -s`) and kept beside the log."""
    lines = [f"{len(outcomes)} requests in {max(o.ended for o in outcomes) - t0:.1f} s"]
    by_kind = Counter((o.kind, o.status or o.error) for o in outcomes)
    lines += [
        f"  {kind:8} {result}: {count}"
        for (kind, result), count in sorted(by_kind.items(), key=str)
    ]
    for fault in faults:
        others = [f.window for f in faults if f is not fault]
        inside = [o for o in outcomes if o.overlaps(fault.window)]
        # A failure counts for this fault only when no other fault's window explains it.
        failed = [o for o in inside if o.failed and not any(o.overlaps(w) for w in others)]
        span = (
            f", failures from {min(o.started for o in failed) - t0:.1f} to "
            f"{max(o.ended for o in failed) - t0:.1f} s"
            if failed
            else ""
        )
        lines.append(
            f"{fault.name}: fault {fault.started - t0:.1f} s, recovered {fault.ended - t0:.1f} s; "
            f"{len(inside)} requests in its window, failed: "
            f"{dict(Counter(o.status or o.error for o in failed)) or 'none'}{span}"
        )
    outside = [o for o in outcomes if not any(o.overlaps(f.window) for f in faults)]
    failed_outside = Counter(o.status or o.error for o in outside if o.failed)
    lines.append(f"outside every window: {len(outside)} requests, failed: {dict(failed_outside)}")
    slowest = max(outcomes, key=lambda o: o.ended - o.started)
    lines.append(f"slowest request: {slowest.ended - slowest.started:.2f} s ({slowest.kind})")
    updates = [o for o in outcomes if o.kind == "update"]
    accepted = {o.pair for o in updates if o.status == 200}
    unknown = {o.pair for o in updates if o.failed} - accepted
    lines.append(
        f"updates: {sum(o.status == 200 for o in updates)} accepted on {len(accepted)} "
        f"(learner, content) pairs, {sum(o.failed for o in updates)} failed; rows: "
        f"{len(stored['rows'])} ({sum(c for c, _ in stored['rows'].values())} counted), "
        f"{len(set(stored['rows']) - accepted)} of them from failed-only pairs "
        f"(of {len(unknown)} such pairs)"
    )
    lines.append(f"health: {seen}")
    text = log.read_text(errors="replace")
    lines.append(
        f"server log: {text.count('ERROR courseprogress.cache Exception ignored')} ignored "
        f"cache errors, {text.count('Unhandled error')} unhandled errors (500), "
        f"{text.count('was sent SIGKILL')} killed workers, "
        f"{text.count('WORKER TIMEOUT')} worker timeouts"
    )
    return "\n".join(lines)


def check_outcomes(outcomes: list[Outcome], faults: list[Fault]) -> None:
    assert len(outcomes) > 500, "the load hardly ran"
    slow = [o for o in outcomes if o.ended - o.started > HANG_LIMIT]
    assert not slow, f"{len(slow)} requests hung past {HANG_LIMIT} s"
    timeouts = [o for o in outcomes if o.error and "Timeout" in o.error]
    assert not timeouts, f"{len(timeouts)} requests timed out: {timeouts[:5]}"
    refused = Counter(o.status for o in outcomes if o.status and 300 <= o.status < 500)
    assert not refused, f"well-formed requests refused: {refused}"
    # Redis down never fails a request; PostgreSQL restarts and worker kills may, briefly.
    may_fail = [f.window for f in faults if f.name != "redis"]
    bad = [o for o in outcomes if o.failed and not any(o.overlaps(w) for w in may_fail)]
    assert not bad, f"{len(bad)} failures outside the fault windows: {bad[:10]}"


def stored_rows(database_url: str, data: dict) -> dict:
    ids = [learner["id"] for learner in data["load_learners"]]
    with psycopg.connect(database_url, connect_timeout=10) as connection:
        rows = connection.execute(
            """
            SELECT userid, coursecontentid, count(*), max(activityduration)
            FROM user_course_content_progress
            WHERE courseid = %s AND userid = ANY(%s)
            GROUP BY userid, coursecontentid
            """,
            [data["course"], ids],
        ).fetchall()
        enrollments = connection.execute(
            """
            SELECT userid, count(*), min(enrollmentstatus)
            FROM enrollments WHERE courseid = %s AND userid = ANY(%s) GROUP BY userid
            """,
            [data["course"], ids],
        ).fetchall()
    return {
        "rows": {(user, content): (count, duration) for user, content, count, duration in rows},
        "enrollments": {user: (count, status) for user, count, status in enrollments},
    }


def check_rows(outcomes, stored, reads, data) -> None:
    accepted = defaultdict(set)  # pair -> durations answered 200
    unknown = defaultdict(set)  # pair -> durations that failed: committed or not, nobody knows
    for outcome in outcomes:
        if outcome.kind != "update":
            continue
        if outcome.status == 200:
            accepted[outcome.pair].add(outcome.duration)
        elif outcome.failed:
            unknown[outcome.pair].add(outcome.duration)
    rows = stored["rows"]
    assert accepted, "no update was accepted"
    duplicated = {pair: count for pair, (count, _) in rows.items() if count != 1}
    assert not duplicated, f"(user, content) pairs with more than one row: {duplicated}"
    lost = set(accepted) - set(rows)
    assert not lost, f"{len(lost)} accepted updates have no row: {sorted(lost)[:10]}"
    unexplained = set(rows) - set(accepted) - set(unknown)
    assert not unexplained, f"rows nobody wrote: {sorted(unexplained)[:10]}"
    for pair, (_, duration) in rows.items():
        # The learner merge keeps the largest duration of the updates that were committed:
        # at least every accepted one, and only what some request sent.
        assert duration >= max(accepted.get(pair, {0})), f"{pair}: an accepted update was lost"
        assert duration in accepted.get(pair, set()) | unknown.get(pair, set()), pair
    updated = {user for user, _ in rows}
    for user in updated:
        assert stored["enrollments"][user] == (1, "IN_PROGRESS"), user
    # What the API serves after the faults is what the database holds.
    for learner in data["load_learners"]:
        served = {
            log["courseContentId"]: log["activityDuration"]
            for log in reads[learner["id"]]["activityLogs"]
        }
        held = {
            content: duration
            for (user, content), (_, duration) in rows.items()
            if user == learner["id"]
        }
        assert served == held, f"learner {learner['id']}: the API serves stale progress"
