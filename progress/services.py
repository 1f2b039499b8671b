"""Every write to enrollments and progress rows: the API, the admin and the commands call these.

Lock order, in every path: the learner's enrollment row first (select_for_update), then their
progress rows. Holding the enrollment lock serialises a learner's concurrent writes in a course,
so simultaneous first updates make one row and simultaneous completions of the last items
cannot both miss each other.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, FilteredRelation, Q
from django.utils import timezone

from courseprogress.exceptions import Conflict
from courseprogress.models import CourseContent
from progress import cache
from progress.models import (
    ACTIVE_ENROLLMENT_STATUSES,
    ALLOWED_MOVES,
    PROGRESS_RANK,
    ContentProgress,
    Enrollment,
    EnrollmentStatus,
    ProgressStatus,
)

HUNDRED = Decimal("100.00")


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
    """Save the given fields and bump the cache version; updated_at moves only with the status."""
    enrollment.cache_version = F("cache_version") + 1
    update_fields = [*fields, "cache_version"]
    if status_changed:
        update_fields.append("updated_at")  # auto_now sets it
        enrollment.save(update_fields=update_fields)
    else:
        Enrollment.objects.filter(pk=enrollment.pk).update(
            **{name: getattr(enrollment, name) for name in update_fields}
        )
    enrollment.refresh_from_db(fields=["cache_version", "updated_at"])
    cache.invalidate_on_commit(user_id=enrollment.user_id, course_id=enrollment.course_id)


# --- progress ------------------------------------------------------------------------------


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
    """
    if status == ProgressStatus.LOCKED and not exact:
        raise PermissionDenied("Only system users and admins may lock content.")
    if not CourseContent.objects.filter(pk=content_id, course_id=course_id).exists():
        raise ValidationError({"courseContentId": ["This content is not part of the course."]})
    if status == ProgressStatus.COMPLETED and percent is None:
        percent = HUNDRED

    with transaction.atomic():
        enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment is None or enrollment.status not in ACTIVE_ENROLLMENT_STATUSES:
            raise Conflict("The learner has no active enrollment in this course.")
        row = (
            ContentProgress.objects.select_for_update()
            .filter(user_id=user_id, course_id=course_id, content_id=content_id)
            .first()
        )
        if row is None:
            row = ContentProgress(
                user_id=user_id,
                course_id=course_id,
                content_id=content_id,
                status=status,
                percent=percent if percent is not None else Decimal("0.00"),
                duration=duration if duration is not None else 0,
                metadata=metadata if metadata is not None else {},
            )
        elif exact:
            row.status = status
            if percent is not None:
                row.percent = percent
            if duration is not None:
                row.duration = duration
            if metadata is not None:
                row.metadata = metadata
        else:
            if row.status == ProgressStatus.LOCKED:
                raise Conflict("This content is locked for the learner.")
            if PROGRESS_RANK[status] > PROGRESS_RANK[row.status]:
                row.status = status
            if percent is not None and percent > row.percent:
                row.percent = percent
            if duration is not None and duration > row.duration:
                row.duration = duration
            if metadata:
                row.metadata = {**(row.metadata or {}), **metadata}
        row.save()  # the post_save receiver syncs the enrollment, inside this transaction
    return row


# --- enrollment status ---------------------------------------------------------------------


def progress_stats(*, user_id: int, course_id: int) -> ProgressStats:
    """Content items in the course, and how many of them this learner completed or touched."""
    mine = FilteredRelation(
        "progress_rows",
        condition=Q(progress_rows__user_id=user_id, progress_rows__course_id=course_id),
    )
    active = [ProgressStatus.IN_PROGRESS, ProgressStatus.COMPLETED]
    stats = (
        CourseContent.objects.filter(course_id=course_id)
        .annotate(mine=mine)
        .aggregate(
            contents=Count("id"),
            completed=Count("mine", filter=Q(mine__status=ProgressStatus.COMPLETED)),
            active=Count("mine", filter=Q(mine__status__in=active)),
        )
    )
    return ProgressStats(**stats)


def automatic_status(enrollment: Enrollment, stats: ProgressStats) -> str:
    """Where the automatic moves take an enrollment; they never go backwards."""
    if enrollment.status not in (EnrollmentStatus.ENROLLED, EnrollmentStatus.IN_PROGRESS):
        return enrollment.status
    if stats.contents and stats.completed >= stats.contents:
        return EnrollmentStatus.COMPLETED
    if stats.active and enrollment.status == EnrollmentStatus.ENROLLED:
        return EnrollmentStatus.IN_PROGRESS
    return enrollment.status


def sync_enrollment_status(*, user_id: int, course_id: int) -> Enrollment | None:
    """Apply the automatic moves after a learner's progress rows changed (by any write path)."""
    with transaction.atomic():
        enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment is None:
            return None
        new_status = automatic_status(
            enrollment, progress_stats(user_id=user_id, course_id=course_id)
        )
        changed = new_status != enrollment.status
        fields = []
        if changed:
            enrollment.status = new_status
            fields.append("status")
            if new_status == EnrollmentStatus.COMPLETED and enrollment.completed_at is None:
                enrollment.completed_at = timezone.now()
                fields.append("completed_at")
        _save_enrollment(enrollment, status_changed=changed, fields=fields)
        return enrollment


# --- enrollments ---------------------------------------------------------------------------


def enrol(*, user_id: int, course_id: int) -> tuple[Enrollment, bool]:
    """Enrol a learner; (enrollment, created). A DROPPED or EXPIRED enrollment is re-enrolled."""
    with transaction.atomic():
        enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment is None:
            try:
                with transaction.atomic():
                    enrollment = Enrollment.objects.create(user_id=user_id, course_id=course_id)
                cache.invalidate_on_commit(user_id=user_id, course_id=course_id)
                return enrollment, True
            except IntegrityError:  # a concurrent request enrolled first
                enrollment = _lock_enrollment(user_id=user_id, course_id=course_id)
        if enrollment.status in (EnrollmentStatus.DROPPED, EnrollmentStatus.EXPIRED):
            _apply_move(enrollment, EnrollmentStatus.ENROLLED)
        return enrollment, False


def _check_move(enrollment: Enrollment, to_status: str) -> None:
    if to_status not in ALLOWED_MOVES[enrollment.status]:
        raise Conflict(f"An enrollment cannot move from {enrollment.status} to {to_status}.")


def _apply_move(enrollment: Enrollment, to_status: str, fields: tuple[str, ...] = ()) -> None:
    now = timezone.now()
    enrollment.status = to_status
    changed = ["status", *fields]
    if to_status == EnrollmentStatus.COMPLETED and enrollment.completed_at is None:
        enrollment.completed_at = now
        changed.append("completed_at")
    elif to_status == EnrollmentStatus.ENROLLED:  # re-enrolment starts a new attempt
        enrollment.enrolled_at = now
        enrollment.completed_at = None
        changed += ["enrolled_at", "completed_at"]
    _save_enrollment(enrollment, status_changed=True, fields=changed)


def move_enrollment(enrollment_id: int, to_status: str, *, certificate_url=UNSET) -> Enrollment:
    """A move asked for by a person or a command (admin actions, expire_enrollments)."""
    return update_enrollment(enrollment_id, status=to_status, certificate_url=certificate_url)


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


# --- bulk paths: set-based status sync, cache bumps, no-op detection (issue 6) --------------
# bulk_create, COPY and QuerySet.update() send no signals, so sync_enrollment_status never sees
# their rows. The functions below apply the same rule as automatic_status / progress_stats to
# many enrollments in a few statements (tests/test_commands.py checks that they agree), and
# bump cache_version for whatever a bulk write touched, so cached reads see it (progress/cache.py).
# Imported here rather than at the top so that this section stays a self-contained addition.
from collections import defaultdict  # noqa: E402
from collections.abc import Iterable  # noqa: E402

from django.db.models import (  # noqa: E402
    Case,
    CharField,
    DateTimeField,
    Exists,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest  # noqa: E402

AUTOMATIC_FROM = (EnrollmentStatus.ENROLLED, EnrollmentStatus.IN_PROGRESS)
_HAS_COMPLETION = (EnrollmentStatus.COMPLETED, EnrollmentStatus.CERTIFIED)


def _own_rows() -> QuerySet:
    """The enrollment's learner's rows on content of its course (what progress_stats counts)."""
    return ContentProgress.objects.filter(
        user_id=OuterRef("user_id"),
        course_id=OuterRef("course_id"),
        content__course_id=OuterRef("course_id"),
    ).order_by()


def completion_date_expression():
    """When a learner finished: the last update of their COMPLETED rows, else the enrollment's
    last status move, never before the enrollment date. Used where no live write saw the moment
    (the service itself stamps the time of the write that completed the course)."""
    last_completed = Subquery(
        _own_rows()
        .filter(status=ProgressStatus.COMPLETED)
        .values("user_id")
        .annotate(last=Max("updated_at"))
        .values("last")
    )
    return Greatest(
        Coalesce(last_completed, F("updated_at")), F("enrolled_at"), output_field=DateTimeField()
    )


def enrollment_status_targets(enrollments: QuerySet | None = None) -> QuerySet:
    """The enrollments the automatic moves could touch, annotated with `target_status` (what
    automatic_status would give) and `completion_date` (the stored one, else
    completion_date_expression()).

    Only ENROLLED and IN_PROGRESS move, and only forward; COMPLETED and CERTIFIED enrollments
    are candidates only while they lack a completion date.
    """
    qs = Enrollment.objects.all() if enrollments is None else enrollments
    rows = _own_rows()
    contents = Subquery(
        CourseContent.objects.filter(course_id=OuterRef("course_id"))
        .order_by()
        .values("course_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    completed = Subquery(
        rows.filter(status=ProgressStatus.COMPLETED)
        .values("user_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    activity = [ProgressStatus.IN_PROGRESS, ProgressStatus.COMPLETED]
    candidates = Q(status__in=AUTOMATIC_FROM) | Q(
        status__in=_HAS_COMPLETION, completed_at__isnull=True
    )
    return (
        qs.filter(candidates)
        .alias(
            n_contents=Coalesce(contents, 0),
            n_completed=Coalesce(completed, 0),
            has_activity=Exists(rows.filter(status__in=activity)),
        )
        .annotate(
            target_status=Case(
                When(
                    status__in=AUTOMATIC_FROM,
                    n_contents__gt=0,
                    n_completed__gte=F("n_contents"),
                    then=Value(EnrollmentStatus.COMPLETED),
                ),
                When(
                    status=EnrollmentStatus.ENROLLED,
                    has_activity=True,
                    then=Value(EnrollmentStatus.IN_PROGRESS),
                ),
                default=F("status"),
                output_field=CharField(),
            ),
            completion_date=Coalesce(F("completed_at"), completion_date_expression()),
        )
    )


DRIFT_VALUES = (
    "id",
    "user_id",
    "course_id",
    "status",
    "completed_at",
    "target_status",
    "target_completed_at",
)


def enrollment_status_drift(enrollments: QuerySet | None = None) -> list[dict]:
    """The enrollments whose status (or missing completion date) disagrees with their rows,
    in pk order, as DRIFT_VALUES dicts. Evaluated in one query; pass a bounded queryset."""
    drift = []
    with transaction.atomic():
        _without_jit()
        rows = list(
            enrollment_status_targets(enrollments)
            .order_by("pk")
            .values(*DRIFT_VALUES[:-1], "completion_date")
        )
    for row in rows:
        target = row["target_status"]
        dated = target in _HAS_COMPLETION
        if target != row["status"] or (dated and row["completed_at"] is None):
            completion_date = row.pop("completion_date")
            row["target_completed_at"] = completion_date if dated else row["completed_at"]
            drift.append(row)
    return drift


def _without_jit() -> None:
    """PostgreSQL costs the correlated subqueries high and JIT-compiles the query, which takes
    longer than running it (0.8 s against 0.2 s for 1,000 enrollments): off, for this
    transaction only."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def apply_enrollment_status_drift(enrollment_ids: Iterable[int]) -> list[dict]:
    """Lock these enrollments, recompute their drift under the lock, fix it in a few UPDATEs.

    Returns what changed (DRIFT_VALUES dicts). A moved status moves enrollment_updated_at; every
    changed enrollment's cache_version is bumped, and its cached reads dropped after commit.
    """
    ids = list(enrollment_ids)
    if not ids:
        return []
    with transaction.atomic():
        locked = list(
            Enrollment.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        changes = enrollment_status_drift(Enrollment.objects.filter(pk__in=locked))
        groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
        for change in changes:
            moving = change["target_status"] != change["status"]
            groups[(change["target_status"], moving)].append(change["id"])
        now = timezone.now()
        for (target, moving), group in groups.items():
            values = {"status": target, "cache_version": F("cache_version") + 1}
            if target in _HAS_COMPLETION:
                values["completed_at"] = Coalesce(F("completed_at"), completion_date_expression())
            if moving:
                values["updated_at"] = now
            Enrollment.objects.filter(pk__in=group).update(**values)
        invalidate_many_on_commit((c["user_id"], c["course_id"]) for c in changes)
    return changes


def touch_enrollments(*, course_id: int, user_ids: Iterable[int]) -> int:
    """After a bulk write to these learners' rows in a course: bump their cache versions."""
    user_ids = list(user_ids)
    touched = Enrollment.objects.filter(course_id=course_id, user_id__in=user_ids).update(
        cache_version=F("cache_version") + 1
    )
    invalidate_many_on_commit((user_id, course_id) for user_id in user_ids)
    return touched


def invalidate_many_on_commit(pairs: Iterable[tuple[int, int]]) -> None:
    """cache.invalidate_on_commit for many (user_id, course_id) pairs in one round trip."""
    from django.core.cache import cache as django_cache

    keys = set()
    for user_id, course_id in pairs:
        keys.add(cache.learner_key(course_id, user_id))
        keys.add(cache.analytics_key(course_id))
    if keys:
        transaction.on_commit(lambda: django_cache.delete_many(sorted(keys)))


def progress_update_changes(
    stored: ContentProgress | None,
    *,
    status: str,
    percent: Decimal | None = None,
    duration: int | None = None,
    metadata: dict | None = None,
    exact: bool = False,
) -> bool:
    """Whether record_progress with these arguments would change `stored` (or create a row).

    Lets a re-run import skip rows that are already as asked, so it changes nothing. Refusals
    are not predicted: an update record_progress would refuse (LOCKED without `exact`, a locked
    row under the learner merge) counts as a change, so the caller gets the service's error.
    """
    if stored is None or (status == ProgressStatus.LOCKED and not exact):
        return True
    if status == ProgressStatus.COMPLETED and percent is None:
        percent = HUNDRED
    if exact:
        return (
            stored.status != status
            or (percent is not None and percent != stored.percent)
            or (duration is not None and duration != stored.duration)
            or (metadata is not None and metadata != stored.metadata)
        )
    if stored.status == ProgressStatus.LOCKED:
        return True
    return (
        PROGRESS_RANK[status] > PROGRESS_RANK[stored.status]
        or (percent is not None and percent > stored.percent)
        or (duration is not None and duration > stored.duration)
        or (bool(metadata) and {**(stored.metadata or {}), **metadata} != stored.metadata)
    )
