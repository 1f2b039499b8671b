"""Thin receivers. Any ContentProgress save or delete, from any path (API, admin, shell), syncs
the learner's enrollment through the same service function; course content changes move the
course's cache stamp. Bulk paths send no signals: they call the services themselves, or the
backfill_enrollment_status command repairs afterwards.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db.models.signals import post_delete, post_save
from django.utils import timezone

_sync_deferred = ContextVar("enrollment_sync_deferred", default=False)


@contextmanager
def enrollment_sync_deferred():
    """Within this block (this thread only), progress saves do not sync their enrollment.

    For bulk writers that then sync the enrollments they touched themselves, set-based
    (progress.bulk.apply_enrollment_status_drift) before they commit.
    """
    token = _sync_deferred.set(True)
    try:
        yield
    finally:
        _sync_deferred.reset(token)


def enrollment_sync_is_deferred() -> bool:
    """Whether this thread is inside enrollment_sync_deferred()."""
    return _sync_deferred.get()


def progress_changed(sender, instance, raw=False, **kwargs):
    if raw or _sync_deferred.get():  # loaddata fixtures are taken as they are
        return
    from progress.services import sync_enrollment_status

    sync_enrollment_status(user_id=instance.user_id, course_id=instance.course_id)


def course_changed(sender, instance, raw=False, **kwargs):
    """Content added, removed or reordered, or an enrollment deleted: course reads change."""
    if raw:
        return
    from courseprogress.models import Course

    Course.objects.filter(pk=instance.course_id).update(updated_at=timezone.now())


def connect():
    from courseprogress.models import CourseContent
    from progress.models import ContentProgress, Enrollment

    post_save.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-saved")
    post_delete.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-deleted")
    post_save.connect(course_changed, sender=CourseContent, dispatch_uid="content-saved")
    post_delete.connect(course_changed, sender=CourseContent, dispatch_uid="content-deleted")
    post_delete.connect(course_changed, sender=Enrollment, dispatch_uid="enrollment-deleted")
