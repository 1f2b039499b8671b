"""`python -m bench` (`make bench`): how fast is the service on this machine, as ratios.

See bench/README.md. The modules:
- bench.endpoints: the one table of rows (what each requests, cache state, connections, target);
- bench.run: the orchestration (seed, count queries, serve, rounds, one-connection runs);
- bench.store: the raw results JSON and RESULTS.md; bench.report: the tables themselves.
"""

import argparse
import os
import shlex
import signal
import sys
from datetime import UTC, datetime

from bench import report, store
from bench.endpoints import DEFAULT_ENDPOINTS, WRK_ROWS
from bench.run import SIZES, bench_size, machine
from bench.server import ROOT


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
    parser.add_argument(
        "--single-duration",
        type=float,
        default=3,
        help="seconds of the one-connection run of each row, for the latency a single user "
        "feels; 0 skips them (default %(default)s)",
    )
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
        help=f"comma-separated, or 'all' (choices: {', '.join(WRK_ROWS)}); default: %(default)s",
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
    parser.add_argument("--output", default=str(store.RESULTS_MD), help="report")
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round of 3 s, 2 s at one connection, 5 cold samples",
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="only write RESULTS.md again from a run's raw figures (after editing notes.md)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.cold_samples = 1, 3, 20, 5
        args.single_duration = min(args.single_duration, 2)
    args.endpoint_list = list(WRK_ROWS) if args.endpoints == "all" else args.endpoints.split(",")
    unknown = [e for e in args.endpoint_list if e not in WRK_ROWS]
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(unknown)}")
    args.size_list = args.sizes.split(",")
    if any(size not in SIZES for size in args.size_list):
        parser.error(f"sizes are {', '.join(SIZES)}")
    return args


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        written = store.write_report(store.load_raw(args.render), args.output)
        print(f"written: {written}")
        return
    # A SIGTERM ends the run through the `finally` blocks, so that gunicorn is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    store.WORK.mkdir(exist_ok=True)
    os.chdir(ROOT)
    started = datetime.now(UTC)
    info = machine()
    info["load_after"] = None
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(
        f"bench: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gb']} GB, "
        f"load {info['load_before'][0]:.2f}; sizes {', '.join(args.size_list)}; "
        f"rows {', '.join(args.endpoint_list)}"
    )
    results = [bench_size(args, size) for size in args.size_list]
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
    raw = store.save_raw(document, started, args.label)
    print()
    print(report.console(document))
    print(f"raw figures: {raw.relative_to(ROOT)}")
    if not args.no_write:
        written = store.write_report(document, args.output)
        print(f"written: {written.resolve().relative_to(ROOT)}")
    print(f"took {(finished - started).total_seconds():.0f} s")


if __name__ == "__main__":
    main()
