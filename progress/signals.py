"""Thin receivers, a pure adapter: any ContentProgress save or delete, from any path (admin,
shell), tells the services, which sync the learner's enrollment by the same rule as the API.

Bulk paths send no signals: they call the services themselves, or backfill_enrollment_status
repairs afterwards. Cache stamps need no receiver: the database's triggers move them for every
writer. Nothing imports this module but ProgressConfig.ready() (it imports the services, never
the reverse).
"""

from django.db.models.signals import post_delete, post_save

from progress import services
from progress.models import ContentProgress


def progress_changed(sender, instance, raw=False, **kwargs):
    if raw:  # loaddata fixtures are taken as they are
        return
    services.progress_row_changed(user_id=instance.user_id, course_id=instance.course_id)


def connect():
    post_save.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-saved")
    post_delete.connect(progress_changed, sender=ContentProgress, dispatch_uid="progress-deleted")
