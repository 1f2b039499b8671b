"""import_progress: CSV and JSON lines in, through the services, judged by its summary, its
errors and the rows in the database."""

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from courseprogress.exceptions import Conflict
from courseprogress.models import CourseContent
from progress import services, status_sync
from progress.management.progress_files import CREATED
from progress.models import ContentProgress, Enrollment, EnrollmentStatus
from tests.commands.tools import (
    User,
    csv_text,
    enrollment,
    progress,
    read_progress,
    run,
    snapshot,
    summary,
    write_file,
)

STORED = [
    None,
    {"status": "IN_PROGRESS", "percent": Decimal(40), "duration": 10, "metadata": {"a": 1}},
    {"status": "COMPLETED", "percent": Decimal(100), "duration": 30, "metadata": {}},
    {"status": "LOCKED", "percent": Decimal(0), "duration": 0, "metadata": {}},
]
UPDATES = [
    {"status": "NOT_STARTED"},
    {"status": "IN_PROGRESS", "percent": Decimal(40), "duration": 10, "metadata": {"a": 1}},
    {"status": "IN_PROGRESS", "percent": Decimal(20)},
    {"status": "IN_PROGRESS", "duration": 11},
    {"status": "IN_PROGRESS", "metadata": {"b": 2}},
    {"status": "COMPLETED"},
    {"status": "COMPLETED", "percent": Decimal(100), "duration": 30, "metadata": {}},
    {"status": "LOCKED"},
]


@pytest.mark.parametrize("exact", [False, True])
def test_the_import_skips_exactly_the_updates_record_progress_would_not_change(
    exact, learner, course, contents, enrolled
):
    fields = ("status", "percent", "duration", "metadata")
    for stored in STORED:
        for update in UPDATES:
            ContentProgress.objects.all().delete()
            row = None
            if stored:
                row = ContentProgress.objects.create(
                    user=learner, course=course, content=contents[0], **stored
                )
            predicted = services.would_change_progress(row, exact=exact, **update)
            try:
                after = progress(learner, course, contents[0], exact=exact, **update)
            except (Conflict, PermissionDenied):
                # Refused: predicted as a change, so that the refusal is seen; but a line that
                # is exactly the stored row (an exported LOCKED row) is skipped, not refused.
                as_stored = stored is not None and all(
                    stored[name] == update.get(name, stored[name]) for name in fields
                )
                assert predicted is not as_stored, (stored, update)
                continue
            changed = row is None or any(
                getattr(after, name) != getattr(row, name) for name in fields
            )
            assert predicted == changed, (stored, update)


# --- import_progress -----------------------------------------------------------------------------


def test_import_writes_good_rows_and_reports_bad_ones_by_line(
    tmp_path, make_user, learner, course, contents, other_course, two_enrolled
):
    outsider = make_user("outsider")  # exists, not enrolled
    c1, c2, c3 = (c.pk for c in contents)
    foreign = other_course.contents.first().pk
    text = (
        "userId,courseId,courseContentId,progressStatus,activityDuration,progressPercent,metadata\n"
        f'{learner.pk},{course.pk},{c1},COMPLETED,30,,"{{""device"": ""web""}}"\n'  # 2 good
        # Lines 3-4: one record, its quoted metadata spans two lines.
        f'{learner.pk},{course.pk},{c2},IN_PROGRESS,10,45.5,"{{""note"": ""two"",\n'
        '""lines"": 2}"\n'
        f"{learner.pk},{course.pk},{c3},DONE,5,,\n"  # 5: unknown status
        f"999999,{course.pk},{c1},IN_PROGRESS,,,\n"  # 6: unknown user
        f"{learner.pk},999999,{c1},IN_PROGRESS,,,\n"  # 7: unknown course
        f"{learner.pk},{course.pk},{foreign},IN_PROGRESS,,,\n"  # 8: content of another course
        f"{outsider.pk},{course.pk},{c1},IN_PROGRESS,,,\n"  # 9: not enrolled
        f"{learner.pk},{course.pk},{c2},IN_PROGRESS,-3,100.5,\n"  # 10: out of range
        f'{learner.pk},{course.pk},{c3},IN_PROGRESS,,33.333,"[1, 2]"\n'  # 11: three decimals, list
        f"{learner.pk},{course.pk},{c3},IN_PROGRESS,1.5,nan,\n"  # 12: not numbers
    )
    path = write_file(tmp_path, "progress.csv", text)
    errors_path = tmp_path / "rejected.csv"

    out, err = run("import_progress", path, "--errors-file", str(errors_path), expect_failure=True)

    assert summary(out) == {"read": 10, "changed": 2, "skipped": 0, "failed": 8}
    reported = dict(re.findall(r"^line (\d+): (.*)$", err, re.MULTILINE))
    assert sorted(map(int, reported)) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert reported["5"].startswith("progressStatus: ")
    assert reported["6"] == "userId: User 999999 does not exist."
    assert reported["7"] == "courseId: Course 999999 does not exist."
    assert reported["8"] == "courseContentId: This content is not part of the course."
    assert reported["9"] == "The learner has no active enrollment in this course."
    assert "activityDuration" in reported["10"]
    assert "progressPercent" in reported["10"]
    assert "progressPercent" in reported["11"]
    assert "metadata: A JSON object is required." in reported["11"]
    assert "activityDuration" in reported["12"]
    assert "progressPercent" in reported["12"]
    assert "CommandError: 8 rows failed" in err

    rows = {row.content_id: row for row in ContentProgress.objects.all()}
    assert set(rows) == {c1, c2}
    assert (rows[c1].status, rows[c1].percent, rows[c1].duration) == ("COMPLETED", 100, 30)
    assert rows[c1].metadata == {"device": "web"}
    assert (rows[c2].status, rows[c2].percent, rows[c2].duration) == (
        "IN_PROGRESS",
        Decimal("45.50"),
        10,
    )
    assert rows[c2].metadata == {"note": "two", "lines": 2}
    assert enrollment(learner, course).status == EnrollmentStatus.IN_PROGRESS

    with errors_path.open(newline="") as rejected:
        bad = list(csv.DictReader(rejected))
    assert [row["line"] for row in bad] == ["5", "6", "7", "8", "9", "10", "11", "12"]
    assert bad[1]["error"] == "userId: User 999999 does not exist."
    assert bad[1]["userId"] == "999999"  # the row as it was, to fix and import again


def test_import_json_lines_by_username_applies_the_learner_merge(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[0], "COMPLETED", duration=40, metadata={"a": 1})
    lines = [
        # Lower than stored: the merge keeps status, percent, minutes; metadata keys merge.
        {
            "username": "learner",
            "courseId": course.pk,
            "courseContentId": contents[0].pk,
            "progressStatus": "IN_PROGRESS",
            "activityDuration": 5,
            "progressPercent": 20,
            "metadata": {"b": 2},
        },
        {
            "username": "learner",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
            "progressPercent": 12.5,
            "extra": "ignored",
        },
        {
            "username": "nobody",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },
        {
            "userId": learner.pk,
            "username": "other_learner",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },
        {
            "userId": str(learner.pk),
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },  # the API takes no strings for ids
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n[1]\n"
    path = write_file(tmp_path, "progress.jsonl", text)

    out, err = run("import_progress", path, expect_failure=True)

    assert summary(out) == {"read": 7, "changed": 2, "skipped": 0, "failed": 5}
    assert "line 3: username: There is no user 'nobody'." in err
    assert "line 4: userId: User" in err
    assert "line 5: userId: A whole number is required." in err
    assert "line 7: not valid JSON" in err
    assert "line 8: a JSON object is required" in err
    first = ContentProgress.objects.get(content=contents[0])
    assert (first.status, first.percent, first.duration) == ("COMPLETED", 100, 40)
    assert first.metadata == {"a": 1, "b": 2}
    assert ContentProgress.objects.get(content=contents[1]).percent == Decimal("12.50")


def test_import_overwrite_stores_the_fields_as_given(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[0], "COMPLETED", duration=40, metadata={"a": 1})
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": contents[0].pk,
            "progressStatus": "IN_PROGRESS",
            "activityDuration": 5,
            "progressPercent": 20,
            "metadata": {"b": 2},
        },
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "LOCKED",
        },
    ]
    path = write_file(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    _, err = run("import_progress", path, expect_failure=True)  # LOCKED needs --overwrite
    assert "line 2: progressStatus: LOCKED is set only with --overwrite" in err

    out, _ = run("import_progress", path, "--overwrite")
    assert summary(out)["changed"] == 2
    first = ContentProgress.objects.get(content=contents[0])
    assert (first.status, first.percent, first.duration) == ("IN_PROGRESS", 20, 5)
    assert first.metadata == {"b": 2}
    assert ContentProgress.objects.get(content=contents[1]).status == "LOCKED"


def import_rows(learner, course, contents):
    return [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": c.pk,
            "progressStatus": "COMPLETED" if i else "IN_PROGRESS",
            "activityDuration": 10 + i,
            "progressPercent": 50 if not i else "",
            "metadata": "",
        }
        for i, c in enumerate(contents)
    ]


def test_import_dry_run_writes_nothing(tmp_path, learner, course, contents, two_enrolled):
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    before = snapshot()
    out, _ = run("import_progress", path, "--dry-run")
    assert snapshot() == before
    assert summary(out) == {"read": 3, "changed": 3, "skipped": 0, "failed": 0}
    assert "would change 3" in out


def test_import_twice_changes_nothing_the_second_time(
    tmp_path, learner, course, contents, two_enrolled
):
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    out, _ = run("import_progress", path)
    assert summary(out)["changed"] == 3
    before = snapshot()

    out, _ = run("import_progress", path)

    assert snapshot() == before
    assert summary(out) == {"read": 3, "changed": 0, "skipped": 3, "failed": 0}


def test_import_invalidates_cached_reads(
    tmp_path, client_for, learner, course, contents, two_enrolled
):
    assert read_progress(client_for, learner, course)["activityLogs"] == []  # cached
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    run("import_progress", path)
    results = read_progress(client_for, learner, course)
    assert len(results["activityLogs"]) == 3
    assert results["enrollments"]["enrollmentStatus"] == "IN_PROGRESS"


def test_import_keeps_timestamps_of_rows_it_creates(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[1], "IN_PROGRESS")
    existing = ContentProgress.objects.get(content=contents[1])
    base = {
        "userId": learner.pk,
        "courseId": course.pk,
        "progressStatus": "COMPLETED",
        "user_course_content_progress_created_at": "2025-01-02T10:00:00.000Z",
        "user_course_content_progress_updated_at": "2025-01-03T11:30:00.250Z",
    }
    future = (timezone.now() + timedelta(days=2)).isoformat()
    rows = [
        {**base, "courseContentId": contents[0].pk},
        {**base, "courseContentId": contents[1].pk},
        {
            **base,
            "courseContentId": contents[2].pk,
            "user_course_content_progress_updated_at": future,
        },
        {
            **base,
            "courseContentId": contents[2].pk,
            "user_course_content_progress_created_at": "2025-01-04T00:00:00Z",
        },
    ]
    path = write_file(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    _, err = run("import_progress", path, expect_failure=True)

    created = ContentProgress.objects.get(content=contents[0])
    assert created.created_at == datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
    assert created.updated_at == datetime(2025, 1, 3, 11, 30, 0, 250000, tzinfo=UTC)
    changed = ContentProgress.objects.get(content=contents[1])
    assert changed.status == "COMPLETED"
    assert changed.created_at == existing.created_at
    assert changed.updated_at > existing.updated_at  # written now
    assert "line 3: user_course_content_progress_updated_at: May not be in the future." in err
    assert "line 4: user_course_content_progress_updated_at: May not be before" in err


def test_import_failed_batch_leaves_nothing_half_written(
    tmp_path, monkeypatch, learner, course, contents, two_enrolled, other_learner
):
    rows = import_rows(learner, course, contents) + import_rows(other_learner, course, contents)
    path = write_file(tmp_path, "p.csv", csv_text(rows[:5]))  # lines 2-6
    real = services.record_progress
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 4:  # the second row of the second batch
            raise RuntimeError("connection lost")
        return real(**kwargs)

    monkeypatch.setattr(services, "record_progress", flaky)
    out, err = run("import_progress", path, "--batch-size", "2", expect_failure=True)

    assert "Stopped: the batch of lines 4-5 failed and was rolled back" in err
    assert "RuntimeError: connection lost" in err
    # The first batch is written; nothing of the second (its first row was written, then
    # rolled back with it); the third never ran.
    assert ContentProgress.objects.count() == 2
    assert set(ContentProgress.objects.values_list("user_id", "content_id")) == {
        (learner.pk, contents[0].pk),
        (learner.pk, contents[1].pk),
    }
    assert summary(out) == {"read": 4, "changed": 2, "skipped": 0, "failed": 2}

    monkeypatch.setattr(services, "record_progress", real)
    out, _ = run("import_progress", path, "--batch-size", "2")
    assert summary(out) == {"read": 5, "changed": 3, "skipped": 2, "failed": 0}


def test_import_refuses_a_file_it_cannot_read(tmp_path, two_enrolled):
    path = write_file(tmp_path, "p.csv", "userId,courseContentId,progressStatus\n1,2,COMPLETED\n")
    _, err = run("import_progress", path, expect_failure=True)
    assert "the CSV header lacks courseId" in err
    _, err = run("import_progress", write_file(tmp_path, "p.txt", ""), expect_failure=True)
    assert "--format" in err
    _, err = run("import_progress", str(tmp_path / "missing.csv"), expect_failure=True)
    assert "No such file" in err


@pytest.mark.slow
# Each batch commits, as it does in production: inside one test transaction on PostgreSQL, its
# ten thousand savepoints (subtransactions) overflow the snapshot's subtransaction cache and
# every later row check slows down (the run took minutes instead of seconds).
@pytest.mark.django_db(transaction=True)
def test_import_of_ten_thousand_rows_is_correct(tmp_path, course):
    CourseContent.objects.bulk_create(
        [CourseContent(course=course, title=f"Item {j}", position=10 + j) for j in range(97)]
    )
    contents = list(course.contents.order_by("position"))
    assert len(contents) == 100
    learners = User.objects.bulk_create([User(username=f"bulk{k:03d}") for k in range(100)])
    Enrollment.objects.bulk_create([Enrollment(user=u, course=course) for u in learners])
    expected = {}
    lines = []
    for k, user in enumerate(learners):
        for j, content in enumerate(contents):
            # Learners with k % 4 == 0 finish everything; the others stop part-way.
            status = (
                "COMPLETED" if k % 4 == 0 or j < k % 7 else ("IN_PROGRESS", "NOT_STARTED")[j % 2]
            )
            percent = Decimal(100) if status == "COMPLETED" else Decimal((j * 7 + k) % 100)
            expected[(user.pk, content.pk)] = (status, percent, (j + k) % 90)
            lines.append(
                {
                    "userId": user.pk,
                    "courseId": course.pk,
                    "courseContentId": content.pk,
                    "progressStatus": status,
                    "activityDuration": (j + k) % 90,
                    "progressPercent": float(percent),
                    "metadata": {"k": k},
                }
            )
    path = write_file(tmp_path, "big.jsonl", "".join(json.dumps(line) + "\n" for line in lines))

    out, _ = run("import_progress", path, "--batch-size", "1000")

    assert summary(out) == {"read": 10_000, "changed": 10_000, "skipped": 0, "failed": 0}
    stored = {
        (row.user_id, row.content_id): (row.status, row.percent, row.duration)
        for row in ContentProgress.objects.all()
    }
    assert stored == expected
    finished = {u.pk for k, u in enumerate(learners) if k % 4 == 0}
    statuses = dict(Enrollment.objects.values_list("user_id", "status"))
    assert {uid for uid, s in statuses.items() if s == "COMPLETED"} == finished
    assert status_sync.enrollment_status_drift() == []


# --- import_progress: hostile lines are that line's error (issue 13) -----------------------------


def test_a_deeply_nested_json_line_is_that_lines_error(
    tmp_path, learner, course, contents, enrolled
):
    good = {"userId": learner.pk, "courseId": course.pk, "progressStatus": "COMPLETED"}
    lines = [
        json.dumps({**good, "courseContentId": contents[0].pk}),
        '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({**good, "courseContentId": contents[1].pk}),
    ]
    csv_path = write_file(
        tmp_path,
        "nested.csv",
        csv_text(
            [{**good, "courseContentId": contents[2].pk, "metadata": "[" * 20_000 + "]" * 20_000}]
        ),
    )
    out, err = run(
        "import_progress",
        write_file(tmp_path, "nested.jsonl", "\n".join(lines)),
        expect_failure=True,
    )
    assert summary(out) == {"read": 3, "changed": 2, "skipped": 0, "failed": 1}
    assert "line 2: JSON nested too deeply to read" in err
    out, err = run("import_progress", csv_path, expect_failure=True)
    assert summary(out) == {"read": 1, "changed": 0, "skipped": 0, "failed": 1}
    assert "line 2: metadata: A JSON object is required." in err


@pytest.mark.parametrize("offset", ["+23:59", "-23:59", "+15:59", "-16:00"])
def test_any_iso_offset_in_a_timestamp_is_understood(
    tmp_path, learner, course, contents, enrolled, offset
):
    """PostgreSQL refuses offsets past 15:59 that ISO 8601 allows: the import converts to UTC
    first, so the row is written, and the other rows of its batch with it."""
    stamp = f"2025-10-13T12:00:00{offset}"
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": content.pk,
            "progressStatus": "COMPLETED",
            CREATED: stamp if content == contents[1] else "",
        }
        for content in contents
    ]
    out, _ = run("import_progress", write_file(tmp_path, "stamps.csv", csv_text(rows)))
    assert summary(out) == {"read": 3, "changed": 3, "skipped": 0, "failed": 0}
    stored = ContentProgress.objects.get(content=contents[1]).created_at
    assert stored == datetime.fromisoformat(stamp)


def test_a_timestamp_past_the_calendar_in_utc_is_that_lines_error(
    tmp_path, learner, course, contents, enrolled
):
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": content.pk,
            "progressStatus": "COMPLETED",
            CREATED: stamp,
        }
        for content, stamp in zip(
            contents, ["0001-01-01T00:00:00+23:59", "", "9999-12-31T23:59:59-23:59"], strict=True
        )
    ]
    out, err = run(
        "import_progress", write_file(tmp_path, "edges.csv", csv_text(rows)), expect_failure=True
    )
    assert summary(out) == {"read": 3, "changed": 1, "skipped": 0, "failed": 2}
    assert f"line 2: {CREATED}: An ISO 8601 date-time is required." in err
    assert f"line 4: {CREATED}: An ISO 8601 date-time is required." in err
