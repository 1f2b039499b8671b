"""The bench's table (bench/endpoints.py) and verdicts (bench/report.py), on made-up figures:
what the coordinator reads in RESULTS.md must say "met" exactly when issue 17's target is."""

import pytest

from bench import report
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
