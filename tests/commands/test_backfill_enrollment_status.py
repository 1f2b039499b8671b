"""backfill_enrollment_status and the set-based sync it runs."""

from datetime import UTC, datetime

from django.db import OperationalError
from django.db.models import Max

from courseprogress.models import Course, CourseContent
from progress import services, status_sync
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus
from tests.commands.tools import (
    enrollment,
    progress,
    read_progress,
    run,
    snapshot,
    summary,
)

# --- backfill_enrollment_status ------------------------------------------------------------------


def test_backfill_fixes_drift_made_with_queryset_update(
    client_for, learner, other_learner, course, contents, enrolled
):
    progress(learner, course, contents[0], "IN_PROGRESS")
    other = services.enrol(user_id=other_learner.pk, course_id=course.pk)[0]
    assert read_progress(client_for, learner, course)["enrollments"]["enrollmentStatus"] == (
        "IN_PROGRESS"
    )  # now cached
    # Bulk paths: no signals, so the enrollments never hear of these rows.
    ContentProgress.objects.bulk_create(
        [ContentProgress(user=learner, course=course, content=c) for c in contents[1:]]
        + [ContentProgress(user=other_learner, course=course, content=contents[0])]
    )
    ContentProgress.objects.filter(user=learner).update(status=ProgressStatus.COMPLETED)
    ContentProgress.objects.filter(user=other_learner).update(status=ProgressStatus.IN_PROGRESS)
    before = snapshot()

    out, _ = run("backfill_enrollment_status", "--dry-run")
    assert snapshot() == before
    assert f"would fix enrollment {enrolled.pk} " in out
    assert "IN_PROGRESS -> COMPLETED, completionDate" in out
    assert f"would fix enrollment {other.pk} (user {other_learner.pk}" in out
    assert "ENROLLED -> IN_PROGRESS" in out
    assert summary(out) == {"read": 2, "changed": 2, "skipped": 0, "failed": 0}

    out, _ = run("backfill_enrollment_status")
    assert summary(out)["changed"] == 2
    fixed = enrollment(learner, course)
    assert fixed.status == EnrollmentStatus.COMPLETED
    last_completed = ContentProgress.objects.filter(user=learner).aggregate(m=Max("updated_at"))
    assert fixed.completed_at == max(last_completed["m"], fixed.enrolled_at)
    assert fixed.updated_at > before["Enrollment"][0]["updated_at"]
    assert enrollment(other_learner, course).status == EnrollmentStatus.IN_PROGRESS
    # The cached read sees the fix.
    results = read_progress(client_for, learner, course)
    assert results["enrollments"]["enrollmentStatus"] == "COMPLETED"
    assert {row["progressStatus"] for row in results["activityLogs"]} == {"COMPLETED"}

    after = snapshot()
    out, _ = run("backfill_enrollment_status")
    assert snapshot() == after
    assert summary(out) == {"read": 2, "changed": 0, "skipped": 2, "failed": 0}


def test_backfill_never_moves_certified_dropped_expired_nor_backwards(make_user, course, contents):
    stamp = datetime(2025, 3, 1, tzinfo=UTC)
    cases = {
        "certified": {
            "status": "CERTIFIED",
            "certificate_url": "https://x.test/c",
            "completed_at": stamp,
        },
        "dropped": {"status": "DROPPED"},
        "expired": {"status": "EXPIRED"},
        "completed": {"status": "COMPLETED", "completed_at": stamp},
        "in_progress": {"status": "IN_PROGRESS"},
    }
    users = {}
    for name, fields in cases.items():
        users[name] = make_user(name)
        Enrollment.objects.create(user=users[name], course=course, **fields)
        status = "NOT_STARTED" if name in ("completed", "in_progress") else "COMPLETED"
        ContentProgress.objects.bulk_create(
            [
                ContentProgress(user=users[name], course=course, content=c, status=status)
                for c in contents
            ]
        )
    CourseContent.objects.create(course=course, title="Added later", position=9)
    before = snapshot()

    out, _ = run("backfill_enrollment_status")

    assert snapshot() == before
    assert summary(out)["changed"] == 0


def test_backfill_dates_a_completed_enrollment_that_has_no_completion_date(
    learner, course, contents
):
    row = Enrollment.objects.create(user=learner, course=course, status="COMPLETED")
    ContentProgress.objects.bulk_create(
        [
            ContentProgress(user=learner, course=course, content=c, status="COMPLETED")
            for c in contents
        ]
    )
    out, _ = run("backfill_enrollment_status")
    row.refresh_from_db()
    assert row.status == EnrollmentStatus.COMPLETED
    assert row.completed_at == ContentProgress.objects.aggregate(m=Max("updated_at"))["m"]
    assert "COMPLETED, completionDate" not in out  # verbosity 1: only the summary
    assert summary(out)["changed"] == 1


def test_backfill_course_option_limits_the_fix_to_that_course(
    learner, course, contents, other_course
):
    for c in (course, other_course):
        services.enrol(user_id=learner.pk, course_id=c.pk)
        ContentProgress.objects.bulk_create(
            [ContentProgress(user=learner, course=c, content=c.contents.first())]
        )
    ContentProgress.objects.update(status="IN_PROGRESS")

    out, _ = run("backfill_enrollment_status", "--course", str(other_course.pk))

    assert enrollment(learner, other_course).status == EnrollmentStatus.IN_PROGRESS
    assert enrollment(learner, course).status == EnrollmentStatus.ENROLLED
    assert summary(out)["read"] == 1
    run("backfill_enrollment_status", "--course", "999999", expect_failure=True)


def test_a_database_failure_is_a_plain_error_that_a_rerun_recovers_from(
    monkeypatch, learner, course, contents, enrolled
):
    ContentProgress.objects.bulk_create(
        [ContentProgress(user=learner, course=course, content=contents[0], status="COMPLETED")]
    )

    def lost(ids):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(status_sync, "apply_enrollment_status_drift", lost)
    _, err = run("backfill_enrollment_status", expect_failure=True)
    assert "Database error: server closed the connection unexpectedly." in err
    assert "run the command again to finish" in err

    monkeypatch.undo()
    out, _ = run("backfill_enrollment_status")
    assert summary(out)["changed"] == 1


ROW_PATTERNS = {
    "none": [],
    "not_started": ["NOT_STARTED"] * 3,
    "locked": ["LOCKED"],
    "one_in_progress": ["IN_PROGRESS"],
    "one_completed": ["COMPLETED"],
    "two_completed": ["COMPLETED", "COMPLETED", "LOCKED"],
    "all_completed": ["COMPLETED"] * 3,
}


def test_set_based_sync_agrees_with_automatic_status(make_user, course, contents):
    empty = Course.objects.create(title="No content yet")
    n = 0
    for status in EnrollmentStatus.values:
        for statuses in ROW_PATTERNS.values():
            for target in (course, empty):
                if target is empty and statuses:
                    continue
                n += 1
                user = make_user(f"u{n}")
                Enrollment.objects.create(user=user, course=target, status=status)
                ContentProgress.objects.bulk_create(
                    [
                        ContentProgress(user=user, course=target, content=content, status=s)
                        for content, s in zip(contents, statuses, strict=False)
                    ]
                )
    drift = {row["id"]: row for row in status_sync.enrollment_status_drift()}

    for row in Enrollment.objects.all():
        stats = services.progress_stats(user_id=row.user_id, course_id=row.course_id)
        expected = services.automatic_status(row, stats)
        assert drift.get(row.pk, {"target_status": row.status})["target_status"] == expected
