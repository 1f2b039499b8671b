"""Profile one endpoint in-process: `python -m bench.profile ENDPOINT [--uncached] [-n N]`.

Runs N requests through Django's test client (the whole middleware and DRF stack, no WSGI
server) against the bench database named by DATABASE_URL, under cProfile, and prints the
functions that take the time. The requests are the ones the load test makes (same users,
tokens and ids, from the data file that `python -m bench` or `bench.prepare` wrote).

  SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_large \\
  REDIS_URL=redis://127.0.0.1:6379/5 CACHE_KEY_PREFIX=cpbench \\
  .venv/bin/python -m bench.profile learner --data bench/.work/large.data -n 300
"""

import argparse
import cProfile
import io
import pstats
import random
import sys
import time

from bench.calls import BenchData, drop_cached_reads, make_requests, setup_django


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument(
        "endpoint",
        choices=["bare", "learner", "activities", "course_page", "analytics", "update", "bulk"],
    )
    parser.add_argument("--data", required=True, help="the data file bench.prepare wrote")
    parser.add_argument("-n", type=int, default=200, help="requests (default %(default)s)")
    parser.add_argument(
        "--uncached", action="store_true", help="drop the cached reads before each request"
    )
    parser.add_argument("--warm", action="store_true", help="send every request once first")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    parser.add_argument(
        "--time-only", action="store_true", help="no profiler: only the time per request"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="profile CPU time of this process, not wall time"
    )
    parser.add_argument("--limit", type=int, default=35)
    args = parser.parse_args(argv)

    setup_django()
    from django.core.cache import cache

    data = BenchData.read(args.data)
    client, requests = make_requests(data, args.endpoint, random.Random(1), args.n)
    # One request first, so that imports and first connections stay out of the profile.
    for send in requests if args.warm else requests[:1]:
        send(client)
    profiler = cProfile.Profile(time.process_time) if args.cpu else cProfile.Profile()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for send in requests:
        if args.uncached:
            drop_cached_reads(cache)
        if args.time_only:
            response = send(client)
        else:
            profiler.enable()
            response = send(client)
            profiler.disable()
        if not 200 <= response.status_code < 300:
            raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"{args.endpoint}{' (uncached)' if args.uncached else ''}: {len(requests)} requests, "
        f"{1000 * elapsed / len(requests):.2f} ms wall, {1000 * cpu / len(requests):.2f} ms CPU "
        f"each, in-process{'' if args.time_only else ' with the profiler on'}"
    )
    if args.time_only:
        return
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.limit)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
