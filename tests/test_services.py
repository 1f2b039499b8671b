"""The enrollment rules, called directly, and through every write path."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from courseprogress.exceptions import Conflict
from courseprogress.models import CourseContent
from progress import services
from progress.models import ContentProgress, Enrollment


def test_new_enrollments_start_enrolled(learner, course):
    enrollment, created = services.enrol(user_id=learner.pk, course_id=course.pk)
    assert created
    assert enrollment.status == "ENROLLED"


def test_a_save_from_any_path_syncs_the_enrollment(learner, course, contents, enrolled):
    """An admin or shell save of a progress row promotes the enrollment through the signal."""
    row = ContentProgress.objects.create(user=learner, course=course, content=contents[0])
    assert Enrollment.objects.get(pk=enrolled.pk).status == "ENROLLED"
    row.status = "IN_PROGRESS"
    row.save()
    assert Enrollment.objects.get(pk=enrolled.pk).status == "IN_PROGRESS"
    for content in contents:
        ContentProgress.objects.update_or_create(
            user=learner, course=course, content=content, defaults={"status": "COMPLETED"}
        )
    stored = Enrollment.objects.get(pk=enrolled.pk)
    assert stored.status == "COMPLETED"
    assert stored.completed_at is not None


def test_record_progress_leaves_a_deferred_sync_to_the_bulk_writer(
    learner, course, contents, enrolled
):
    """Inside enrollment_sync_deferred() (the import), each row writes only itself: the
    enrollment is synced once per batch by the writer, not once per row."""
    before = Enrollment.objects.get(pk=enrolled.pk)
    with services.enrollment_sync_deferred():
        for content in contents:
            services.record_progress(
                user_id=learner.pk, course_id=course.pk, content_id=content.pk, status="COMPLETED"
            )
    after = Enrollment.objects.get(pk=enrolled.pk)
    # Only the database's stamp moved (one bump a row); the status sync waits for the writer.
    assert (after.status, after.updated_at) == ("ENROLLED", before.updated_at)
    assert after.cache_version == before.cache_version + len(contents)
    assert ContentProgress.objects.filter(user=learner, course=course).count() == len(contents)
    services.record_progress(  # outside the block, the sync runs again
        user_id=learner.pk,
        course_id=course.pk,
        content_id=contents[0].pk,
        status="COMPLETED",
        percent=Decimal("100.00"),
        duration=5,
    )
    synced = Enrollment.objects.get(pk=enrolled.pk)
    assert synced.status == "COMPLETED"
    assert synced.cache_version > after.cache_version


def test_a_deleted_row_bumps_the_cache_version(learner, course, contents, enrolled):
    row = services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="IN_PROGRESS"
    )
    version = Enrollment.objects.get(pk=enrolled.pk).cache_version
    row.delete()
    assert Enrollment.objects.get(pk=enrolled.pk).cache_version > version


def test_one_item_course_goes_straight_to_completed(learner, other_course):
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=other_course.pk)
    services.record_progress(
        user_id=learner.pk,
        course_id=other_course.pk,
        content_id=other_course.contents.get().pk,
        status="COMPLETED",
    )
    assert Enrollment.objects.get(pk=enrollment.pk).status == "COMPLETED"


def test_course_without_content_never_completes(learner, db):
    from courseprogress.models import Course

    empty = Course.objects.create(title="Empty")
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=empty.pk)
    assert (
        services.sync_enrollment_status(user_id=learner.pk, course_id=empty.pk).status == "ENROLLED"
    )
    assert enrollment.status == "ENROLLED"


def test_record_progress_refuses_locking_for_learners(learner, course, contents, enrolled):
    with pytest.raises(PermissionDenied):
        services.record_progress(
            user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="LOCKED"
        )


def test_record_progress_needs_content_of_the_course(learner, course, other_course, enrolled):
    with pytest.raises(ValidationError):
        services.record_progress(
            user_id=learner.pk,
            course_id=course.pk,
            content_id=other_course.contents.get().pk,
            status="COMPLETED",
        )


def test_record_progress_needs_an_active_enrollment(learner, course, contents):
    with pytest.raises(Conflict):
        services.record_progress(
            user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
        )


def test_completion_keeps_its_date(learner, course, contents, enrolled):
    for content in contents:
        services.record_progress(
            user_id=learner.pk, course_id=course.pk, content_id=content.pk, status="COMPLETED"
        )
    first = Enrollment.objects.get(pk=enrolled.pk).completed_at
    extra = CourseContent.objects.create(course=course, title="Extra", position=10)
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=extra.pk, status="COMPLETED"
    )
    assert Enrollment.objects.get(pk=enrolled.pk).completed_at == first


def test_re_enrolment_starts_a_new_attempt(learner, course, contents, enrolled):
    services.record_progress(
        user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED"
    )
    services.move_enrollment(enrolled.pk, "IN_PROGRESS")
    services.move_enrollment(enrolled.pk, "DROPPED")
    old = Enrollment.objects.get(pk=enrolled.pk)
    enrollment, created = services.enrol(user_id=learner.pk, course_id=course.pk)
    assert not created
    assert enrollment.enrolled_at > old.enrolled_at
    # The automatic moves apply at once to the progress the learner already has.
    assert enrollment.status == "IN_PROGRESS"
    assert Enrollment.objects.get(pk=enrolled.pk).status == "IN_PROGRESS"


def test_re_enrolment_without_progress_is_enrolled(learner, course, enrolled):
    services.move_enrollment(enrolled.pk, "EXPIRED")
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    assert enrollment.status == "ENROLLED"


def test_re_enrolment_of_a_finished_learner_completes_again(learner, course, contents, enrolled):
    for content in contents:
        services.record_progress(
            user_id=learner.pk, course_id=course.pk, content_id=content.pk, status="COMPLETED"
        )
    services.move_enrollment(enrolled.pk, "DROPPED")
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    assert enrollment.status == "COMPLETED"
    assert enrollment.completed_at >= enrollment.enrolled_at


def test_a_retry_that_changes_nothing_writes_nothing(learner, course, contents, enrolled):
    kwargs = {"user_id": learner.pk, "course_id": course.pk, "content_id": contents[0].pk}
    first = services.record_progress(**kwargs, status="IN_PROGRESS", percent=Decimal(40))
    version = Enrollment.objects.get(pk=enrolled.pk).cache_version
    again = services.record_progress(**kwargs, status="NOT_STARTED", percent=Decimal(10))
    stored = ContentProgress.objects.get(pk=first.pk)
    assert stored.updated_at == first.updated_at
    assert (again.status, again.percent) == ("IN_PROGRESS", Decimal("40.00"))
    assert Enrollment.objects.get(pk=enrolled.pk).cache_version == version


def test_move_to_certified_needs_url(learner, course, enrolled):
    Enrollment.objects.filter(pk=enrolled.pk).update(status="COMPLETED")
    with pytest.raises(ValidationError):
        services.move_enrollment(enrolled.pk, "CERTIFIED")
    moved = services.move_enrollment(enrolled.pk, "CERTIFIED", certificate_url="https://x.y/z")
    assert moved.status == "CERTIFIED"


def test_exact_update_may_lower_values(learner, course, contents, enrolled):
    services.record_progress(
        user_id=learner.pk,
        course_id=course.pk,
        content_id=contents[0].pk,
        status="COMPLETED",
        duration=40,
    )
    row = services.record_progress(
        user_id=learner.pk,
        course_id=course.pk,
        content_id=contents[0].pk,
        status="IN_PROGRESS",
        percent=Decimal("12.50"),
        exact=True,
    )
    assert (row.status, row.percent, row.duration) == ("IN_PROGRESS", Decimal("12.50"), 40)
