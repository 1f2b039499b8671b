"""`python -m bench` (`make bench`): how fast is the service on this machine, as ratios.

See bench/README.md. In short, for each data set size:
seed a dedicated database, count SQL queries per request, serve the app with gunicorn on
production settings, then in rounds drive every endpoint with wrk at N connections, with runs
of a bare Django view interleaved, and report each endpoint's throughput as a ratio to the bare
view's runs next to it. Medians over the rounds go to the table and to bench/RESULTS.md.
"""

import argparse
import contextlib
import json
import os
import platform
import runpy
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import report
from bench.load import Run, run_wrk, sample_cold, warm, wrk_version
from bench.server import ROOT, Server

WORK = Path(__file__).resolve().parent / ".work"

SIZES = {
    # name: (courses, contents, learners)
    "small": (1, 50, 1000),
    "large": (20, 100, 500),
}

# Endpoint runs. mode/pick/keys go to bench/lua/bench.lua; `cache` names the cache entries the
# run depends on (their keys are counted, to report how many requests were served cold).
ENDPOINTS = {
    "drf_floor": {
        "label": "DRF view, token auth, no work",
        "mode": "drf",
        "pick": "random",
        "keys": 500,
    },
    "learner_cached": {
        "label": "3.1 GET one learner, cached",
        "mode": "learner",
        "pick": "random",
        "keys": 500,
        "cache": "learner",
        "warm": True,
    },
    "learner_uncached": {
        "label": "3.1 GET one learner, uncached",
        "mode": "learner",
        "pick": "walk",
        "cache": "learner",
        "flush": True,
    },
    "update": {"label": "3.3 POST update", "mode": "update"},
    "course_page": {
        "label": "3.2 course page (20 x items), uncached",
        "mode": "course_page",
        "pick": "walk",
        "cache": "coursepage",
        "flush": True,
    },
    "course_page_cached": {
        "label": "3.2 course page (20 x items), cached",
        "mode": "course_page",
        "pick": "random",
        "keys": 20,
        "cache": "coursepage",
        "warm": True,
    },
    "analytics_cached": {
        "label": "3.5 analytics, cached",
        "mode": "analytics",
        "pick": "random",
        "cache": "analytics",
        "warm": True,
    },
    "activities_cached": {
        "label": "3.4 activities, cached",
        "mode": "activities",
        "pick": "random",
        "keys": 500,
        "cache": "activities",
        "warm": True,
    },
    "bulk": {"label": "3.6 POST bulk (20 users)", "mode": "bulk", "pick": "random"},
}
DEFAULT_ENDPOINTS = (
    "drf_floor",
    "learner_cached",
    "learner_uncached",
    "update",
    "course_page",
    "course_page_cached",
    "analytics_cached",
)
COLD_ANALYTICS = "analytics_uncached"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark every endpoint against a bare Django view, side by side.",
    )
    parser.add_argument("--sizes", default="large,small", help="data sets (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    parser.add_argument(
        "--duration", type=float, default=10, help="seconds per wrk run (default %(default)s)"
    )
    parser.add_argument("--connections", type=int, default=100, help="default %(default)s")
    parser.add_argument("--wrk-threads", type=int, default=2, help="default %(default)s")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60,
        help="at most this many seconds to fill the cache before a cached run (default 60)",
    )
    parser.add_argument(
        "--variant",
        default="",
        help="measure named changes not made yet (bench/variants.py), e.g. cached-token",
    )
    parser.add_argument(
        "--endpoints",
        default=",".join(DEFAULT_ENDPOINTS),
        help=f"comma-separated, or 'all' (choices: {', '.join(ENDPOINTS)}); default: %(default)s",
    )
    parser.add_argument(
        "--cold-samples",
        type=int,
        default=20,
        help="uncached analytics requests per round, one at a time (default %(default)s)",
    )
    parser.add_argument("--port", type=int, default=8010, help="gunicorn port (default 8010)")
    parser.add_argument("--workers", type=int, help="GUNICORN_WORKERS (default: the conf's)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: the conf's)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for gunicorn (experiments), repeatable",
    )
    parser.add_argument(
        "--db-prefix", default="cp_bench", help="bench databases: PREFIX_small, PREFIX_large"
    )
    parser.add_argument(
        "--redis-db", type=int, default=5, help="Redis database for the bench (default 5)"
    )
    parser.add_argument("--label", default="", help="a name for this run in RESULTS.md")
    parser.add_argument(
        "--output", default=str(Path(__file__).resolve().parent / "RESULTS.md"), help="report"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 3 s, 5 cold samples"
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="only write RESULTS.md again from a run's raw figures (after editing notes.md)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.cold_samples = 1, 3, 20, 5
    args.endpoint_list = list(ENDPOINTS) if args.endpoints == "all" else args.endpoints.split(",")
    unknown = [e for e in args.endpoint_list if e not in ENDPOINTS]
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(unknown)}")
    args.size_list = args.sizes.split(",")
    if any(size not in SIZES for size in args.size_list):
        parser.error(f"sizes are {', '.join(SIZES)}")
    return args


# --- environment ----------------------------------------------------------------------------


def database_url(size: str, prefix: str) -> str:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"DATABASE_URL must be PostgreSQL for the bench, not {parts.scheme}")
    return urlunsplit(parts._replace(path=f"/{prefix}_{size}"))


def redis_url(db: int) -> str:
    if db in range(5):
        print(f"note: using Redis database {db}; the bench flushes the keys it made there")
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    return urlunsplit(urlsplit(base)._replace(path=f"/{db}"))


def ensure_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def base_env(args, size: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "DATABASE_URL": database_url(size, args.db_prefix),
        "REDIS_URL": redis_url(args.redis_db),
        "CACHE_KEY_PREFIX": "cpbench",
        "ROOT_URLCONF": "bench.urls",
        "DEBUG": "false",
        "GUNICORN_BIND": f"127.0.0.1:{args.port}",
        "PYTHONWARNINGS": "ignore::UserWarning",
    }
    env.setdefault("SECRET_KEY", "bench-only-secret-key")
    replicas = os.environ.get("DATABASE_REPLICA_URLS", "").strip()
    if replicas:  # streaming replicas of DATABASE_URL's server: the same database name on each
        name = urlsplit(env["DATABASE_URL"]).path
        env["DATABASE_REPLICA_URLS"] = ",".join(
            urlunsplit(urlsplit(url.strip())._replace(path=name))
            for url in replicas.split(",")
            if url.strip()
        )
    if args.workers:
        env["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    if args.variant:
        env["BENCH_VARIANT"] = args.variant
        env["DJANGO_SETTINGS_MODULE"] = "bench.settings_variant"
        env["BENCH_WSGI"] = "bench.wsgi:application"
    for item in args.server_env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def gunicorn_settings(env: dict) -> dict:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    keys = ("workers", "threads", "worker_class", "keepalive", "accesslog", "max_requests")
    return {key: conf.get(key) for key in keys}


def python_step(module: str, env: dict, *args: str, marker: str) -> dict:
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith(marker + " ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{module} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(line.split(" ", 1)[1])


# --- Redis and PostgreSQL helpers -----------------------------------------------------------


class Store:
    """The bench's Redis database and PostgreSQL database, for the runs' before/after hooks."""

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

    def post_course_rows(self, course_id: int) -> list[tuple[int, int, int]]:
        return self.sql(
            "SELECT userid, coursecontentid, progressid FROM user_course_content_progress "
            "WHERE courseid = %s",
            [course_id],
        )

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


def verify_update(store: Store, course_id: int, triples_path: Path, connections: int) -> dict:
    """Rows after the run against the accepted (2xx) answers: none lost, none duplicated."""
    time.sleep(1.0)  # requests in flight when wrk stopped finish on the server
    accepted = {}
    if triples_path.exists():
        for line in triples_path.read_text().splitlines():
            user, content, pid = (int(x) for x in line.split())
            accepted[(user, content)] = pid
    rows = store.post_course_rows(course_id)
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


# --- the run ----------------------------------------------------------------------------------


def schedule(endpoints: list[str], round_no: int) -> list[str]:
    """Bare runs between every two endpoint runs; the endpoint order turns with the round."""
    turn = round_no % len(endpoints) if endpoints else 0
    ordered = endpoints[turn:] + endpoints[:turn]
    plan = ["bare"]
    for i, endpoint in enumerate(ordered, start=1):
        plan.append(endpoint)
        if i % 2 == 0 or i == len(ordered):
            plan.append("bare")
    return plan


def bench_size(args, size: str) -> dict:
    courses, contents, learners = SIZES[size]
    env = base_env(args, size)
    ensure_database(env["DATABASE_URL"])
    data_file = WORK / f"{size}.data"
    sizes = f"--courses {courses} --contents {contents} --learners {learners}"
    print(f"\n== {size}: seed_dataset {sizes}")
    started = time.monotonic()
    prepared = python_step(
        "bench.prepare",
        env,
        f"--courses={courses}",
        f"--contents={contents}",
        f"--learners={learners}",
        f"--data-file={data_file}",
        marker="BENCH_PREPARED",
    )
    print(
        f"   {prepared['progress_rows']:,} progress rows, database {prepared['db_size']} "
        f"({time.monotonic() - started:.0f} s)"
    )
    queries = python_step(
        "bench.queries",
        env,
        f"--data={data_file}",
        "--explain",
        "--endpoints=learner,activities,course_page,analytics,update,bulk",
        marker="BENCH_QUERIES",
    )
    store = Store(env)
    postmaster = store.postmaster_started()
    store.reset_post_course(prepared["post_course"])
    store.clear()
    gunicorn = gunicorn_settings(env)
    server = Server(
        env=env, port=args.port, log_path=WORK / f"gunicorn-{size}.log", workers=gunicorn["workers"]
    )
    log = server.log_path
    if log.exists():
        log.unlink()
    url = f"http://127.0.0.1:{args.port}"
    runs: dict[str, list[Run]] = {}
    rounds_plan = []
    common = {
        "url": url,
        "data_file": str(data_file),
        "connections": args.connections,
        "threads": args.wrk_threads,
    }
    print(
        f"   gunicorn: {gunicorn['workers']} workers x {gunicorn['threads']} threads "
        f"({gunicorn['worker_class']}), wrk: {args.connections} connections, "
        f"{args.rounds} rounds of {args.duration:g} s"
    )
    server.start()
    rss_after: dict[str, list[float]] = {}
    try:
        run_wrk(endpoint="bare", mode="bare", duration=2, **common)  # warm-up, discarded
        seq = 0
        for round_no in range(args.rounds):
            plan = schedule(args.endpoint_list, round_no)
            rounds_plan.append(plan)
            for endpoint in plan:
                run = one_run(args, store, server, endpoint, round_no, prepared, common)
                run.extra["settle_s"] = round(server.settle(), 1)
                runs.setdefault(endpoint, []).append(run)
                run.extra["round"] = round_no
                run.extra["seq"] = seq
                seq += 1
                run.extra["rss_mb"] = server.worker_rss_mb()
                rss_after.setdefault(endpoint, []).extend(run.extra["rss_mb"])
                print_run(run)
            cold = cold_analytics(args, store, prepared, round_no)
            server.settle()
            cold.extra["round"] = round_no
            cold.extra["rss_mb"] = server.worker_rss_mb()
            runs.setdefault(COLD_ANALYTICS, []).append(cold)
            print_run(cold)
        final_rss = server.worker_rss_mb()
    finally:
        server.stop()
        restarted = store.postmaster_started() != postmaster
        store.reset_post_course(prepared["post_course"])
        store.clear()
        store.close()
    if restarted:
        print("   WARNING: PostgreSQL was restarted during this run (not by the bench)")
    return {
        "postgres_restarted": restarted,
        "size": size,
        "shape": {"courses": courses, "contents": contents, "learners": learners},
        "prepared": prepared,
        "queries": queries,
        "gunicorn": gunicorn,
        "runs": {name: [asdict(run) for run in items] for name, items in runs.items()},
        "schedule": rounds_plan,
        "final_rss_mb": final_rss,
    }


def key_space(mode: str, prepared: dict) -> int:
    """How many different requests a mode can make on this data set (see bench.lua)."""
    courses, learners = len(prepared["courses"]), prepared["learners"]
    if mode in ("learner", "activities", "drf"):
        return courses * learners
    if mode == "course_page":
        return courses * -(-learners // 20) * 6
    return courses


def one_run(
    args, store: Store, server: Server, endpoint: str, round_no: int, prepared: dict, common
) -> Run:
    if endpoint == "bare":
        return run_wrk(endpoint="bare", mode="bare", duration=args.duration, **common)
    spec = ENDPOINTS[endpoint]
    kind = spec.get("cache")
    seed = 1 + round_no
    if spec.get("flush") and kind:
        store.drop(kind)
    if spec["mode"] == "update":
        store.reset_post_course(prepared["post_course"])
    keys = spec.get("keys", 0)
    warm_s = None
    if spec.get("warm"):
        # Fill the cache with exactly the keys the run draws from, then let the server drain.
        wanted = min(keys or key_space(spec["mode"], prepared), key_space(spec["mode"], prepared))
        store.drop(kind)
        warm_s = warm(
            url=common["url"],
            mode=spec["mode"],
            data_file=common["data_file"],
            connections=common["connections"],
            threads=common["threads"],
            keys=keys,
            seed=seed,
            ready=lambda: store.keys(kind) >= wanted,
            limit=args.warmup,
        )
        server.settle()
    before = store.keys(kind) if kind else 0
    out_file = WORK / f"update-{round_no}.txt" if spec["mode"] == "update" else None
    if out_file and out_file.exists():
        out_file.unlink()
    run = run_wrk(
        endpoint=endpoint,
        mode=spec["mode"],
        duration=args.duration,
        pick=spec.get("pick", "random"),
        keys=keys,
        seed=seed,
        out_file=str(out_file) if out_file else None,
        **common,
    )
    if warm_s is not None:
        run.extra["warm_s"] = round(warm_s, 1)
    if kind:
        made = store.keys(kind) - before
        run.extra["cold_requests"] = made
        run.extra["hit_ratio"] = (
            min(1.0, max(0.0, 1 - made / run.requests)) if run.requests else None
        )
    if out_file:
        run.extra["rows"] = verify_update(
            store, prepared["post_course"], out_file, args.connections
        )
    return run


def cold_analytics(args, store: Store, prepared: dict, round_no: int) -> Run:
    """Uncached analytics: its cache entry dropped before each request, one request at a time."""
    courses = prepared["courses"]
    paths = [
        f"/user-progress/course/{courses[(round_no * 7 + i) % len(courses)]}/analytics"
        for i in range(args.cold_samples)
    ]

    def drop(path: str) -> None:
        course = path.split("/")[3]
        # progress.read_cache.analytics_key(course) and its lock keys
        store.delete_matching(f"*:analytics:*:{course}")
        store.delete_matching(f"*:analytics:*:{course}:*")

    return sample_cold(
        endpoint=COLD_ANALYTICS,
        host="127.0.0.1",
        port=args.port,
        paths=paths,
        token=prepared["owner_token"],
        before_each=drop,
    )


def print_run(run: Run) -> None:
    extra = ""
    if "hit_ratio" in run.extra and run.extra["hit_ratio"] is not None:
        extra += f" hits {100 * run.extra['hit_ratio']:.0f}%"
    if "rows" in run.extra:
        rows = run.extra["rows"]
        extra += (
            f" rows: accepted {rows['accepted_rows']}, stored {rows['rows_after']}, "
            f"lost {rows['lost']}, dup {rows['duplicated']}"
        )
    rss = run.extra.get("rss_mb") or []
    print(
        f"   r{run.extra.get('round', 0) + 1} {run.endpoint:<20} {run.rps:8.1f} req/s "
        f"p50 {run.p50_ms:7.1f} ms p99 {run.p99_ms:7.1f} ms non-2xx {run.non2xx} "
        f"err {run.errors} rss {max(rss, default=0):.0f} MB{extra}",
        flush=True,
    )


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    info = {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(total_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
        "wrk": wrk_version(),
    }
    with contextlib.suppress(Exception):
        import django
        import gunicorn
        import psycopg
        import redis

        info["django"] = django.get_version()
        info["gunicorn"] = gunicorn.__version__
        base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(base) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        parts = urlsplit(base)
        info["postgresql_at"] = f"{parts.hostname}:{parts.port or 5432}"
        info["redis"] = redis.Redis.from_url(redis_url(5)).info("server")["redis_version"]
    return info


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        document = json.loads(Path(args.render).read_text())
        Path(args.output).write_text(report.render(document))
        print(f"written: {args.output}")
        return
    # A SIGTERM ends the run through the `finally` blocks, so that gunicorn is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    WORK.mkdir(exist_ok=True)
    os.chdir(ROOT)
    started = datetime.now(UTC)
    info = machine()
    info["load_after"] = None
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(
        f"bench: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gb']} GB, "
        f"load {info['load_before'][0]:.2f}; sizes {', '.join(args.size_list)}"
    )
    results = []
    for size in args.size_list:
        results.append(bench_size(args, size))
    info["load_after"] = os.getloadavg()
    finished = datetime.now(UTC)
    document = {
        "label": args.label,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "command": command.strip(),
        "options": {k: v for k, v in vars(args).items() if k not in ("endpoint_list", "size_list")},
        "machine": info,
        "sizes": results,
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    raw = WORK / f"results-{stamp}{'-' + args.label if args.label else ''}.json"
    raw.write_text(json.dumps(document, indent=1))
    text = report.render(document)
    print()
    print(report.console(document))
    print(f"raw figures: {raw.relative_to(ROOT)}")
    if not args.no_write:
        Path(args.output).write_text(text)
        print(f"written: {Path(args.output).resolve().relative_to(ROOT)}")
    print(f"took {(finished - started).total_seconds():.0f} s")


if __name__ == "__main__":
    main()
