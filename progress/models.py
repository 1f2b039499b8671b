"""Enrollment and ContentProgress, stored in the guide's tables and columns (contract section 4)."""

import json
import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import JSONField, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from progress import rules
from progress.rules import EnrollmentStatus, ProgressStatus

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
# Integers a JSON consumer can be trusted with: orjson (the renderer) refuses anything outside
# signed 64 bits, so one such number would make every cached read of the course unstorable.
MIN_METADATA_INT, MAX_METADATA_INT = -(2**63), 2**63 - 1
METADATA_ERRORS = {
    "not_object": "A JSON object is required.",
    "too_large": f"Metadata may be at most {MAX_METADATA_BYTES} bytes as JSON.",
    "too_large_merged": (
        f"Metadata may be at most {MAX_METADATA_BYTES} bytes as JSON, counting the stored keys"
        " this update merges with."
    ),
    "integer_out_of_range": (
        f"Integers in metadata must lie between {MIN_METADATA_INT} and {MAX_METADATA_INT}"
        " (signed 64 bits)."
    ),
    "null_characters": "Null characters are not allowed.",
    "surrogates": "Unpaired surrogate characters are not allowed.",
    "too_deep": f"Metadata may nest at most {MAX_METADATA_DEPTH} levels.",
}


def metadata_problem(data) -> str | None:
    """What makes a metadata value unstorable or unservable, as a METADATA_ERRORS code:
    - not a JSON object, or one over MAX_METADATA_BYTES as JSON;
    - a NUL character or an unpaired surrogate in a key or string: PostgreSQL's jsonb refuses
      them and fails the whole statement;
    - nesting deeper than MAX_METADATA_DEPTH: reading it back overflows Python's recursion
      limit, on every read of the learner and of the course;
    - an integer outside signed 64 bits (or a float that jsonb would store as one): the
      renderer (orjson) cannot write it, and JavaScript clients would silently round it.
    The API's serializers and the admin's forms (through validate_metadata) apply it, and the
    services apply it again to the result of a learner's merge (what is stored)."""
    if not isinstance(data, dict):
        return "not_object"
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "null_characters"
            try:
                item.encode("utf-8")  # refuses exactly the surrogate code points
            except UnicodeEncodeError:
                return "surrogates"
        elif isinstance(item, int):
            if not MIN_METADATA_INT <= item <= MAX_METADATA_INT:
                return "integer_out_of_range"
        elif isinstance(item, float):
            # jsonb keeps a number's value, not its spelling: 1e20 comes back as the integer
            # 100000000000000000000, as out of range as if it had been sent so.
            if not MIN_METADATA_INT < item < MAX_METADATA_INT:
                return "integer_out_of_range"
        elif isinstance(item, dict | list):
            if depth > MAX_METADATA_DEPTH:
                return "too_deep"
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
            stack.extend(
                (value, depth + 1) for value in (item.values() if isinstance(item, dict) else item)
            )
    try:
        size = len(json.dumps(data, allow_nan=False).encode())
    except ValueError:
        return "not_object"
    return "too_large" if size > MAX_METADATA_BYTES else None


def same_metadata(a, b) -> bool:
    """Whether two metadata values are the same JSON, as PostgreSQL's jsonb compares them:
    numbers by value (1 == 1.0), but a boolean is never a number (Python's True == 1 is not
    JSON's). Decides whether an update changes stored metadata, on every write path."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_metadata(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_metadata, a, b))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return a == b


# An absolute http(s) URI (RFC 3986, ASCII): host, optional port, path, query, fragment. The one
# rule for certificate URLs: the API's field, its schema and the admin's form all use it.
MAX_CERTIFICATE_URL_LENGTH = 500
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
CERTIFICATE_URL_PATTERN = (
    r"^https?://(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+(?::[0-9]{1,5})?"
    rf"(?:/(?:{_PCHAR}|/)*)?(?:[?](?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?$"
)
CERTIFICATE_URL_ERROR = "Enter an absolute http(s) URL."


def certificate_url_ok(value) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= MAX_CERTIFICATE_URL_LENGTH
        and re.fullmatch(CERTIFICATE_URL_PATTERN, value) is not None
    )


def validate_certificate_url(value) -> None:
    if value and not certificate_url_ok(value):
        raise ValidationError(CERTIFICATE_URL_ERROR, code="invalid")


def validate_metadata(value) -> None:
    problem = metadata_problem(value)
    if problem:
        raise ValidationError(METADATA_ERRORS[problem], code=problem)


def metadata_field() -> models.JSONField:
    """The guide's `metadata JSONB DEFAULT '{}'`, under the shared metadata rule."""
    return models.JSONField(
        default=dict,
        db_default=Value({}, JSONField()),
        blank=True,
        db_column="metadata",
        validators=[validate_metadata],
    )


def timestamp_fields(prefix: str) -> tuple[models.DateTimeField, models.DateTimeField]:
    """The guide's `<table>_created_at` and `<table>_updated_at` columns, defaulted by the
    database too, so that plain-SQL writers get them."""
    return (
        models.DateTimeField(
            default=timezone.now, db_default=Now(), db_column=f"{prefix}_created_at"
        ),
        models.DateTimeField(auto_now=True, db_default=Now(), db_column=f"{prefix}_updated_at"),
    )


def _in(field: str, choices) -> Q:
    return Q(**{f"{field}__in": [value for value, _ in choices.choices]})


class Enrollment(models.Model):
    id = models.AutoField(primary_key=True, db_column="enrollmentid")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_column="userid",
        db_index=False,  # the unique (userid, courseid) index leads with userid
    )
    course = models.ForeignKey(
        "courseprogress.Course",
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_column="courseid",
        db_index=False,  # idx_enrollments_course leads with courseid
    )
    status = models.CharField(
        max_length=50,
        choices=EnrollmentStatus.choices,
        default=EnrollmentStatus.ENROLLED,
        db_default=EnrollmentStatus.ENROLLED,
        db_column="enrollmentstatus",
    )
    enrolled_at = models.DateTimeField(
        default=timezone.now, db_default=Now(), db_column="enrollmentdate"
    )
    completed_at = models.DateTimeField(null=True, blank=True, db_column="completiondate")
    certificate_url = models.URLField(
        max_length=500, null=True, blank=True, db_column="certificateurl"
    )
    metadata = metadata_field()
    created_at, updated_at = timestamp_fields("enrollment")
    # Owned by the database: triggers (migration 0003_freshness_triggers) raise it by one on
    # every update of the row and on every write to the learner's progress rows in the course,
    # whoever writes, and whatever value the writer sent. With the enrollment id it stamps the
    # learner's cached reads (progress/read_cache.py).
    cache_version = models.BigIntegerField(default=1, db_default=1, editable=False)
    # Owned by the database too: the sum of the learner's item scores in the course
    # (rules.STATUS_SCORES), in hundredths, kept by triggers (migration 0007, built by
    # progress/total_sql.py) on every write to the learner's progress rows; whatever value a
    # writer sends is ignored. The course progress is progress_total / 100 / the item count.
    progress_total = models.BigIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        db_table = "enrollments"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course"], name="enrollments_userid_courseid_key"
            ),
            models.CheckConstraint(
                condition=_in("status", EnrollmentStatus), name="enrollments_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["course", "status"], name="idx_enrollments_course"),
            models.Index(fields=["status"], name="idx_enrollments_status"),
        ]
        permissions = [
            ("view_all_progress", "Can view every learner's progress in every course"),
            ("update_any_progress", "Can post progress for any learner (system accounts)"),
        ]

    def __str__(self):
        return f"{self.user} in {self.course} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in rules.ACTIVE


class ContentProgress(models.Model):
    id = models.AutoField(primary_key=True, db_column="progressid")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="content_progress",
        db_column="userid",
        db_index=False,  # the unique (userid, courseid, coursecontentid) index leads with userid
    )
    course = models.ForeignKey(
        "courseprogress.Course",
        on_delete=models.CASCADE,
        related_name="content_progress",
        db_column="courseid",
        db_index=False,  # idx_progress_course_content leads with courseid
    )
    content = models.ForeignKey(
        "courseprogress.CourseContent",
        on_delete=models.CASCADE,
        related_name="progress_rows",
        db_column="coursecontentid",
        db_index=False,  # idx_progress_content
    )
    status = models.CharField(
        max_length=50,
        choices=ProgressStatus.choices,
        default=ProgressStatus.NOT_STARTED,
        db_default=ProgressStatus.NOT_STARTED,
        db_column="progressstatus",
    )
    duration = models.IntegerField(
        default=0,
        db_default=0,
        db_column="activityduration",
        help_text="Minutes spent on the content so far.",
    )
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0.00"),
        db_default=Decimal("0.00"),
        db_column="progresspercent",
    )
    metadata = metadata_field()
    created_at, updated_at = timestamp_fields("user_course_content_progress")

    class Meta:
        db_table = "user_course_content_progress"
        ordering = ["-updated_at", "-id"]
        verbose_name = "content progress"
        verbose_name_plural = "content progress"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course", "content"],
                name="user_course_content_progress_uniq",
            ),
            models.CheckConstraint(
                condition=_in("status", ProgressStatus), name="progress_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(percent__gte=0) & Q(percent__lte=100), name="progress_percent_0_100"
            ),
            models.CheckConstraint(condition=Q(duration__gte=0), name="progress_duration_gte_0"),
        ]
        indexes = [
            # One learner's rows in a course, newest update first (3.1, 3.4).
            models.Index(fields=["user", "course", "-updated_at"], name="idx_progress_user_course"),
            models.Index(fields=["content"], name="idx_progress_content"),
            # Course-wide aggregates (3.2, 3.5).
            models.Index(
                fields=["course", "content", "status"], name="idx_progress_course_content"
            ),
        ]

    def __str__(self):
        return f"{self.user} / {self.content} ({self.status})"


# Change events and webhooks (contract section 6) live in their own module.
from progress.event_models import (  # noqa: E402
    DeliveryState,
    Event,
    EventPruneMark,
    EventType,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = [
    "ContentProgress",
    "DeliveryState",
    "Enrollment",
    "EnrollmentStatus",
    "Event",
    "EventPruneMark",
    "EventType",
    "ProgressStatus",
    "WebhookDelivery",
    "WebhookSubscription",
]
