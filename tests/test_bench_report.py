"""The bench's table (bench/endpoints.py) and verdicts (bench/report.py), on made-up figures:
what the coordinator reads in RESULTS.md must say "met" exactly when issue 17's target is."""

import os
import subprocess
import sys

import pytest

from bench import cpu, report
from bench.endpoints import BY_NAME, DEFAULT_ENDPOINTS, WRK_ROWS
from bench.run import schedule


def run(name, rps, seq, p50=10.0, non2xx=0, rows=None, connections=100):
    extra = {"seq": seq, "rss_mb": [90.0]}
    if rows is not None:
        extra["rows"] = rows
    return {
        "endpoint": name,
        "rps": rps,
        "requests": int(rps * 10),
        "p50_ms": p50,
        "p99_ms": p50 * 3,
        "non2xx": non2xx,
        "errors": 0,
        "seconds": 10.0,
        "connections": connections,
        "extra": extra,
    }


ROWS_OK = {
    "accepted_rows": 10,
    "rows_after": 10,
    "lost": 0,
    "duplicated": 0,
    "in_flight_at_stop": 0,
    "ok": True,
}


def size(runs, queries, single=None, name="large"):
    return {
        "size": name,
        "runs": runs,
        "queries": queries,
        "single": single or {},
        "final_rss_mb": [90.0],
    }


def rows_by_name(document_size):
    return {row["name"]: row for row in report.summarise(document_size)}


QUERIES = {
    "update": {"cold": 5, "warm": 4},
    "learner": {"cold": 2, "warm": 1},
}


def test_ratios_sql_and_the_one_connection_latency_make_the_verdicts():
    runs = {
        "bare": [run("bare", 1000, 0), run("bare", 1000, 3)],
        "update": [run("update", 120, 1, rows=ROWS_OK)],  # 0.12 >= 0.10, SQL 4 <= 4
        "learner_uncached": [run("learner_uncached", 140, 2)],  # 0.14 < 0.15
        "write_then_read": [run("write_then_read", 70, 4, rows=ROWS_OK)],  # no bare after it
    }
    single = {"update": run("update", 90, 0, p50=7.5, connections=1, rows=ROWS_OK)}
    rows = rows_by_name(size(runs, QUERIES, single))
    assert rows["update"]["ratio"] == pytest.approx(0.12)
    assert (rows["update"]["target"], rows["update"]["met"]) == ("ratio >= 0.1, SQL <= 4", True)
    assert rows["update"]["p50_1c_ms"] == 7.5
    assert rows["learner_uncached"]["met"] is False
    # a pair's statements are the POST's and the uncached read's
    assert rows["write_then_read"]["sql"] == 4 + 2
    assert rows["write_then_read"]["ratio"] == pytest.approx(0.07)
    assert rows["write_then_read"]["met"] is True


def test_a_sql_count_over_target_fails_a_row_whose_ratio_is_met():
    runs = {"bare": [run("bare", 1000, 0)], "update": [run("update", 500, 1, rows=ROWS_OK)]}
    rows = rows_by_name(size(runs, {"update": {"cold": 8, "warm": 7}}))
    assert rows["update"]["ratio"] == pytest.approx(0.5)
    assert rows["update"]["met"] is False


@pytest.mark.parametrize(
    "spoiler",
    [
        {"non2xx": 1},
        {"rows": {**ROWS_OK, "lost": 1, "ok": False}},
        {"rows": {**ROWS_OK, "duplicated": 1, "ok": False}},
    ],
)
def test_non_2xx_answers_or_lost_or_duplicated_rows_fail_the_target(spoiler):
    rows_check = spoiler.get("rows", ROWS_OK)
    runs = {
        "bare": [run("bare", 1000, 0)],
        "update": [run("update", 500, 1, non2xx=spoiler.get("non2xx", 0), rows=rows_check)],
    }
    assert rows_by_name(size(runs, QUERIES))["update"]["met"] is False


def test_a_failed_rows_check_in_the_one_connection_run_fails_the_row():
    runs = {"bare": [run("bare", 1000, 0)], "update": [run("update", 500, 1, rows=ROWS_OK)]}
    bad = {**ROWS_OK, "lost": 2, "ok": False}
    single = {"update": run("update", 90, 0, connections=1, rows=bad)}
    assert rows_by_name(size(runs, QUERIES, single))["update"]["met"] is False


def test_targets_are_judged_on_the_large_set_only():
    runs = {"bare": [run("bare", 1000, 0)], "update": [run("update", 500, 1, rows=ROWS_OK)]}
    row = rows_by_name(size(runs, QUERIES, name="small"))["update"]
    assert (row["target"], row["met"]) == ("", None)


def test_the_table_has_the_new_column_and_labels_from_the_one_table():
    runs = {"bare": [run("bare", 1000, 0)], "write_then_read": [run("write_then_read", 60, 1)]}
    lines = report.table(size(runs, QUERIES, {"write_then_read": run("w", 1, 0, p50=12.3)}))
    assert "p50 ms at 1 conn." in lines[0]
    assert any(BY_NAME["write_then_read"].label in line and "12.3" in line for line in lines)


def test_the_endpoint_table_is_consistent():
    assert set(DEFAULT_ENDPOINTS) <= set(WRK_ROWS)
    for name in ("update", "learner_uncached", "write_then_read", "learner_cached"):
        assert name in DEFAULT_ENDPOINTS and BY_NAME[name].target is not None
    assert BY_NAME["write_then_read"].writes and BY_NAME["update"].writes


def test_bare_runs_sit_between_every_two_rows_and_the_order_turns():
    assert schedule(["a", "b", "c"], 0) == ["bare", "a", "b", "bare", "c", "bare"]
    assert schedule(["a", "b", "c"], 1) == ["bare", "b", "c", "bare", "a", "bare"]


# --- CPU per request by process group (bench/cpu.py) -----------------------------------------


def snap(worker=None, reaped=0, postgres=None, wrk=0, machine=0, postgres_other=None, user=None):
    return cpu.Snapshot(
        per_process={
            "worker": worker or {},
            "worker_user": user or {},
            "postgres": postgres or {},
            "redis": {},
            "postgres_other": postgres_other or {},
        },
        reaped={"worker": reaped},
        wrk=wrk,
        machine=machine,
    )


def test_a_group_counts_growth_new_processes_and_what_its_parent_reaped():
    before = snap(worker={(1, 100): 100, (3, 300): 40, (4, 400): 500}, reaped=10)
    # 1 grew by 200; 2 started during the run; 3 ended (its parent reaped 40 + 30 more);
    # pid 4 was reused by a new process (another start time): counted whole, not as 30 - 500
    after = snap(worker={(1, 100): 300, (2, 200): 50, (4, 450): 30}, reaped=80)
    assert cpu.group_ticks(before, after, "worker") == 200 + 50 + 30 + 70


def test_the_split_is_per_request_and_the_total_leaves_other_work_out():
    t = cpu.TICKS
    before = snap(worker={(1, 1): 0}, postgres={(2, 2): 0}, postgres_other={(3, 3): 0})
    after = snap(
        worker={(1, 1): 2 * t},  # 2 s
        user={(1, 1): 3 * t // 2},  # of it 1.5 s in user space
        postgres={(2, 2): t},  # 1 s
        postgres_other={(3, 3): t // 2},  # 0.5 s
        wrk=t // 2,  # 0.5 s
        machine=6 * t,  # 6 s busy: 2 s of it nobody's of ours
    )
    out = cpu.split(before, after, requests=1000)
    assert out["ms"]["worker"] == pytest.approx(2.0)
    assert out["ms"]["postgres"] == pytest.approx(1.0)
    assert out["ms"]["wrk"] == pytest.approx(0.5)
    assert out["ms"]["total"] == pytest.approx(3.5)  # worker + postgres + redis + wrk
    assert out["ms"]["worker_user"] == pytest.approx(1.5)  # a part of worker, not added again
    assert out["ms"]["postgres_other"] == pytest.approx(0.5)
    assert out["ms"]["other"] == pytest.approx(2.0)
    assert cpu.split(before, after, requests=0)["ms"] is None


def test_a_child_that_ran_and_ended_during_the_run_is_counted_through_its_parent():
    master = os.getpid()  # this process stands for the gunicorn master, a child for a worker
    before = cpu.snapshot(gunicorn_master=master, database="nothing")
    burn = "import time\nwhile time.process_time() < 0.3: sum(range(100_000))"
    subprocess.run([sys.executable, "-c", burn], check=True)
    after = cpu.snapshot(gunicorn_master=master, database="nothing")
    # the child's 0.3 s (and its interpreter's start) are in the master's cutime/cstime
    assert cpu.group_ticks(before, after, "worker") / cpu.TICKS >= 0.25
    assert (after.wrk - before.wrk) / cpu.TICKS >= 0.25  # and in RUSAGE_CHILDREN
    assert cpu.group_ticks(before, after, "worker_user") / cpu.TICKS >= 0.2  # a busy loop: user


def cpu_run(name, rps, seq, total, worker):
    out = run(name, rps, seq)
    ms = dict.fromkeys((*cpu.GROUPS, *cpu.APART), 0.0)
    ms.update(worker=worker, worker_user=worker / 2, postgres=total - worker, total=total)
    out["extra"]["cpu"] = {"requests": out["requests"], "seconds": {}, "ms": ms}
    return out


@pytest.fixture
def without_notes(monkeypatch, tmp_path):
    """RESULTS.md ends with bench/notes.md, which quotes CPU tables of its own."""
    monkeypatch.setattr(report, "NOTES", tmp_path / "absent.md")


def test_the_cpu_table_says_how_many_times_the_bare_views_cpu_a_row_costs(without_notes):
    runs = {
        "bare": [cpu_run("bare", 1000, 0, 0.5, 0.3), cpu_run("bare", 1000, 2, 0.7, 0.4)],
        "floor_stamp": [cpu_run("floor_stamp", 200, 1, 3.0, 1.8)],
    }
    single = {"floor_stamp": cpu_run("floor_stamp", 50, 0, 2.5, 1.5)}
    del single["floor_stamp"]["extra"]["seq"]  # the one-connection run is not in the medians
    rows = rows_by_name(size(runs, QUERIES, single))
    assert rows["floor_stamp"]["cpu"]["x_bare"] == pytest.approx(3.0 / 0.6)
    assert rows["bare"]["cpu"]["ms"]["total"] == pytest.approx(0.6)  # median of the bare runs
    lines = report.cpu_table(size(runs, QUERIES, single))
    line = next(x for x in lines if BY_NAME["floor_stamp"].label in x)
    cells = [c.strip() for c in line.split("|")]
    # worker, postgres, redis, wrk, total, x bare, 1/x, measured ratio, total at 1 conn.
    expected = [
        "1.800 (0.900)",
        "1.200",
        "0.000",
        "0.000",
        "**3.000**",
        "5.00",
        "0.200",
        "0.200",
        "2.500",
    ]
    assert cells[2:11] == expected
    assert report.CPU_HEADER in report.render(document(size(runs, QUERIES)))


def test_runs_without_cpu_figures_render_as_before(without_notes):
    runs = {"bare": [run("bare", 1000, 0)], "update": [run("update", 100, 1, rows=ROWS_OK)]}
    assert report.cpu_table(size(runs, QUERIES)) == []
    assert rows_by_name(size(runs, QUERIES))["update"]["cpu"] is None
    assert report.CPU_HEADER not in report.render(document(size(runs, QUERIES)))


def document(one_size):
    shaped = {
        **one_size,
        "shape": {"courses": 1, "contents": 1, "learners": 1},
        "prepared": {"progress_rows": 1, "db_size": "1 MB"},
        "gunicorn": {"workers": 2, "threads": 8, "worker_class": "gthread", "keepalive": 5},
    }
    shaped["gunicorn"]["accesslog"] = None
    return {
        "label": "",
        "started": "2026-12-01T12:00:00+00:00",
        "finished": "2026-12-01T12:01:00+00:00",
        "command": "python -m bench",
        "options": {"rounds": 1, "duration": 5, "connections": 100, "wrk_threads": 2},
        "machine": {
            "nproc": 2,
            "cpu": "x",
            "memory_gb": 1,
            "kernel": "k",
            "python": "3.11",
            "load_before": [1.0, 1.0, 1.0],
            "load_after": [1.0, 1.0, 1.0],
            "wrk": "wrk",
        },
        "sizes": [shaped],
    }


def test_the_ceiling_rows_are_bench_only_and_not_default():
    from django.urls import Resolver404, resolve

    for name in ("floor_stamp", "floor_stamp_body", "floor_course_stamp", "floor_throttle_call"):
        row = BY_NAME[name]
        assert name in WRK_ROWS and name not in DEFAULT_ENDPOINTS
        assert row.request_path.startswith("/bench/") and row.label.startswith("ceiling of ")
        concrete = row.request_path.replace("{course}", "1").replace("{learner}", "2")
        assert resolve(concrete, urlconf="bench.urls").func.view_class.__name__.startswith("Floor")
        with pytest.raises(Resolver404):
            resolve(concrete, urlconf="config.urls")
