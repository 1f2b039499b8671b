"""Reads from real streaming replicas, and contract 3.9 kept whole (issue 18).

A primary and two replicas made with initdb / pg_basebackup -R, the app under gunicorn with
DATABASE_REPLICA_URLS naming both. Which server computed a read is counted on the servers
(pg_stat_statements): a read's computation reads progress rows, its stamp never does.
The tests run in file order and share the clusters; the last one stops the replicas.
"""

import itertools
import json
import subprocess
import sys

import pytest
import requests

from tests.live.conftest import ROOT, manage
from tests.replica.conftest import Served

pytestmark = pytest.mark.replica

TIMEOUT = 20
STAFF_TABLE = "courseprogress_coursestaff"
_percents = itertools.count(11)


def reads(h) -> dict[str, tuple[str, str, str, dict | None]]:
    """The cached reads (and 3.6): name -> (role, method, path, body)."""
    course, learner = h.world["course"], h.world["users"]["learner"]
    return {
        "3.1": ("learner", "GET", f"/user-progress/{course}/{learner}", None),
        "3.4": ("learner", "GET", f"/user-progress/{course}/{learner}/activities", None),
        "3.2": ("admin", "GET", f"/user-progress/course/{course}/all", None),
        "3.5": ("admin", "GET", f"/user-progress/course/{course}/analytics", None),
        "3.6": (
            "learner",
            "POST",
            "/user-progress/bulk",
            {"courseId": course, "userIds": [learner]},
        ),
    }


def send(h, name: str) -> requests.Response:
    role, method, path, body = reads(h)[name]
    return h.client(role).request(method, h.server.url + path, json=body, timeout=TIMEOUT)


def write_progress(h) -> int:
    """The system user sets the learner's first item to a percent never used before (plain
    value, so it may go up or down): what every read must show next."""
    percent = next(_percents)
    response = h.client("system").post(
        h.server.url + "/user-progress/update",
        json={
            "userId": h.world["users"]["learner"],
            "courseId": h.world["course"],
            "courseContentId": h.world["contents"][0],
            "progressStatus": "IN_PROGRESS",
            "progressPercent": percent,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return percent


def shown_percent(name: str, response: requests.Response) -> float:
    """What the read says about the learner's first item (3.5: the average it makes)."""
    results = response.json()["results"]
    if name == "3.1":
        rows = results["activityLogs"]
    elif name == "3.4":
        rows = results
    elif name == "3.5":
        # Two enrollments, three items, one row with a percent: the average is percent / 6.
        return round(results["averageProgress"] * 6)
    else:  # 3.2, 3.6: one entry per learner
        (entry,) = [entry for entry in results if entry["activityLogs"]]
        rows = entry["activityLogs"]
    (row,) = rows
    return float(row["progressPercent"])


def health(h) -> dict:
    response = requests.get(h.server.url + "/healthz", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_miss_is_computed_on_a_replica_and_the_primary_reads_only_the_stamp(harness):
    h = harness
    for name in reads(h):
        assert send(h, name).status_code == 200  # tokens and permissions into their caches
    figures = {}
    for name in reads(h):
        percent = write_progress(h)
        h.clusters.wait_for_replay()
        with Served(h) as miss:
            response = send(h, name)
        assert response.status_code == 200, response.text
        assert shown_percent(name, response) == percent, name
        assert miss.primary_computed == 0, (name, miss.primary)
        assert sum(miss.replicas_computed) >= 1, (name, miss.replicas)
        # On the primary: the stamp (with the WAL position) once; for staff, the check that
        # they teach the course (authorisation stays on the primary): its own statement for
        # a learner's reads, the stamp's statement itself for the course-wide ones (3.2, 3.5).
        stamps = [query for query in miss.primary_statements if "pg_current_wal_lsn" in query]
        assert len(stamps) == 1, (name, miss.primary_statements)
        separate_staff_check = any(
            STAFF_TABLE in query and query not in stamps for query in miss.primary_statements
        )
        assert sum(miss.primary_statements.values()) == 1 + separate_staff_check, (
            name,
            miss.primary_statements,
        )
        figures[name] = {
            "primary": sum(miss.primary_statements.values()),
            "replica": sum(sum(statements.values()) for statements in miss.replicas),
        }
        if name == "3.6":
            continue  # not cached: every 3.6 is computed
        with Served(h) as hit:
            again = send(h, name)
        assert again.status_code == 200
        assert shown_percent(name, again) == percent
        assert hit.primary_computed == 0
        assert hit.replicas == [{}, {}], hit.replicas  # a hit needs no replica at all
    print("REPLICA_FIGURES", json.dumps(figures))
    assert health(h)["replicas"] == "ok"


EVENTS_TABLE = "progress_events"


def listed_events(statements: dict[str, int]) -> int:
    """Statements that list the feed's events (not the horizon or the prune mark)."""
    return sum(
        calls
        for query, calls in statements.items()
        if EVENTS_TABLE in query
        and query.lstrip().upper().startswith("SELECT")
        and "horizon" not in query
        and "prune" not in query
    )


def last_event_percent(h) -> str:
    response = h.client("admin").get(
        h.server.url + "/user-progress/events",
        params={"courseId": h.world["course"], "type": "progress.changed", "limit": 1000},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()["results"][-1]["data"]["progressPercent"]


def test_the_event_feed_is_listed_on_a_caught_up_replica_and_on_the_primary_otherwise(harness):
    """The feed's horizon is read on the primary; the events are listed on a replica only once
    it has replayed the WAL written before that read (else the primary lists them)."""
    h = harness
    percent = write_progress(h)
    h.clusters.wait_for_replay()
    with Served(h) as caught_up:
        assert last_event_percent(h) == f"{percent}.00"
    assert listed_events(caught_up.primary) == 0, caught_up.primary
    assert sum(listed_events(replica) for replica in caught_up.replicas) == 1, caught_up.replicas
    for replica in h.replicas:
        replica.pause_replay()
    try:
        percent = write_progress(h)
        with Served(h) as paused:
            assert last_event_percent(h) == f"{percent}.00"  # the write, read on the primary
        assert listed_events(paused.primary) == 1, paused.primary
        assert [listed_events(replica) for replica in paused.replicas] == [0, 0]
    finally:
        for replica in h.replicas:
            replica.resume_replay()
    h.clusters.wait_for_replay()


def test_writes_and_commands_stay_on_the_primary(harness):
    h = harness
    with Served(h) as work:
        write_progress(h)
        enrol = h.client("learner").post(
            h.server.url + "/user-progress/enrollments",
            json={"courseId": h.world["course"]},
            timeout=TIMEOUT,
        )
        assert enrol.status_code == 200, enrol.text  # already enrolled
        exported = manage(h.env, "manage.py", "export_progress", "--course", str(h.world["course"]))
    assert f"{h.world['users']['learner']}," in exported
    assert work.replicas == [{}, {}], work.replicas
    # The export's rows came from the primary: no replica ran a statement. (Its server-side
    # cursor is not in pg_stat_statements, and the update no longer SELECTs progress rows: it is
    # one call of cp_record_progress.)
    assert any("cp_record_progress" in query for query in work.primary), work.primary
    h.clusters.wait_for_replay()


def test_with_replay_paused_a_read_after_a_write_shows_it_from_the_primary(harness):
    h = harness
    for replica in h.replicas:
        replica.pause_replay()
    try:
        percent = write_progress(h)
        for name in reads(h):
            with Served(h) as read:
                response = send(h, name)
            assert response.status_code == 200, response.text
            assert shown_percent(name, response) == percent, name
            assert read.primary_computed >= 1, (name, read.primary)
            assert read.replicas_computed == [0, 0], (name, read.replicas)
        body = health(h)
        assert body["status"] == "ok"
        assert body["replicas"] == "degraded"
        assert body["replicaStates"] == {"replica_1": "paused", "replica_2": "paused"}
    finally:
        for replica in h.replicas:
            replica.resume_replay()
    h.clusters.wait_for_replay()
    # The entries computed on the primary while replay was paused are served as they are.
    with Served(h) as hits:
        for name in ("3.1", "3.4", "3.2", "3.5"):
            response = send(h, name)
            assert response.status_code == 200
            assert shown_percent(name, response) == percent, name
    assert hits.replicas == [{}, {}]
    assert hits.primary_computed == 0
    # Replay resumed: misses go to the replicas again.
    for name in reads(h):
        percent = write_progress(h)
        h.clusters.wait_for_replay()
        with Served(h) as miss:
            response = send(h, name)
        assert shown_percent(name, response) == percent, name
        assert miss.primary_computed == 0, (name, miss.primary)
        assert sum(miss.replicas_computed) >= 1, (name, miss.replicas)
    assert health(h)["replicas"] == "ok"


def test_with_one_replica_behind_misses_go_to_the_one_caught_up(harness):
    h = harness
    behind, caught_up = h.replicas
    behind.pause_replay()
    try:
        for name in reads(h):
            for _ in range(2):  # whichever replica is asked first
                percent = write_progress(h)
                h.clusters.wait_for_replay(only=[caught_up])
                with Served(h) as miss:
                    response = send(h, name)
                assert shown_percent(name, response) == percent, name
                assert miss.primary_computed == 0, (name, miss.primary)
                assert miss.replicas_computed[0] == 0, (name, miss.replicas)
                assert miss.replicas_computed[1] >= 1, (name, miss.replicas)
        assert health(h)["replicaStates"] == {"replica_1": "paused", "replica_2": "ok"}
    finally:
        behind.resume_replay()
    h.clusters.wait_for_replay()


def test_an_entry_is_never_stored_with_data_older_than_its_stamp(harness):
    """Replay paused between the stamp read and the computation (tests/replica/probe.py)."""
    h = harness
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.replica.probe",
            json.dumps(
                {
                    "course": h.world["course"],
                    "user": h.world["users"]["learner"],
                    "content": h.world["contents"][0],
                    "replicas": [replica.url for replica in h.replicas],
                    "primary": h.primary.url,
                }
            ),
        ],
        cwd=ROOT,
        env=h.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    before, after = report["before_write"], report["after_write"]
    # Stamp read before the write, replay paused, the write, then the computation: a replica
    # that had replayed up to the stamp computed it, and the entry holds the data of its stamp.
    assert before["computed_on"].startswith("replica_")
    assert before["stored_percent"] == report["old_percent"]
    assert before["stored_stamp"] == before["stamp"]
    # Stamp read after the write while replay is paused: no replica has it; the primary does.
    assert after["stamp"] != before["stamp"]
    assert after["computed_on"] == "default"
    assert after["stored_percent"] == report["new_percent"]
    assert after["stored_stamp"] == after["stamp"]
    h.clusters.wait_for_replay()


def test_with_the_replicas_stopped_every_endpoint_answers(harness):
    h = harness
    for replica in h.replicas:
        replica.stop("immediate")
    for name in reads(h):
        percent = write_progress(h)
        with Served(h) as read:
            response = send(h, name)
        assert response.status_code == 200, (name, response.text)
        assert shown_percent(name, response) == percent, name
        assert read.primary_computed >= 1, (name, read.primary, read.replicas)
    enrol = h.client("learner").post(
        h.server.url + "/user-progress/enrollments",
        json={"courseId": h.world["other_course"]},
        timeout=TIMEOUT,
    )
    assert enrol.status_code == 201, enrol.text
    body = health(h)
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["replicas"] == "degraded"
    assert body["replicaStates"] == {"replica_1": "unavailable", "replica_2": "unavailable"}
    # Back up: the replicas catch up, health is ok again, and misses go to them again (a
    # replica that failed is retried after REPLICA_RETRY_SECONDS, 1 s here).
    for replica in h.replicas:
        replica.start()
    h.clusters.wait_for_replay()
    assert health(h)["replicas"] == "ok"
    for _ in range(100):
        percent = write_progress(h)
        h.clusters.wait_for_replay()
        with Served(h) as miss:
            response = send(h, "3.1")
        assert shown_percent("3.1", response) == percent
        if sum(miss.replicas_computed):
            break
    else:
        pytest.fail("misses never went back to the replicas")
