"""expire_enrollments: by enrollment date and by the expiry in the metadata."""

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from progress import services
from progress.models import Enrollment, EnrollmentStatus
from tests.commands.tools import (
    read_progress,
    run,
    snapshot,
    summary,
)

# --- expire_enrollments ---------------------------------------------------------------------------


def test_expire_by_enrollment_date_and_by_metadata(make_user, course, other_course):
    def make(name, status, enrolled, metadata=None, target=course, **extra):
        return Enrollment.objects.create(
            user=make_user(name),
            course=target,
            status=status,
            enrolled_at=datetime.fromisoformat(enrolled),
            metadata=metadata or {},
            **extra,
        )

    future = (timezone.now() + timedelta(days=30)).isoformat()
    old_enrolled = make("old_enrolled", "ENROLLED", "2024-06-01T00:00:00+00:00")
    old_completed = make("old_completed", "COMPLETED", "2024-01-01T00:00:00+00:00")
    recent = make("recent", "IN_PROGRESS", "2025-03-01T00:00:00+00:00")
    certified = make(
        "certified", "CERTIFIED", "2024-01-01T00:00:00+00:00", certificate_url="https://x.test/c"
    )
    dropped = make("dropped", "DROPPED", "2024-01-01T00:00:00+00:00")
    lapsed = make("lapsed", "IN_PROGRESS", "2025-06-01T00:00:00+00:00", {"expiresAt": "2025-07-31"})
    valid = make("valid", "ENROLLED", "2025-06-01T00:00:00+00:00", {"expiresAt": future})
    elsewhere = make("elsewhere", "ENROLLED", "2024-01-01T00:00:00+00:00", target=other_course)
    before = snapshot()

    out, _ = run(
        "expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk), "--dry-run"
    )
    assert snapshot() == before
    listed = re.findall(r"^would expire enrollment (\d+) ", out, re.MULTILINE)
    assert listed == [str(e.pk) for e in (old_enrolled, old_completed, lapsed)]
    assert "expiresAt 2025-08-01T00:00:00.000Z has passed" in out  # the end of that day

    out, _ = run("expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk))
    assert summary(out)["changed"] == 3
    expired = set(Enrollment.objects.filter(status="EXPIRED").values_list("pk", flat=True))
    assert expired == {old_enrolled.pk, old_completed.pk, lapsed.pk}
    for untouched in (recent, certified, dropped, valid, elsewhere):
        assert Enrollment.objects.get(pk=untouched.pk).status == untouched.status

    after = snapshot()
    out, _ = run("expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk))
    assert snapshot() == after
    assert summary(out)["changed"] == 0


def test_expire_without_before_applies_only_the_metadata_rule(make_user, course):
    old = Enrollment.objects.create(
        user=make_user("old"), course=course, enrolled_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    run("expire_enrollments")
    assert Enrollment.objects.get(pk=old.pk).status == EnrollmentStatus.ENROLLED


def test_expire_reports_an_unreadable_expiry_and_expires_the_rest(make_user, course):
    bad = Enrollment.objects.create(
        user=make_user("bad"), course=course, metadata={"expiresAt": "next tuesday"}
    )
    lapsed = Enrollment.objects.create(
        user=make_user("lapsed"), course=course, metadata={"expiresAt": "2025-01-01T12:00:00Z"}
    )
    out, err = run("expire_enrollments", expect_failure=True)
    assert f"enrollment {bad.pk}: metadata expiresAt 'next tuesday' is not an ISO 8601" in err
    assert summary(out) == {"read": 2, "changed": 1, "skipped": 0, "failed": 1}
    assert Enrollment.objects.get(pk=lapsed.pk).status == EnrollmentStatus.EXPIRED
    run("expire_enrollments", "--before", "yesterday", expect_failure=True)


def test_expire_invalidates_cached_reads(client_for, learner, course, enrolled):
    assert read_progress(client_for, learner, course)["enrollments"]["enrollmentStatus"] == (
        "ENROLLED"
    )
    services.update_enrollment(enrolled.pk, metadata={"expiresAt": "2025-01-01"})
    read_progress(client_for, learner, course)  # cached again, with the metadata
    run("expire_enrollments")
    results = read_progress(client_for, learner, course)
    assert results["enrollments"]["enrollmentStatus"] == "EXPIRED"
