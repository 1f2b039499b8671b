"""Every write to enrollments and progress rows: the API, the admin and the commands call these.

Lock order, in every path: the learner's enrollment row first (select_for_update), then their
progress rows. Holding the enrollment lock serialises a learner's concurrent writes in a course,
so simultaneous first updates make one row and simultaneous completions of the last items
cannot both miss each other.
"""

import json
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from psycopg.types.json import Jsonb

from courseprogress.exceptions import Conflict
from courseprogress.models import Course, CourseContent
from progress import rules, total_sql, upsert_sql
from progress.models import (
    CERTIFICATE_URL_ERROR,
    METADATA_ERRORS,
    ContentProgress,
    Enrollment,
    EnrollmentStatus,
    ProgressStatus,
    certificate_url_ok,
    metadata_problem,
    same_metadata,
)

HUNDRED = Decimal("100.00")
NO_ACTIVE_ENROLLMENT = "The learner has no active enrollment in this course."
NOT_IN_COURSE = "This content is not part of the course."
CONTENT_LOCKED = "This content is locked for the learner."


class _Unset:
    def __repr__(self):
        return "UNSET"


UNSET = _Unset()


@dataclass(frozen=True)
class ProgressStats:
    contents: int
    completed: int
    active: int


def _lock_enrollment(*, user_id: int, course_id: int) -> Enrollment | None:
    return (
        Enrollment.objects.select_for_update().filter(user_id=user_id, course_id=course_id).first()
    )


def _save_enrollment(enrollment: Enrollment, *, status_changed: bool, fields: list[str]) -> None:
    """Save the given fields; updated_at moves only with the status.

    The database moves the cache stamps (progress/read_cache.py): the next cached read sees
    the write."""
    if status_changed:
        enrollment.save(update_fields=[*fields, "updated_at"])  # auto_now sets updated_at
    elif fields:
        Enrollment.objects.filter(pk=enrollment.pk).update(
            **{name: getattr(enrollment, name) for name in fields}
        )


# --- progress ------------------------------------------------------------------------------


# On PostgreSQL, record_progress writes through cp_record_progress; the property test of the
# two paths (tests/test_record_progress_paths.py) turns this off to run the Python path there.
RECORD_PROGRESS_IN_SQL = True


def record_progress(
    *,
    user_id: int,
    course_id: int,
    content_id: int,
    status: str,
    percent: Decimal | None = None,
    duration: int | None = None,
    metadata: dict | None = None,
    exact: bool = False,
) -> ContentProgress:
    """Upsert one learner's progress on one content item (contract 3.3).

    A learner's update merges with what is stored, so retries and late requests never lose
    progress. `exact` is for system users and admins: the fields sent are stored as sent, and
    only they may set or clear LOCKED.

    On PostgreSQL the write, its checks and the enrollment's automatic moves are one call of
    the database function that progress/upsert_sql.py builds from the same rules (one round
    trip instead of five); SQLite, and a bulk writer that defers the sync, take the Python path
    below. tests/test_record_progress_paths.py holds the two to the same results.
    """
    if status == ProgressStatus.LOCKED and not exact:
        raise PermissionDenied("Only system users and admins may lock content.")
    update: dict[str, Any] = {
        "user_id": user_id,
        "course_id": course_id,
        "content_id": content_id,
        "status": status,
        "percent": percent,
        "duration": duration,
        "metadata": metadata,
        "exact": exact,
    }
    if RECORD_PROGRESS_IN_SQL and connection.vendor == "postgresql" and not _sync_deferred.get():
        row = record_progress_in_sql(**update)
        if row is not None:
            return row
    return record_progress_in_python(**update)


def record_progress_in_python(
    *,
    user_id: int,
    course_id: int,
    content_id: int,
    status: str,
    percent: Decimal | None,
    duration: int | None,
    metadata: dict | None,
    exact: bool,
) -> ContentProgress:
    """record_progress, statement by statement: the rule as Python (merged_progress_fields)."""
    content_in_course = CourseContent.objects.filter(pk=content_id, course_id=course_id)
    with transaction.atomic():
        # The lock and the content check in one statement (a write is a handful of round trips).
        enrollment = (
            Enrollment.objects.select_for_update()
            .filter(user_id=user_id, course_id=course_id)
            .annotate(content_in_course=Exists(content_in_course))
            .first()
        )
        content_ok = enrollment.content_in_course if enrollment else content_in_course.exists()
        if not content_ok:
            raise ValidationError({"courseContentId": [NOT_IN_COURSE]})
        if enrollment is None or enrollment.status not in rules.ACTIVE:
            raise Conflict(NO_ACTIVE_ENROLLMENT)
        row = (
            ContentProgress.objects.select_for_update()
            .filter(user_id=user_id, course_id=course_id, content_id=content_id)
            .first()
        ) or ContentProgress(user_id=user_id, course_id=course_id, content_id=content_id)
        changes = merged_progress_fields(
            row,
            status=status,
            percent=percent,
            duration=duration,
            metadata=metadata,
            exact=exact,
        )
        if changes or row.pk is None:  # a retry that changes nothing writes nothing
            for name, value in changes.items():
                setattr(row, name, value)
            # The receiver would lock the enrollment again: sync it here, where it is locked,
            # unless a bulk writer defers the sync to the end of its batch.
            deferred = _sync_deferred.get()
            with enrollment_sync_deferred():
                row.save()
            if not deferred:
                _sync_locked(enrollment)
    return row


def _json(text: str | None):
    return None if text is None else json.loads(text)


_SQL_ERRORS = {
    upsert_sql.NOT_IN_COURSE: lambda: ValidationError({"courseContentId": [NOT_IN_COURSE]}),
    upsert_sql.INACTIVE: lambda: Conflict(NO_ACTIVE_ENROLLMENT),
    upsert_sql.LOCKED: lambda: Conflict(CONTENT_LOCKED),
}


def record_progress_in_sql(
    *,
    user_id: int,
    course_id: int,
    content_id: int,
    status: str,
    percent: Decimal | None,
    duration: int | None,
    metadata: dict | None,
    exact: bool,
) -> ContentProgress | None:
    """record_progress as one call of the PostgreSQL function cp_record_progress
    (progress/upsert_sql.py), which syncs the enrollment too. None: a learner's metadata merge
    that only the Python path can size exactly (nothing was written; it decides).

    Outside a transaction (the API) the call is a transaction of its own: one statement, no
    BEGIN/COMMIT. Inside one it runs in a savepoint, as the Python path does, so that a
    database error leaves the caller's transaction usable."""
    now = timezone.now()
    params: list[Any] = [user_id, course_id, content_id, status, percent, duration]
    params += [Jsonb(metadata) if metadata is not None else None, exact, now]
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(upsert_sql.CALL, params)
        results = cursor.fetchall()
    outcome, row_id, row_status, row_percent, row_duration, row_metadata, *rest = results[0]
    created_at, updated_at, _ = rest  # the third: whether the row was written
    if outcome == upsert_sql.CHECK_METADATA:
        return None
    if outcome in _SQL_ERRORS:
        raise _SQL_ERRORS[outcome]()
    # The row as stored (Django's psycopg connection leaves jsonb as text, for JSONField to
    # parse): the response shows metadata as every later read will.
    row = ContentProgress(
        id=row_id,
        user_id=user_id,
        course_id=course_id,
        content_id=content_id,
        status=row_status,
        percent=row_percent,
        duration=row_duration,
        metadata=_json(row_metadata),
        created_at=created_at,
        updated_at=updated_at,
    )
    row._state.adding = False
    row._state.db = connection.alias
    return row


def merged_progress_fields(
    row: ContentProgress,
    *,
    status: str,
    percent: Decimal | None = None,
    duration: int | None = None,
    metadata: dict | None = None,
    exact: bool = False,
) -> dict:
    """The fields an update changes on `row` (stored, or new and unsaved): contract 3.3.

    COMPLETED with no percent means 100.00. A learner's update merges: status keeps the further
    of old and new, percent and duration the larger, metadata keys sent overwrite stored keys;
    a learner's update of LOCKED content is a Conflict. With `exact` (system users, admins) the
    fields sent are taken as sent and omitted ones keep their stored values.
    """
    if status == ProgressStatus.COMPLETED and percent is None:
        percent = HUNDRED
    if exact or row.pk is None:
        wanted = {"status": status, "percent": percent, "duration": duration, "metadata": metadata}
    else:
        if row.status == ProgressStatus.LOCKED:
            raise Conflict(CONTENT_LOCKED)
        wanted = {
            "status": max(status, row.status, key=rules.PROGRESS_RANK.__getitem__),
            "percent": max(percent, row.percent) if percent is not None else None,
            "duration": max(duration, row.duration) if duration is not None else None,
            "metadata": {**(row.metadata or {}), **metadata} if metadata else None,
        }
    if not exact and row.pk is not None and wanted["metadata"] is not None:
        # The rule is on what is stored: a merge of keys that each passed can still outgrow it.
        problem = metadata_problem(wanted["metadata"])
        if problem:
            code = "too_large_merged" if problem == "too_large" else problem
            raise ValidationError({"metadata": [METADATA_ERRORS[code]]}, code=code)
    return {
        name: value
        for name, value in wanted.items()
        if value is not None
        and not (
            same_metadata(value, row.metadata)
            if name == "metadata"
            else value == getattr(row, name)
        )
    }


def would_change_progress(stored: ContentProgress | None, **update) -> bool:
    """Whether record_progress(**update) would write anything to `stored` (None: a new row).

    Lets an import skip rows already as asked, so a second run changes nothing, and an export
    imports back unchanged: a row that already holds exactly the values sent (a LOCKED row, a
    learner's row in a DROPPED enrollment) is no change, whoever may write it. Any other update
    the service would refuse counts as a change, so that the caller gets the service's error.
    """
    if stored is None:
        return True
    if not merged_progress_fields(stored, **{**update, "exact": True}):
        return False  # already exactly as asked
    if update.get("status") == ProgressStatus.LOCKED and not update.get("exact"):
        return True
    try:
        return bool(merged_progress_fields(stored, **update))
    except (Conflict, ValidationError):
        return True


# --- enrollment status ---------------------------------------------------------------------


def progress_stats(*, user_id: int, course_id: int) -> ProgressStats:
    """Content items in the course, and how many of them this learner completed or touched.

    Counted from the learner's rows (the (userid, courseid) index), as cp_record_progress counts
    them: a plan that starts from the course's items scans the whole course's rows once per item
    when the statistics have not seen the course yet."""
    mine = ContentProgress.objects.filter(
        user_id=user_id, course_id=course_id, content__course_id=course_id
    )

    def count(rows) -> Coalesce:
        per_learner = rows.order_by().values("user_id").annotate(n=Count("id")).values("n")
        return Coalesce(Subquery(per_learner), 0)

    contents = CourseContent.objects.filter(course_id=course_id).order_by().values("course_id")
    stats = (
        Course.objects.filter(pk=course_id)
        .values_list(
            Coalesce(Subquery(contents.annotate(n=Count("id")).values("n")), 0),
            count(mine.filter(status=ProgressStatus.COMPLETED)),
            count(mine.filter(status__in=rules.ACTIVITY)),
        )
        .first()
    )
    contents_n, completed, active = stats or (0, 0, 0)
    return ProgressStats(contents=contents_n, completed=completed, active=active)


def automatic_status(enrollment: Enrollment, stats: ProgressStats) -> str:
    """Where the automatic moves take this enrollment (rules.automatic_target)."""
    return rules.automatic_target(
        enrollment.status, contents=stats.contents, completed=stats.completed, active=stats.active
    )


# A bulk writer (the import) defers the sync of each row's enrollment to the end of its batch,
# where it syncs them all set-based (progress.status_sync.apply_enrollment_status_drift).
_sync_deferred = ContextVar("enrollment_sync_deferred", default=False)


@contextmanager
def enrollment_sync_deferred():
    """Within this block (this thread only), progress row writes do not sync their enrollment:
    the caller syncs the enrollments it touched before it commits."""
    token = _sync_deferred.set(True)
    try:
        yield
    finally:
        _sync_deferred.reset(token)


def progress_row_changed(*, user_id: int, course_id: int) -> None:
    """A progress row was saved or deleted outside record_progress (the admin, a shell): apply
    the automatic moves, unless the writer deferred them."""
    if not _sync_deferred.get():
        sync_enrollment_status(user_id=user_id, course_id=course_id)


def sync_enrollment_status(*, user_id: int, course_id: int) -> Enrollment | None:
    """Apply the automatic moves after a learner's progress rows changed (by any write path)."""
    with transaction.atomic():
        enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment is not None:
            _sync_locked(enrollment)
        return enrollment


def _sync_locked(enrollment: Enrollment) -> None:
    """sync_enrollment_status for an enrollment this transaction has already locked."""
    new_status = automatic_status(
        enrollment, progress_stats(user_id=enrollment.user_id, course_id=enrollment.course_id)
    )
    changed = new_status != enrollment.status
    if changed:
        _enter_status(enrollment, new_status, timezone.now())
    fields = ["status", "completed_at"] if changed else []
    _save_enrollment(enrollment, status_changed=changed, fields=fields)


def _enter_status(enrollment: Enrollment, status: str, now) -> list[str]:
    """Set the status and what entering it changes (rules.entering), in memory; the fields."""
    changes = rules.entering(status, completed_at=enrollment.completed_at, now=now)
    enrollment.status = status
    for name, value in changes.items():
        setattr(enrollment, name, value)
    return ["status", *changes]


# --- enrollments ---------------------------------------------------------------------------


def enrol(*, user_id: int, course_id: int) -> tuple[Enrollment, bool]:
    """Enrol a learner; (enrollment, created). A DROPPED or EXPIRED enrollment is re-enrolled."""
    enrollment, outcome = enrol_with_outcome(user_id=user_id, course_id=course_id)
    return enrollment, outcome == "created"


def enrol_with_outcome(*, user_id: int, course_id: int) -> tuple[Enrollment, str]:
    """As enrol(), saying what happened: "created", "reenrolled" (it was DROPPED or EXPIRED)
    or "existing" (already active: nothing changed)."""
    with transaction.atomic():
        enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment is None:
            try:
                with transaction.atomic():
                    enrollment = Enrollment.objects.create(user_id=user_id, course_id=course_id)
                return enrollment, "created"
            except IntegrityError:  # a concurrent request enrolled first: its row is there
                enrollment = cast(
                    Enrollment, _lock_enrollment(user_id=user_id, course_id=course_id)
                )
        if enrollment.status in rules.LEFT:
            _apply_move(enrollment, EnrollmentStatus.ENROLLED)
            return enrollment, "reenrolled"
        return enrollment, "existing"


def _check_move(enrollment: Enrollment, to_status: str) -> None:
    if not rules.may_move(enrollment.status, to_status):
        raise Conflict(f"An enrollment cannot move from {enrollment.status} to {to_status}.")


def _apply_move(enrollment: Enrollment, to_status: str, fields: tuple[str, ...] = ()) -> None:
    now = timezone.now()
    changed = [*_enter_status(enrollment, to_status, now), "completed_at", *fields]
    if to_status == EnrollmentStatus.ENROLLED:
        # Re-enrolment starts a new attempt, and the automatic moves apply at once to the
        # progress the learner already has (as backfill_enrollment_status would apply them).
        target = automatic_status(
            enrollment,
            progress_stats(user_id=enrollment.user_id, course_id=enrollment.course_id),
        )
        if target != enrollment.status:
            changed += _enter_status(enrollment, target, now)
    _save_enrollment(enrollment, status_changed=True, fields=list(dict.fromkeys(changed)))


def move_enrollment(enrollment_id: int, to_status: str, *, certificate_url=UNSET) -> Enrollment:
    """A move asked for by a person or a command (admin actions, expire_enrollments)."""
    return update_enrollment(enrollment_id, status=to_status, certificate_url=certificate_url)


def move_locked_enrollment(enrollment: Enrollment, to_status: str) -> Enrollment:
    """move_enrollment for an enrollment the caller's transaction has locked already (a batch
    that locks its rows, then decides row by row)."""
    return _update(enrollment, to_status, certificate_url=UNSET, metadata=UNSET)


def update_enrollment(
    enrollment_id: int, *, status=UNSET, certificate_url=UNSET, metadata=UNSET
) -> Enrollment:
    """PATCH semantics: each field sent is applied; a status goes through the allowed moves.

    Sending the current status is not a move: the other fields are applied and nothing else
    changes. A move to CERTIFIED needs a certificate URL, sent now or stored before.
    """
    with transaction.atomic():
        enrollment = Enrollment.objects.select_for_update().get(pk=enrollment_id)
        return _update(enrollment, status, certificate_url=certificate_url, metadata=metadata)


def _update(enrollment: Enrollment, to_status, *, certificate_url, metadata) -> Enrollment:
    if certificate_url not in (UNSET, None, "") and not certificate_url_ok(certificate_url):
        raise ValidationError({"certificateUrl": [CERTIFICATE_URL_ERROR]})  # 400 before 409
    moving = to_status is not UNSET and to_status != enrollment.status
    if moving:
        _check_move(enrollment, to_status)
    fields = []
    if certificate_url is not UNSET:
        enrollment.certificate_url = certificate_url or None
        fields.append("certificate_url")
    if metadata is not UNSET:
        enrollment.metadata = metadata
        fields.append("metadata")
    final_status = to_status if moving else enrollment.status
    if final_status == EnrollmentStatus.CERTIFIED and not enrollment.certificate_url:
        raise ValidationError(
            {"certificateUrl": ["A certificate URL is required to certify an enrollment."]}
        )
    if moving:
        _apply_move(enrollment, to_status, tuple(fields))
    elif fields:
        _save_enrollment(enrollment, status_changed=False, fields=fields)
    return enrollment


def recount_progress_totals(*, course_ids: list[int] | None = None, dry_run=False) -> list[int]:
    """The enrollments (of these courses) whose kept progress total differs from their rows,
    counted again (unless `dry_run`); their ids. The triggers keep every total in every write
    but one race (progress/total_sql.py): an enrollment inserted or moved while another
    transaction writes that learner's rows in the course. This is its repair: each drifted
    enrollment is updated under total_sql.RECOUNT_SETTING, and its own trigger counts the total
    from the rows once the row is locked (on SQLite every update recounts)."""
    with connection.cursor() as cursor:
        cursor.execute(*total_sql.drifted_sql(course_ids))
        ids = [row[0] for row in cursor.fetchall()]
    if ids and not dry_run:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config(%s, 'on', true)", [total_sql.RECOUNT_SETTING])
            Enrollment.objects.filter(pk__in=ids).update(cache_version=F("cache_version"))
    return ids
