"""import_progress's work: check each record by the API's rules, write it through the service.

A batch is one transaction and each row inside it is a savepoint. A row the rules refuse
(shape, unknown user or course, content not in the course, no active enrollment, a locked
row) is reported and rolled back alone; the batch's other rows are written. Anything else
(the database going away, a bug) rolls the whole batch back, so a batch is never half-written,
and stops the import: rerun it, and the rows already written are skipped as unchanged.

Rows are written with services.record_progress: the learner merge, unless `exact` (the
--overwrite option: the fields given are stored as given, as for system users), and its checks
and locking hold. The enrollment sync that follows every write runs once per batch instead,
set-based, before the batch commits (services.enrollment_sync_deferred): same statuses, same cache
version bumps, half the work. A row that would not change is not written at
all, so a second run changes nothing (not even updated_at).

Timestamps (user_course_content_progress_created_at / _updated_at, optional): they describe the
row in the system it came from, so they are kept when the import creates the row (only
`updated_at` given: the row was also created then). A row that already exists keeps its
created_at, and a change to it is written now, like any other write. Timestamps may not be in
the future, nor updated before created.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from courseprogress.exceptions import Conflict
from courseprogress.models import Course, CourseContent
from progress import rules, services, status_sync
from progress.management.base import Summary, parse_moment
from progress.management.progress_files import CREATED, UPDATED, Record
from progress.models import ContentProgress, Enrollment
from progress.serializers import ProgressUpdateIn

API_FIELDS = tuple(ProgressUpdateIn().fields)  # the POST body's fields
CHANGED, SKIPPED = "changed", "skipped"
ROLLED_BACK = "rolled back with its batch"


class BatchFailed(Exception):
    def __init__(self, first_line: int, last_line: int, cause: Exception):
        super().__init__(
            f"the batch of lines {first_line}-{last_line} failed and was rolled back "
            f"({type(cause).__name__}: {cause})"
        )


@dataclass
class Row:
    record: Record
    index: int  # in its batch
    fields: dict  # ProgressUpdateIn's validated data
    user_id: int | None
    username: str | None
    created_at: datetime | None
    updated_at: datetime | None
    resolved_user_id: int | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.resolved_user_id, self.fields["courseId"], self.fields["courseContentId"])


def _messages(errors: dict) -> str:
    return "; ".join(
        f"{field}: {' '.join(str(message) for message in messages)}"
        for field, messages in errors.items()
    )


def _service_message(exc: Exception) -> str:
    if isinstance(exc, DjangoValidationError) and hasattr(exc, "message_dict"):
        return _messages(exc.message_dict)
    if isinstance(exc, Conflict):
        return exc.message
    if isinstance(exc, PermissionDenied):
        return "progressStatus: LOCKED is set only with --overwrite (as only system users may)."
    return " ".join(str(message) for message in getattr(exc, "messages", [exc]))


def _enrollment_only(data: dict) -> bool:
    """An export's line for an enrollment without progress rows: nothing to import."""
    empty = (None, "")
    return (
        data.get("enrollmentStatus") not in empty
        and data.get("courseContentId") in empty
        and data.get("progressStatus") in empty
    )


def _arguments(fields: dict, exact: bool) -> dict:
    """services.record_progress's arguments for a row's validated fields."""
    return {
        "status": fields["progressStatus"],
        "percent": fields.get("progressPercent"),
        "duration": fields.get("activityDuration"),
        "metadata": fields.get("metadata"),
        "exact": exact,
    }


class Importer:
    def __init__(self, *, exact: bool, dry_run: bool, on_error):
        self.exact = exact
        self.dry_run = dry_run
        self.on_error = on_error  # (record, message, batch=False) -> None
        self.summary = Summary()
        # One serializer validates every row (run_validation is what is_valid() runs): making
        # one per row costs a deep copy of its fields each time, a third of the check.
        self.validator = ProgressUpdateIn()

    # --- checks without the database --------------------------------------------------------

    def _shape(self, record: Record, index: int) -> Row | str:
        """The record as a Row, or why its shape is wrong (no database needed)."""
        data = record.data
        try:
            fields = self.validator.run_validation({k: data[k] for k in API_FIELDS if k in data})
            errors = {}
        except ValidationError as exc:
            fields, errors = None, dict(exc.detail)
        username = data.get("username")
        if username is not None and not isinstance(username, str):
            errors["username"] = ["A string is required."]
            username = None
        if "userId" not in data and not username:
            errors["userId"] = ["userId or username is required."]
        moments = {}
        for name in (CREATED, UPDATED):
            value = data.get(name)
            if value is None or value == "":
                moments[name] = None
                continue
            moment = parse_moment(value) if isinstance(value, str) else None
            if moment is None:
                errors[name] = ["An ISO 8601 date-time is required."]
            elif moment > timezone.now():
                errors[name] = ["May not be in the future."]
            moments[name] = moment
        created, updated = moments[CREATED], moments[UPDATED]
        if created and updated and updated < created and UPDATED not in errors:
            errors[UPDATED] = [f"May not be before {CREATED}."]
        if errors:
            return _messages(errors)
        return Row(record, index, fields, fields.get("userId"), username or None, created, updated)

    # --- a batch ----------------------------------------------------------------------------

    def import_batch(self, records: list[Record]) -> None:
        """Check and write one batch; count and report its records in file order."""
        outcomes: dict[int, str] = {}  # record index -> CHANGED, SKIPPED or what is wrong
        rows = []
        for index, record in enumerate(records):
            if record.error:
                outcomes[index] = record.error
            elif _enrollment_only(record.data):
                outcomes[index] = SKIPPED
            else:
                row = self._shape(record, index)
                if isinstance(row, str):
                    outcomes[index] = row
                else:
                    rows.append(row)
        failure = None
        if rows:
            try:
                with transaction.atomic(), services.enrollment_sync_deferred():
                    outcomes.update(self._write(rows, Lookups(rows)))
                    if self.dry_run:
                        transaction.set_rollback(True)
            except Exception as exc:  # nothing of the batch was written
                failure = exc
                outcomes.update({row.index: ROLLED_BACK for row in rows})
        for index, record in enumerate(records):
            outcome = outcomes[index]
            self.summary.read += 1
            if outcome == CHANGED:
                self.summary.changed += 1
            elif outcome == SKIPPED:
                self.summary.skipped += 1
            else:
                self.summary.failed += 1
                # A rolled-back row goes to --errors-file only; the command reports the batch.
                self.on_error(record, outcome, batch=outcome == ROLLED_BACK)
        if failure is not None:
            raise BatchFailed(records[0].line, records[-1].line, failure) from failure

    def _write(self, rows: list[Row], lookups: "Lookups") -> dict[int, str]:
        outcomes = {}
        valid = []
        for row in rows:
            error = lookups.check(row)
            if error is None and not lookups.active(row):
                # A row already as asked is no change, whatever the enrollment's state: an
                # export (DROPPED and EXPIRED learners included) imports back unchanged.
                stored = lookups.rows.get(row.key)
                if not services.would_change_progress(stored, **_arguments(row.fields, True)):
                    outcomes[row.index] = SKIPPED
                    continue
                error = services.NO_ACTIVE_ENROLLMENT
            if error:
                outcomes[row.index] = error
            else:
                valid.append(row)
        # Each write locks its enrollment until the batch commits: take them in pk order, as
        # the other commands do, so that two batches never deadlock. The sort is stable: a
        # learner's rows for one item keep their order in the file.
        valid.sort(key=lambda row: lookups.enrollment_ids[row.key[:2]])
        for row in valid:
            fields = row.fields
            stored = lookups.rows.get(row.key)
            arguments = _arguments(fields, self.exact)
            if not services.would_change_progress(stored, **arguments):
                outcomes[row.index] = SKIPPED
                continue
            try:
                with transaction.atomic():
                    saved = services.record_progress(
                        user_id=row.resolved_user_id,
                        course_id=fields["courseId"],
                        content_id=fields["courseContentId"],
                        **arguments,
                    )
                    if stored is None and (row.created_at or row.updated_at):
                        created = row.created_at or row.updated_at
                        saved.created_at = created
                        stamps = {"created_at": created}
                        if row.updated_at:
                            saved.updated_at = stamps["updated_at"] = row.updated_at
                        ContentProgress.objects.filter(pk=saved.pk).update(**stamps)
            except (Conflict, DjangoValidationError, PermissionDenied) as exc:
                outcomes[row.index] = _service_message(exc)
                continue
            lookups.rows[row.key] = saved
            outcomes[row.index] = CHANGED
        # The enrollment sync each write would have run, once for the batch, set-based.
        written = {row.key[:2] for row in valid if outcomes[row.index] == CHANGED}
        status_sync.apply_enrollment_status_drift(
            sorted(lookups.enrollment_ids[pair] for pair in written)
        )
        return outcomes


class Lookups:
    """Users, courses, content, enrollments and stored rows for one batch, in a few queries."""

    def __init__(self, rows: list[Row]):
        User = get_user_model()
        names = {row.username for row in rows if row.username}
        self.by_name = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
        ids = {row.user_id for row in rows if row.user_id} | set(self.by_name.values())
        self.user_ids = set(User.objects.filter(pk__in=ids).values_list("pk", flat=True))
        course_ids = {row.fields["courseId"] for row in rows}
        self.course_ids = set(Course.objects.filter(pk__in=course_ids).values_list("pk", flat=True))
        self.contents = set(
            CourseContent.objects.filter(course_id__in=self.course_ids).values_list(
                "course_id", "pk"
            )
        )
        self.enrollments, self.enrollment_ids = {}, {}
        for pk, user_id, course_id, status in Enrollment.objects.filter(
            user_id__in=self.user_ids, course_id__in=self.course_ids
        ).values_list("pk", "user_id", "course_id", "status"):
            self.enrollments[(user_id, course_id)] = status
            self.enrollment_ids[(user_id, course_id)] = pk
        content_ids = {row.fields["courseContentId"] for row in rows}
        self.rows = {
            (row.user_id, row.course_id, row.content_id): row
            for row in ContentProgress.objects.filter(
                user_id__in=self.user_ids,
                course_id__in=self.course_ids,
                content_id__in=content_ids,
            ).order_by()
        }

    def check(self, row: Row) -> str | None:
        """The first existence rule the row breaks, in the API's order (the enrollment's state
        is `active`); sets row.resolved_user_id."""
        user_id = row.user_id
        if row.username:
            named = self.by_name.get(row.username)
            if named is None:
                return f"username: There is no user {row.username!r}."
            if user_id is not None and user_id != named:
                return f"userId: User {user_id} is not {row.username!r} (user {named})."
            user_id = named
        if user_id not in self.user_ids:
            return f"userId: User {user_id} does not exist."
        row.resolved_user_id = user_id
        course_id = row.fields["courseId"]
        if course_id not in self.course_ids:
            return f"courseId: Course {course_id} does not exist."
        if (course_id, row.fields["courseContentId"]) not in self.contents:
            return f"courseContentId: {services.NOT_IN_COURSE}"
        return None

    def active(self, row: Row) -> bool:
        """Whether the row's learner (checked) has an active enrollment in its course."""
        return self.enrollments.get(row.key[:2]) in rules.ACTIVE
