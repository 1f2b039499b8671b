"""Thin receivers. Any ContentProgress save or delete, from any path (API, admin, shell), syncs
the learner's enrollment through the same service function. Bulk paths send no signals: they
call the services themselves, or the backfill_enrollment_status command repairs afterwards.
(Cache stamps need no receiver: the database's triggers move them for every writer.)
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db.models.signals import post_delete, post_save

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


def connect():
    from progress.models import ContentProgress

    post_save.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-saved")
    post_delete.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-deleted")
