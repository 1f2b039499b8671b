"""export_progress, and exports that import back unchanged."""

import csv
import io
import json
import re
from decimal import Decimal

import pytest

from progress import services
from progress.management.progress_files import EXPORT_FIELDS
from progress.models import ContentProgress, Enrollment, EnrollmentStatus
from tests.commands.tools import (
    enrollment,
    progress,
    run,
    snapshot,
    summary,
)

# --- export_progress ------------------------------------------------------------------------------


@pytest.fixture
def course_with_progress(learner, other_learner, course, contents, two_enrolled, make_user):
    progress(learner, course, contents[0], "COMPLETED", duration=12, metadata={"seen": "ü"})
    progress(learner, course, contents[2], "IN_PROGRESS", percent=Decimal("33.25"), duration=4)
    services.enrol(user_id=make_user("third").pk, course_id=course.pk)
    return course


def test_export_writes_the_api_fields_as_csv_to_stdout(course_with_progress, learner, contents):
    out, err = run("export_progress", "--course", str(course_with_progress.pk))

    lines = list(csv.DictReader(io.StringIO(out)))
    assert list(lines[0]) == list(EXPORT_FIELDS)
    first, second, *alone = lines
    row = ContentProgress.objects.get(content=contents[0])
    assert first == {
        "userId": str(learner.pk),
        "courseId": str(course_with_progress.pk),
        "courseContentId": str(contents[0].pk),
        "progressStatus": "COMPLETED",
        "activityDuration": "12",
        "progressPercent": "100.00",
        "metadata": '{"seen": "ü"}',
        "user_course_content_progress_created_at": row.created_at.isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z"),
        "user_course_content_progress_updated_at": row.updated_at.isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z"),
        "enrollmentStatus": "IN_PROGRESS",
        "enrollmentDate": first["enrollmentDate"],
        "completionDate": "",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["enrollmentDate"])
    assert (second["courseContentId"], second["progressPercent"]) == (str(contents[2].pk), "33.25")
    # Enrollments without progress follow, with the progress fields empty.
    assert [(a["progressStatus"], a["enrollmentStatus"]) for a in alone] == [
        ("", "ENROLLED"),
        ("", "ENROLLED"),
    ]
    assert summary(err) == {"read": 4, "changed": 0, "skipped": 0, "failed": 0}  # not in the data


def test_export_writes_json_lines_to_a_file(tmp_path, course_with_progress):
    target = tmp_path / "course.jsonl"
    out, _ = run(
        "export_progress", "--course", str(course_with_progress.pk), "--output", str(target)
    )
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[0]["progressPercent"] == 100 and lines[1]["progressPercent"] == 33.25
    assert lines[0]["metadata"] == {"seen": "ü"}
    assert lines[3]["courseContentId"] is None
    assert f"Wrote 4 lines to {target}" in out
    run("export_progress", "--course", "999999", expect_failure=True)


PROGRESS_COLUMNS = (
    "user_id",
    "content_id",
    "status",
    "percent",
    "duration",
    "metadata",
    "created_at",
    "updated_at",
)


def stored_rows():
    rows = []
    for row in ContentProgress.objects.order_by("user_id", "content_id").values(*PROGRESS_COLUMNS):
        for name in ("created_at", "updated_at"):  # the API's timestamps carry milliseconds
            row[name] = row[name].replace(microsecond=row[name].microsecond // 1000 * 1000)
        rows.append(row)
    return rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_then_import_round_trips(tmp_path, fmt, course_with_progress):
    before = stored_rows()
    path = str(tmp_path / f"export.{fmt}")
    run("export_progress", "--course", str(course_with_progress.pk), "--output", path)

    out, _ = run("import_progress", path)  # into the same data: nothing to change
    assert summary(out) == {"read": 4, "changed": 0, "skipped": 4, "failed": 0}

    ContentProgress.objects.all().delete()
    out, _ = run("import_progress", path)
    assert summary(out) == {"read": 4, "changed": 2, "skipped": 2, "failed": 0}
    assert stored_rows() == before


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_any_course_exports_and_imports_back_unchanged(tmp_path, fmt, make_user, course, contents):
    """DROPPED and EXPIRED learners, LOCKED rows, certificates: the export imports back with
    exit 0 and "changed 0", with or without --overwrite."""
    learners = {status: make_user(f"l-{status.lower()}") for status in EnrollmentStatus.values}
    for status, user in learners.items():
        services.enrol(user_id=user.pk, course_id=course.pk)
        progress(user, course, contents[1], "LOCKED", exact=True)  # no activity
        if status != "ENROLLED":
            metadata = {"k": 1}
            progress(
                user, course, contents[0], "IN_PROGRESS", percent=Decimal(10), metadata=metadata
            )
    done = learners["COMPLETED"], learners["CERTIFIED"]
    for user in done:
        for content in contents:
            progress(user, course, content, "COMPLETED", exact=True)
    certified = enrollment(learners["CERTIFIED"], course)
    services.move_enrollment(certified.pk, "CERTIFIED", certificate_url="https://c.example/1")
    for status in ("DROPPED", "EXPIRED"):
        services.move_enrollment(enrollment(learners[status], course).pk, status)
    assert {e.status for e in Enrollment.objects.all()} == set(EnrollmentStatus.values)
    before = snapshot()
    path = str(tmp_path / f"export.{fmt}")
    run("export_progress", "--course", str(course.pk), "--output", path)

    for options in ([], ["--overwrite"]):
        out, err = run("import_progress", path, *options)
        counts = summary(out)
        assert (counts["changed"], counts["failed"]) == (0, 0), err
        assert counts["read"] == counts["skipped"] == ContentProgress.objects.count()
        assert snapshot() == before
