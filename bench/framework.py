"""CPU per request of the framework, in-process: `python -m bench.framework`.

Calls the WSGI application (config.wsgi's, with ROOT_URLCONF=bench.urls, DEBUG off: what
gunicorn calls) directly with prepared environ dicts: no socket, no test client. For each
request kind it times N requests in CPU seconds of this process (`time.process_time()`),
several times, interleaved, and prints the medians: figures that hold on a loaded machine,
unlike wall-clock ones. PostgreSQL's and Redis's own CPU is not counted; the round trips' cost
on this side (psycopg, redis-py, the socket calls) is.

  SECRET_KEY=x DEBUG=false DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_large \\
  REDIS_URL=redis://127.0.0.1:6379/5 CACHE_KEY_PREFIX=cpbench \\
  .venv/bin/python -m bench.framework --data bench/.work/large.data -n 1000 --repeat 5
  ... --profile drf      # cProfile of one kind instead, sorted by own time
  ... --ab negotiation   # same process, repeats alternating without / with a lever (LEVERS)

  ... --callgrind --kinds drf   # instructions per request under valgrind's callgrind (steady
                                 # under load), for a lever with --ab too; the cyclic
                                 # garbage collector is off while counting

The figures are the minimum and the median over the repeats: on a shared machine the minimum
is the steadier one (other work only ever adds CPU time, through caches and frequency).
"""

import argparse
import contextlib
import cProfile
import gc
import io
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

from bench.calls import BenchData

KINDS = (
    "bare",
    "drf",
    "learner",
    "analytics",
    "floor_stamp",
    "floor_stamp_body",
    "floor_course_stamp",
)


def environ(method: str, path: str, token: str | None = None) -> dict:
    path_info, _, query = path.partition("?")
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8010",
        "HTTP_HOST": "127.0.0.1:8010",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if token:
        env["HTTP_AUTHORIZATION"] = f"Token {token}"
    return env


def requests_for(kind: str, data: BenchData, rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        course = rng.choice(data.courses[:5])
        user_id, token = rng.choice(data.learners[:100])
        if kind == "bare":
            out.append(environ("GET", "/bench/bare"))
        elif kind == "drf":
            out.append(environ("GET", "/bench/drf", token))
        elif kind == "learner":
            out.append(environ("GET", f"/user-progress/{course}/{user_id}", token))
        elif kind in ("floor_stamp", "floor_stamp_body"):  # the ceiling rows (bench/urls.py)
            prefix = kind.replace("_", "-")
            out.append(environ("GET", f"/bench/{prefix}/{course}/{user_id}", token))
        elif kind == "floor_course_stamp":
            out.append(environ("GET", f"/bench/floor-course-stamp/{course}", data.owner))
        elif kind == "analytics":
            out.append(environ("GET", f"/user-progress/course/{course}/analytics", data.owner))
    return out


@contextlib.contextmanager
def _patched(module, name, value):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _without_negotiation_shortcut():
    from courseprogress import negotiation

    return _patched(negotiation, "_asks_for_first_renderer", lambda *args: False)


@contextlib.contextmanager
def _eager_messages():
    from django.contrib.messages.middleware import MessageMiddleware

    from courseprogress.middleware import LazyMessageMiddleware

    with (
        _patched(LazyMessageMiddleware, "process_request", MessageMiddleware.process_request),
        _patched(LazyMessageMiddleware, "process_response", MessageMiddleware.process_response),
    ):
        yield


def _from_db_rebuild():
    from courseprogress import authentication

    return _patched(
        authentication,
        "_from_db",
        lambda model, values: model.from_db("default", list(values), list(values.values())),
    )


@contextlib.contextmanager
def _token_l1():
    """Trial, not adopted: the token entry kept in this process for 5 s (no Redis GET)."""
    from courseprogress import authentication

    local: dict = {}
    real = authentication._cache_get

    def cached(key):
        hit = local.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        entry = real(key)
        local[key] = (time.monotonic() + 5, entry)
        return entry

    with _patched(authentication, "_cache_get", cached):
        yield


@contextlib.contextmanager
def _no_health_check():
    """Trial, not adopted: CONN_HEALTH_CHECKS off (no `SELECT 1` before a request's first
    statement)."""
    from django.db import connections

    connection = connections["default"]
    connection.ensure_connection()
    saved = connection.health_check_enabled
    connection.health_check_enabled = False
    try:
        yield
    finally:
        connection.health_check_enabled = saved


@contextlib.contextmanager
def _all_adopted():
    """The three adopted levers undone together (the code before issue 17's framework work)."""
    with _without_negotiation_shortcut(), _eager_messages(), _from_db_rebuild():
        yield


# Each lever: a context manager that puts the code back as it was before the lever (adopted
# levers), or that applies a change that was tried and not adopted (TRIALS: "before" is then
# the code as it is, "after" the trial).
LEVERS = {
    "negotiation": _without_negotiation_shortcut,
    "messages": _eager_messages,
    "token-rebuild": _from_db_rebuild,
    "adopted": _all_adopted,
    "token-l1": _token_l1,
    "no-health-check": _no_health_check,
}
TRIALS = {"token-l1", "no-health-check"}


def _context(lever: str | None, variant: str):
    """The code of `variant` ("before" or "after") for this lever."""
    if lever is None:
        return contextlib.nullcontext()
    applies_old_code = lever not in TRIALS
    if (variant == "before") == applies_old_code:
        return LEVERS[lever]()
    return contextlib.nullcontext()


def _spin_seconds() -> float:
    started = time.perf_counter()
    sum(range(100_000))
    return time.perf_counter() - started


def _wait_for_instrumentation(limit: float = 120.0) -> None:
    """Until callgrind_control's switch has reached this process: instrumented code runs
    several times slower than valgrind's uninstrumented code, so a fixed loop shows it."""
    baseline = min(_spin_seconds() for _ in range(5))
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if min(_spin_seconds() for _ in range(3)) > 4 * baseline:
            return
        time.sleep(0.05)
    raise SystemExit("callgrind's instrumentation never came on")


def callgrind(args, argv: list[str]) -> None:
    """Instructions per request: the requests under callgrind, counted only inside one exec()
    that sends them (--toggle-collect=builtin_exec; the warm-up and the interpreter's start and
    end are not counted, and nothing in a request calls exec)."""
    import os
    import subprocess
    import tempfile

    rest = [a for a in argv if a != "--callgrind"]
    variants = [("before", True), ("after", False)] if args.ab else [("as is", False)]
    for kind in args.kinds.split(","):
        for variant, before in variants:
            work = tempfile.mkdtemp(prefix="cg-")
            handshake = os.path.join(work, "h")
            out = os.path.join(work, "callgrind.out")
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-atstart=no",
                "--toggle-collect=builtin_exec",
                f"--callgrind-out-file={out}",
                sys.executable,
                # not `-m`: runpy runs a module inside exec(), the function counted here
                "-c",
                "import sys; from bench.framework import main; sys.exit(main())",
                *rest,
                "--kinds",
                kind,
                "--child",
                handshake,
                *(["--before"] if before else []),
            ]
            child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
            while not Path(handshake + ".ready").exists():
                if child.poll() is not None:
                    raise SystemExit(f"child failed: {child.returncode}")
                time.sleep(0.2)
            subprocess.run(
                ["callgrind_control", "-i", "on", str(child.pid)], check=True, capture_output=True
            )
            child.wait()
            text = Path(out).read_text(errors="replace")
            total = next(
                int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:")
            )
            print(
                f"{variant:<7} {kind:<10} {total / args.n / 1e6:7.3f} M instructions/request",
                flush=True,
            )


def call(app, env: dict) -> int:
    status = []
    env = dict(env)
    env["wsgi.input"] = io.BytesIO(b"")
    body = app(env, lambda s, headers, exc_info=None: status.append(s))
    for _chunk in body:
        pass
    if hasattr(body, "close"):
        body.close()
    return int(status[0].split()[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.framework")
    parser.add_argument("--data", required=True, help="the data file bench.prepare wrote")
    parser.add_argument("-n", type=int, default=1000, help="requests per kind and repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--profile", choices=KINDS, help="cProfile this kind instead")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--ab", choices=sorted(LEVERS), help="time without and with a lever")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # under valgrind: the handshake file
    parser.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind:
        return callgrind(args, argv if argv is not None else sys.argv[1:])

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ROOT_URLCONF", "bench.urls")
    os.environ.setdefault("DEBUG", "false")
    from bench.wsgi import application as app

    data = BenchData.read(args.data)
    rng = random.Random(1)
    kinds = [args.profile] if args.profile else args.kinds.split(",")
    prepared = {kind: requests_for(kind, data, rng, args.n) for kind in kinds}

    def warm_up() -> None:  # imports, connections, token and read caches, regex caches
        for kind in kinds:
            for env in prepared[kind]:
                code = call(app, env)
                if code != 200:
                    raise SystemExit(f"{kind}: {code}")

    if args.child:
        with _context(args.ab, "before" if args.before else "after"):
            warm_up()
            warm_up()
            # The cyclic collector runs when allocations cross its thresholds: a full
            # collection in one run and not the other would count as much as the requests.
            # Counted without it: the instructions of the requests' own code.
            gc.collect()
            gc.freeze()
            gc.disable()
            measured = [env for kind in kinds for env in prepared[kind]]
            Path(args.child + ".ready").touch()
            _wait_for_instrumentation()
            exec(
                "for env in measured:\n    call(app, env)\n",
                {"measured": measured, "call": call, "app": app},
            )
        return
    warm_up()
    if args.ab:
        for variant in ("before", "after"):
            with _context(args.ab, variant):
                warm_up()
    if args.profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for env in prepared[args.profile]:
            call(app, env)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.limit)
        print(out.getvalue())
        return
    variants = ["before", "after"] if args.ab else ["as is"]
    cpu: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for variant in variants:
            with _context(args.ab, variant):
                for kind in kinds:
                    started = time.process_time()
                    for env in prepared[kind]:
                        call(app, env)
                    used = (time.process_time() - started) / len(prepared[kind]) * 1e6
                    cpu.setdefault((variant, kind), []).append(used)
    for variant in variants:
        bare = min(cpu[(variant, "bare")]) if (variant, "bare") in cpu else None
        for kind in kinds:
            values = cpu[(variant, kind)]
            ratio = f"  bare/this (min) {bare / min(values):.3f}" if bare else ""
            print(
                f"{variant:<7} {kind:<10} min {min(values):7.1f} us CPU/request, median "
                f"{statistics.median(values):7.1f}{ratio}"
            )


if __name__ == "__main__":
    sys.exit(main())
