"""The table: medians over rounds, each endpoint run as a ratio to the bare runs beside it.

Labels, the statements behind each row and the targets come from bench.endpoints (one table)."""

import statistics
from pathlib import Path

from bench.cpu import APART, GROUPS, WORKER_USER
from bench.endpoints import BARE, BY_NAME, COLD_ANALYTICS, ORDER, label

NOTES = Path(__file__).resolve().parent / "notes.md"
RSS_LIMIT_MB = 150


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratios(size: dict) -> dict[str, list[float]]:
    """Each endpoint run's req/s over the mean of the bare runs just before and after it."""
    return neighbour_ratios(size, lambda run: run["rps"])


def neighbour_ratios(size: dict, value) -> dict[str, list[float]]:
    """Each endpoint run's value(run) over the mean of the bare runs' just before and after it
    (runs whose value is None are left out, on either side)."""
    sequence = []
    for name, runs in size["runs"].items():
        for run in runs:
            if "seq" in run["extra"] and value(run) is not None:
                sequence.append((run["extra"]["seq"], name, value(run)))
    sequence.sort()
    bare = [(seq, v) for seq, name, v in sequence if name == BARE]
    out: dict[str, list[float]] = {}
    for seq, name, v in sequence:
        if name == BARE:
            continue
        before = [r for s, r in bare if s < seq][-1:]
        after = [r for s, r in bare if s > seq][:1]
        neighbours = before + after
        if neighbours and statistics.fmean(neighbours) > 0:
            out.setdefault(name, []).append(v / statistics.fmean(neighbours))
    return out


def run_cpu_ms(run: dict, group: str = "total") -> float | None:
    """A run's CPU per request of one group (bench.cpu), in ms; None for runs without it."""
    ms = (run["extra"].get("cpu") or {}).get("ms")
    return None if ms is None else ms.get(group)


def cpu_split(size: dict) -> dict[str, dict]:
    """Per row (the bare view included): the median over its rounds of each group's CPU per
    request, and the median of its total over the bare runs' beside it (`x_bare`). The runs at
    one connection are not in it (they have no "seq")."""
    x_bare = neighbour_ratios(size, run_cpu_ms)
    out = {}
    for name, runs in size["runs"].items():
        timed = [run for run in runs if "seq" in run["extra"] and run_cpu_ms(run) is not None]
        if not timed:
            continue
        ms = {
            g: median([run_cpu_ms(run, g) for run in timed]) for g in (*GROUPS, *APART, WORKER_USER)
        }
        ms["total"] = median([run_cpu_ms(run) for run in timed])
        out[name] = {"ms": ms, "x_bare": 1.0 if name == BARE else median(x_bare.get(name, []))}
    return out


def summarise(size: dict) -> list[dict]:
    rows = []
    by_ratio = ratios(size)
    by_cpu = cpu_split(size)
    queries = size.get("queries", {})
    is_large = size["size"] == "large"
    single = size.get("single") or {}
    for name, runs in size["runs"].items():
        rss = [max(run["extra"].get("rss_mb") or [0]) for run in runs]
        hits = [run["extra"].get("hit_ratio") for run in runs]
        row = {
            "name": name,
            "label": label(name),
            "connections": runs[0]["connections"],
            "rounds": len(runs),
            "rps": median([run["rps"] for run in runs]),
            "ratio": median(by_ratio.get(name, [])) if name != BARE else 1.0,
            "ratios": by_ratio.get(name, []),
            "p50_ms": median([run["p50_ms"] for run in runs]),
            "p99_ms": median([run["p99_ms"] for run in runs]),
            "non2xx": sum(run["non2xx"] for run in runs),
            "errors": sum(run["errors"] for run in runs),
            "requests": sum(run["requests"] for run in runs),
            "rss_mb": max(rss) if rss else None,
            "hit_ratio": median(hits),
            "sql": sql_per_request(name, queries),
            "p50_1c_ms": single.get(name, {}).get("p50_ms"),
            "cpu": by_cpu.get(name),
            "cpu_1c_ms": run_cpu_ms(single[name]) if name in single else None,
        }
        if name == COLD_ANALYTICS:
            row["ratio"] = None
            row["p50_1c_ms"] = row["p50_ms"]  # it is sampled at one connection
        checked = [*runs, *([single[name]] if name in single else [])]
        rows_check = [run["extra"].get("rows") for run in checked if run["extra"].get("rows")]
        if rows_check:
            row["rows"] = {
                "accepted": sum(r["accepted_rows"] for r in rows_check),
                "stored": sum(r["rows_after"] for r in rows_check),
                "lost": sum(r["lost"] for r in rows_check),
                "duplicated": sum(r["duplicated"] for r in rows_check),
                "in_flight": sum(r["in_flight_at_stop"] for r in rows_check),
                "ok": all(r["ok"] for r in rows_check),
            }
        row["target"], row["met"] = target(name, row, is_large)
        rows.append(row)
    rows.sort(key=lambda r: ORDER.index(r["name"]) if r["name"] in ORDER else 99)
    return rows


def sql_per_request(name: str, queries: dict) -> int | None:
    """The statements of one request of the row (bench.queries); a pair row sums its two."""
    if name == BARE:
        return 0
    spec = BY_NAME.get(name)
    if spec is None or not spec.queries:
        return None
    counts = [queries.get(entry, {}).get(which) for entry, which in spec.queries]
    return None if any(c is None for c in counts) else sum(counts)


def target(name: str, row: dict, is_large: bool) -> tuple[str, bool | None]:
    """Issue 17's target of the row and whether it is met (large set only). A row fails on any
    non-2xx answer, socket error, lost or duplicated row, a ratio or a SQL count off target."""
    spec = BY_NAME.get(name)
    goal = spec.target if spec else None
    if not is_large or goal is None:
        return "", None
    met = row["non2xx"] == 0 and row["errors"] == 0
    if "rows" in row:
        met = met and row["rows"]["ok"]
    if goal.ratio is not None:
        met = met and row["ratio"] is not None and row["ratio"] >= goal.ratio
    sql = row["sql"]
    if goal.sql_max is not None:
        met = met and sql is not None and sql <= goal.sql_max
    if goal.sql_exact is not None:
        met = met and sql is not None and sql == goal.sql_exact
    return goal.describe(), bool(met)


def _fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def table(size: dict) -> list[str]:
    lines = [
        "| endpoint | conns | req/s | ratio to bare (min-max) | p50 ms | p99 ms | p50 ms at 1 "
        "conn. | non-2xx | socket errors | SQL/request | cache hits | max worker RSS MB | "
        "target (issue 17) | met |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in summarise(size):
        ratio = "1.00 (reference)" if row["name"] == BARE else "n/a (one at a time)"
        if row["name"] != BARE and row["ratio"] is not None:
            spread = row["ratios"]
            ratio = f"**{row['ratio']:.3f}** ({min(spread):.3f}-{max(spread):.3f})"
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        hits = "" if row["hit_ratio"] is None else f"{100 * row['hit_ratio']:.0f}%"
        lines.append(
            f"| {row['label']} | {row['connections']} | {_fmt(row['rps'], '.1f')} | {ratio} | "
            f"{_fmt(row['p50_ms'], '.1f')} | {_fmt(row['p99_ms'], '.1f')} | "
            f"{_fmt(row['p50_1c_ms'], '.1f')} | {row['non2xx']} | "
            f"{row['errors']} | {_fmt(row['sql'], 'd')} | {hits} | {_fmt(row['rss_mb'], '.0f')} | "
            f"{row['target']} | {met} |"
        )
    return lines


CPU_HEADER = (
    "| endpoint | worker (of it user space) | postgres | redis | wrk | **total** | x bare view | "
    "ratio if CPU-bound (1 / x) | measured ratio | total at 1 conn. | postgres, other | "
    "machine, other |"
)


def cpu_table(size: dict) -> list[str]:
    """CPU per request by process group (ms, medians over the rounds; bench.cpu), each row's
    total over the bare view's beside it, and the req/s ratio that CPU alone would give."""
    rows = [row for row in summarise(size) if row.get("cpu")]
    if not rows:
        return []
    lines = [CPU_HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ms, x = row["cpu"]["ms"], row["cpu"]["x_bare"]
        cells = [_fmt(ms.get(g), ".3f") for g in GROUPS]
        if ms.get(WORKER_USER) is not None:
            cells[0] += f" ({ms[WORKER_USER]:.3f})"
        implied = "1.000" if row["name"] == BARE else _fmt(x and 1 / x, ".3f")
        lines.append(
            f"| {row['label']} | {' | '.join(cells)} | **{_fmt(ms.get('total'), '.3f')}** | "
            f"{_fmt(x, '.2f')} | {implied} | {_fmt(row['ratio'], '.3f')} | "
            f"{_fmt(row['cpu_1c_ms'], '.3f')} | {_fmt(ms.get('postgres_other'), '.3f')} | "
            f"{_fmt(ms.get('other'), '.3f')} |"
        )
    return lines


CPU_METHOD = (
    "- CPU per request (ms, medians over the rounds): utime + stime of each group's processes "
    "from /proc, read just before wrk starts and just after it ends, over the requests answered "
    "(bench/cpu.py). worker: the gunicorn master and workers (in brackets their user-space time "
    "alone: the app's Python and the C code it calls; the rest is the kernel's work on their "
    "sockets); postgres: the bench database's "
    "backends and the server's own processes (WAL writer, checkpointer, ...); redis: "
    "redis-server (shared: other work on it is counted); wrk: the load generator. total = those "
    "four. x bare view: the row's total over the bare runs' beside it; if every process is "
    "CPU-bound, the req/s ratio is about 1 / x. total at 1 conn.: the same total in the run at one "
    "connection (no queueing, fewer context switches). Apart, not in the total: other databases' "
    "backends and backends that ended during the run (postgres, other) and the rest of the "
    "machine's busy time (machine, other: other people's work), a measure of the noise."
)


def overall(size: dict) -> list[str]:
    """The targets that hold for the whole run: no non-2xx answer, every worker under 150 MB."""
    rows = summarise(size)
    non2xx = sum(row["non2xx"] + row["errors"] for row in rows)
    rss = max((row["rss_mb"] or 0) for row in rows)
    final = max(size.get("final_rss_mb") or [0])
    met = [row for row in rows if row["met"] is True]
    judged = [row for row in rows if row["met"] is not None]
    return [
        f"- Targets met: {len(met)} of {len(judged)} endpoint targets"
        + (f" ({', '.join(row['label'] for row in met)})" if met else ""),
        f"- Non-2xx answers and socket errors over the whole run: {non2xx}"
        f" ({'met' if non2xx == 0 else '**not met**'})",
        f"- Worker RSS: at most {rss:.0f} MB after a run, {final:.0f} MB at the end "
        f"(target < {RSS_LIMIT_MB} MB after every run: "
        f"{'met' if rss < RSS_LIMIT_MB else '**not met**'})",
    ]


def rows_note(size: dict) -> list[str]:
    out = []
    for row in summarise(size):
        if "rows" in row:
            r = row["rows"]
            what = "pairs (POST + read)" if row["name"] == "write_then_read" else "requests"
            out.append(
                f"- {row['label']}, all rounds: {row['requests']} {what} answered 2xx, "
                f"{r['accepted']} distinct rows named in those answers, {r['stored']} rows "
                f"stored, **{r['lost']} lost, {r['duplicated']} duplicated**; {r['in_flight']} "
                f"rows come from requests still in flight when wrk stopped (their answers were "
                f"never read). Check: {'passed' if r['ok'] else 'FAILED'}."
            )
    return out


def plans(size: dict) -> list[str]:
    out = []
    for entry in ("course_page", "analytics"):
        data = size.get("queries", {}).get(entry)
        if not data or not data.get("plans"):
            continue
        out.append(
            f"**{entry}** (cold request `{data.get('path', '?')}`, {data['cold']} queries), "
            "slowest statements:"
        )
        out.append("")
        for plan in data["plans"][:2]:
            out.append(f"- {plan['execution_ms']:.1f} ms: `{plan['sql'][:160]}...`")
            out.append("")
            out.append("  ```")
            out.extend(f"  {line}" for line in plan["key_lines"][:18])
            out.append("  ```")
        out.append("")
    return out


def render(document: dict) -> str:
    m = document["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (`make bench`); see bench/README.md for the method.",
        "Ratios are each endpoint's requests per second over the bare Django view's, measured in",
        "the same run on the same server between neighbouring runs; medians over the rounds.",
        "",
        f"- Date: {document['started']} to {document['finished']} (UTC)"
        + (f", label `{document['label']}`" if document["label"] else ""),
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, "
        f"Linux {m['kernel']}; load average before {m['load_before'][0]:.2f}, after "
        f"{(m['load_after'] or [0])[0]:.2f} (shared machine: other work was running)",
        f"- Software: Python {m['python']}, Django {m.get('django', '?')}, gunicorn "
        f"{m.get('gunicorn', '?')}, PostgreSQL {m.get('postgresql', '?')} at "
        f"{m.get('postgresql_at', '?')}, Redis "
        f"{m.get('redis', '?')}, {m['wrk']}",
        f"- Command: `{document['command']}` (options: rounds {document['options']['rounds']}, "
        f"{document['options']['duration']:g} s per run, {document['options']['connections']} "
        f"connections, {document['options']['wrk_threads']} wrk threads)",
        "",
    ]
    for size in document["sizes"]:
        shape = size["shape"]
        g = size["gunicorn"]
        prepared = size["prepared"]
        lines += [
            f"## {size['size']} data set: {shape['courses']} course(s) x {shape['contents']} items"
            f" x {shape['learners']} learners ({prepared['progress_rows']:,} progress rows, "
            f"database {prepared['db_size']})",
            "",
            f"gunicorn {g['workers']} workers x {g['threads']} threads ({g['worker_class']}), "
            f"keepalive {g['keepalive']} s, access log `{g['accesslog']}`; worker RSS at the end: "
            + ", ".join(f"{x:.0f} MB" for x in size["final_rss_mb"]),
            "",
            *(
                [
                    "**PostgreSQL was restarted by something else during this run: figures are "
                    "disturbed.**",
                    "",
                ]
                if size.get("postgres_restarted")
                else []
            ),
            *table(size),
            "",
            *(
                ["CPU per request by process group (ms; see the method below):", "", *cpu, ""]
                if (cpu := cpu_table(size))
                else []
            ),
            *(overall(size) if size["size"] == "large" else []),
            *rows_note(size),
            "",
        ]
        if size["size"] == "large":
            lines += ["### Query plans (EXPLAIN ANALYZE, large set)", "", *plans(size)]
    lines += [
        "## How the figures are made",
        "",
        "- Cached rows: a warm-up run fills the cache first; `cache hits` is 1 - (cache entries "
        "created during the run / requests).",
        "- Uncached rows: the endpoint's cache entries are deleted before the run and each request "
        "asks for a different learner or page (each key once, in a shuffled order).",
        "- Uncached analytics: its cache entry is deleted before each request, one request at a "
        "time on one connection (latency of the computation with nothing else running).",
        "- SQL/request: one request through Django's test client under CaptureQueriesContext "
        "(cold or warm as the row says); includes SAVEPOINT/RELEASE, BEGIN/COMMIT of atomic "
        "blocks, not the CONN_HEALTH_CHECKS `SELECT 1`.",
        "- RSS: VmRSS of each gunicorn worker from /proc after each run; the column is the "
        "largest seen.",
        "- write-then-read: every POST answered 2xx is followed by a GET of that learner's 3.1 "
        "(always a cache miss); req/s are pairs per second, its ratio pairs/s over the bare "
        "view's req/s, its latencies a pair's (POST sent to its read answered), its SQL the "
        "POST's plus the uncached read's. Its rows are checked as the POST row's.",
        "- p50 at 1 conn.: after the rounds each row runs once more at one connection "
        "(`--single-duration` s, same cache preparation): the latency a single user feels.",
        CPU_METHOD,
        "- Targets (issue 17, large set): a row meets its target when its median ratio and its "
        "SQL count are on target and it had no non-2xx answer, socket error, lost or "
        "duplicated row.",
        "",
    ]
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    return "\n".join(lines)


def console(document: dict) -> str:
    out = []
    for size in document["sizes"]:
        out.append(f"{size['size']} data set")
        out.append(
            f"  {'endpoint':<46} {'req/s':>8} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'1c p50':>7} {'non2xx':>6} {'SQL':>4} {'hits':>5} {'RSS MB':>6}  target"
        )
        for row in summarise(size):
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
            hits = "" if row["hit_ratio"] is None else f"{100 * row['hit_ratio']:.0f}%"
            met = {True: "met", False: "NOT MET", None: ""}[row["met"]]
            out.append(
                f"  {row['label']:<46} {_fmt(row['rps'], '8.1f')} {ratio:>6} "
                f"{_fmt(row['p50_ms'], '8.1f')} {_fmt(row['p99_ms'], '8.1f')} "
                f"{_fmt(row['p50_1c_ms'], '7.1f')} "
                f"{row['non2xx'] + row['errors']:>6} {_fmt(row['sql'], 'd'):>4} {hits:>5} "
                f"{_fmt(row['rss_mb'], '6.0f')}  {row['target']} {met}"
            )
        cpu_rows = [row for row in summarise(size) if row.get("cpu")]
        if cpu_rows:
            out.append(
                f"  CPU ms/request: {'endpoint':<40} {'worker':>7} {'(user)':>7} {'pg':>7} "
                f"{'redis':>7} "
                f"{'wrk':>7} {'total':>7} {'x bare':>7} {'1/x':>6} {'pg oth':>7} {'other':>7}"
            )
            for row in cpu_rows:
                ms, x = row["cpu"]["ms"], row["cpu"]["x_bare"]
                order = (GROUPS[0], WORKER_USER, *GROUPS[1:], "total")
                groups = " ".join(_fmt(ms.get(g), "7.3f") for g in order)
                out.append(
                    f"                  {row['label'][:40]:<40} {groups} {_fmt(x, '7.2f')} "
                    f"{_fmt(x and 1 / x, '6.3f')} {_fmt(ms.get('postgres_other'), '7.3f')} "
                    f"{_fmt(ms.get('other'), '7.3f')}"
                )
        if size["size"] == "large":
            out.extend("  " + line for line in overall(size))
        out.extend("  " + line for line in rows_note(size))
    return "\n".join(out)
