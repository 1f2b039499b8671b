"""The orchestration of `python -m bench`: for one data set size, seed a dedicated database,
count SQL statements per request, serve the app with gunicorn on production settings, then in
rounds drive every row of bench.endpoints with wrk, with runs of the bare view interleaved, and
finally run every row once more at ONE connection (the latency a single user feels)."""

import contextlib
import json
import os
import platform
import runpy
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import cpu
from bench.databases import Databases, verify_writes
from bench.endpoints import BARE, BY_NAME, COLD_ANALYTICS
from bench.load import Run, run_wrk, sample_cold, warm, wrk_version
from bench.server import ROOT, Server
from bench.store import WORK

SIZES = {
    # name: (courses, contents, learners)
    "small": (1, 50, 1000),
    "large": (20, 100, 500),
}


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


# --- the run ----------------------------------------------------------------------------------


def schedule(endpoints: list[str], round_no: int) -> list[str]:
    """Bare runs between every two endpoint runs; the endpoint order turns with the round."""
    turn = round_no % len(endpoints) if endpoints else 0
    ordered = endpoints[turn:] + endpoints[:turn]
    plan = [BARE]
    for i, endpoint in enumerate(ordered, start=1):
        plan.append(endpoint)
        if i % 2 == 0 or i == len(ordered):
            plan.append(BARE)
    return plan


class SizeRun:
    """One data set size: its databases, its server and the wrk runs of its rows."""

    def __init__(self, args, size: str):
        self.args = args
        self.size = size
        self.env = base_env(args, size)
        self.data_file = WORK / f"{size}.data"
        self.url = f"http://127.0.0.1:{args.port}"
        self.prepared: dict = {}
        self.databases: Databases | None = None
        self.server: Server | None = None

    def common(self, connections: int) -> dict:
        return {
            "url": self.url,
            "data_file": str(self.data_file),
            "connections": connections,
            "threads": min(self.args.wrk_threads, connections),
        }

    def seed(self) -> tuple[dict, dict]:
        courses, contents, learners = SIZES[self.size]
        ensure_database(self.env["DATABASE_URL"])
        sizes = f"--courses {courses} --contents {contents} --learners {learners}"
        print(f"\n== {self.size}: seed_dataset {sizes}")
        started = time.monotonic()
        prepared = python_step(
            "bench.prepare",
            self.env,
            f"--courses={courses}",
            f"--contents={contents}",
            f"--learners={learners}",
            f"--data-file={self.data_file}",
            marker="BENCH_PREPARED",
        )
        print(
            f"   {prepared['progress_rows']:,} progress rows, database {prepared['db_size']} "
            f"({time.monotonic() - started:.0f} s)"
        )
        queries = python_step(
            "bench.queries",
            self.env,
            f"--data={self.data_file}",
            "--explain",
            "--endpoints=learner,activities,course_page,analytics,update,bulk",
            marker="BENCH_QUERIES",
        )
        self.prepared = prepared
        return prepared, queries

    def run_rounds(self, gunicorn: dict) -> tuple[dict, list, dict, list[float]]:
        args = self.args
        runs: dict[str, list[Run]] = {}
        single: dict[str, Run] = {}
        rounds_plan = []
        server = self.server
        assert server is not None
        run_wrk(endpoint=BARE, mode="bare", duration=2, **self.common(args.connections))  # warm-up
        seq = 0
        for round_no in range(args.rounds):
            plan = schedule(args.endpoint_list, round_no)
            rounds_plan.append(plan)
            for endpoint in plan:
                run = self.one_run(endpoint, round_no, args.connections, args.duration)
                run.extra["round"] = round_no
                run.extra["seq"] = seq
                seq += 1
                runs.setdefault(endpoint, []).append(run)
                print_run(run)
            cold = self.cold_analytics(round_no)
            server.settle()
            cold.extra["round"] = round_no
            cold.extra["rss_mb"] = server.worker_rss_mb()
            runs.setdefault(COLD_ANALYTICS, []).append(cold)
            print_run(cold)
        if args.single_duration > 0:
            # The latency a single user feels: every row once more, at one connection.
            for endpoint in [BARE, *args.endpoint_list]:
                run = self.one_run(endpoint, args.rounds, 1, args.single_duration)
                run.extra["single"] = True
                single[endpoint] = run
                print_run(run, prefix="1c")
        return runs, rounds_plan, single, server.worker_rss_mb()

    def one_run(self, endpoint: str, round_no: int, connections: int, duration: float) -> Run:
        run = self._wrk_run(endpoint, round_no, connections, duration)
        assert self.server is not None
        run.extra["settle_s"] = round(self.server.settle(), 1)
        run.extra["rss_mb"] = self.server.worker_rss_mb()
        return run

    def _wrk_run(self, endpoint: str, round_no: int, connections: int, duration: float) -> Run:
        common = self.common(connections)
        if endpoint == BARE:
            return self.timed_wrk(endpoint=BARE, mode="bare", duration=duration, **common)
        spec = BY_NAME[endpoint]
        databases, server, prepared = self.databases, self.server, self.prepared
        assert databases is not None and server is not None
        kind = spec.cache
        seed = 1 + round_no
        if spec.flush and kind:
            databases.drop(kind)
        if spec.writes:
            databases.reset_post_course(prepared["post_course"])
            databases.drop("learner")  # write-then-read reads the POST course's learners
        warm_s = None
        if spec.warm and kind:
            # Fill the cache with exactly the keys the run draws from, then let the server drain.
            space = key_space(spec.mode, prepared)
            wanted = min(spec.keys or space, space)
            databases.drop(kind)
            warm_s = warm(
                url=common["url"],
                mode=spec.mode,
                data_file=common["data_file"],
                connections=self.args.connections,
                threads=self.args.wrk_threads,
                keys=spec.keys,
                seed=seed,
                ready=lambda: databases.keys(kind) >= wanted,
                limit=self.args.warmup,
            )
            server.settle()
        before = databases.keys(kind) if kind else 0
        suffix = "-1c" if connections == 1 else ""
        out_file = WORK / f"{endpoint}-{self.size}-{round_no}{suffix}.txt" if spec.writes else None
        if out_file and out_file.exists():
            out_file.unlink()
        run = self.timed_wrk(
            endpoint=endpoint,
            mode=spec.mode,
            duration=duration,
            pick=spec.pick,
            keys=spec.keys,
            seed=seed,
            out_file=str(out_file) if out_file else None,
            path=spec.request_path,
            **common,
        )
        if warm_s is not None:
            run.extra["warm_s"] = round(warm_s, 1)
        if kind:
            made = databases.keys(kind) - before
            run.extra["cold_requests"] = made
            run.extra["hit_ratio"] = (
                min(1.0, max(0.0, 1 - made / run.requests)) if run.requests else None
            )
        if out_file:
            run.extra["rows"] = verify_writes(
                databases, prepared["post_course"], out_file, connections
            )
        return run

    def timed_wrk(self, **kwargs) -> Run:
        """run_wrk, with the CPU each group of processes spent from just before wrk started to
        just after it ended, per request answered (bench.cpu). Requests that wrk abandoned and
        the workers finish afterwards (settle()) are in neither count."""
        assert self.server is not None and self.server.process is not None
        database = urlsplit(self.env["DATABASE_URL"]).path.lstrip("/")
        master = self.server.process.pid
        before = cpu.snapshot(gunicorn_master=master, database=database)
        run = run_wrk(**kwargs)
        after = cpu.snapshot(gunicorn_master=master, database=database)
        run.extra["cpu"] = cpu.split(before, after, run.requests)
        return run

    def cold_analytics(self, round_no: int) -> Run:
        """Uncached analytics: its entry dropped before each request, one request at a time."""
        databases = self.databases
        assert databases is not None
        courses = self.prepared["courses"]
        template = BY_NAME[COLD_ANALYTICS].path
        paths = [
            template.format(course=courses[(round_no * 7 + i) % len(courses)])
            for i in range(self.args.cold_samples)
        ]

        def drop(path: str) -> None:
            course = path.split("/")[3]
            # progress.read_cache.analytics_key(course) and its lock keys
            databases.delete_matching(f"*:analytics:*:{course}")
            databases.delete_matching(f"*:analytics:*:{course}:*")

        return sample_cold(
            endpoint=COLD_ANALYTICS,
            host="127.0.0.1",
            port=self.args.port,
            paths=paths,
            token=self.prepared["owner_token"],
            before_each=drop,
        )

    def __call__(self) -> dict:
        args = self.args
        courses, contents, learners = SIZES[self.size]
        prepared, queries = self.seed()
        databases = self.databases = Databases(self.env)
        postmaster = databases.postmaster_started()
        databases.reset_post_course(prepared["post_course"])
        databases.clear()
        gunicorn = gunicorn_settings(self.env)
        server = self.server = Server(
            env=self.env,
            port=args.port,
            log_path=WORK / f"gunicorn-{self.size}.log",
            workers=gunicorn["workers"],
        )
        if server.log_path.exists():
            server.log_path.unlink()
        print(
            f"   gunicorn: {gunicorn['workers']} workers x {gunicorn['threads']} threads "
            f"({gunicorn['worker_class']}), wrk: {args.connections} connections, "
            f"{args.rounds} rounds of {args.duration:g} s, then 1 connection for "
            f"{args.single_duration:g} s per row"
        )
        server.start()
        try:
            runs, rounds_plan, single, final_rss = self.run_rounds(gunicorn)
        finally:
            server.stop()
            restarted = databases.postmaster_started() != postmaster
            databases.reset_post_course(prepared["post_course"])
            databases.clear()
            databases.close()
        if restarted:
            print("   WARNING: PostgreSQL was restarted during this run (not by the bench)")
        return {
            "postgres_restarted": restarted,
            "size": self.size,
            "shape": {"courses": courses, "contents": contents, "learners": learners},
            "prepared": prepared,
            "queries": queries,
            "gunicorn": gunicorn,
            "runs": {name: [asdict(run) for run in items] for name, items in runs.items()},
            "single": {name: asdict(run) for name, run in single.items()},
            "schedule": rounds_plan,
            "final_rss_mb": final_rss,
        }


def bench_size(args, size: str) -> dict:
    return SizeRun(args, size)()


def key_space(mode: str, prepared: dict) -> int:
    """How many different requests a mode can make on this data set (see bench.lua)."""
    courses, learners = len(prepared["courses"]), prepared["learners"]
    if mode in ("learner", "activities", "drf"):
        return courses * learners
    if mode == "course_page":
        return courses * -(-learners // 20) * 6
    return courses


def print_run(run: Run, prefix: str = "") -> None:
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
    tag = prefix or f"r{run.extra.get('round', 0) + 1}"
    print(
        f"   {tag} {run.endpoint:<20} {run.rps:8.1f} req/s "
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
