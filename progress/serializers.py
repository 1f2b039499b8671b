"""Input rules (what a request body may hold) and the schema classes of the output.

The output itself is built by progress/formatting.py; the *Out classes below describe the same
fields for the OpenAPI schema, and tests compare both.
"""

import copy
import math
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from progress.models import (
    CERTIFICATE_URL_ERROR,
    CERTIFICATE_URL_PATTERN,
    MAX_CERTIFICATE_URL_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_INT,
    METADATA_ERRORS,
    MIN_METADATA_INT,
    EnrollmentStatus,
    EventType,
    ProgressStatus,
    certificate_url_ok,
    metadata_problem,
)

MAX_ID = 2**31 - 1
# A progressPercent as the output writes it: two decimals, "0.00" to "100.00".
PERCENT_PATTERN = r"^(100\.00|[0-9]{1,2}\.[0-9]{2})$"

# --- input --------------------------------------------------------------------------------


def json_int(value) -> int | None:
    """`value` as an int if it is a JSON integer, else None: no strings, no booleans, no
    fractions (1.0 is the integer 1, as in JSON Schema; 1.5, NaN and Infinity are not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (json_int)."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        number = json_int(data)
        if number is None:
            self.fail("invalid")
        return super().to_internal_value(number)


class IdField(StrictIntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "number",
        "minimum": 0,
        "maximum": 100,
        "multipleOf": 0.01,
        "description": "Percent from 0 to 100 with at most two decimals.",
    }
)
class PercentField(serializers.DecimalField):
    """A JSON number from 0 to 100 with at most two decimals; NaN and Infinity are refused."""

    default_error_messages = {"invalid": "A number from 0 to 100 is required."}

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=Decimal(100), **kwargs
        )

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        # repr() of a float is the shortest string that reads back the same: 33.33 -> "33.33".
        return super().to_internal_value(repr(data) if isinstance(data, float) else data)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": (
            f"A JSON object of at most {MAX_METADATA_BYTES} bytes (for a learner's update: the"
            " stored object with the sent keys merged in), nested at most 32 levels, integers"
            f" from {MIN_METADATA_INT} to {MAX_METADATA_INT}."
        ),
    }
)
class MetadataField(serializers.JSONField):
    """The models' metadata rule (progress.models.metadata_problem), with its messages."""

    default_error_messages = METADATA_ERRORS

    def to_internal_value(self, data):
        problem = metadata_problem(data)
        if problem:
            self.fail(problem)
        return data


class ListedChoiceField(serializers.ChoiceField):
    """A choice whose error names the valid values."""

    def __init__(self, choices, **kwargs):
        super().__init__(choices, **kwargs)
        values = ", ".join(str(value) for value in self.choices)
        self.error_messages["invalid_choice"] = (
            f'"{{input}}" is not a valid choice; use one of: {values}.'
        )


class ProgressUpdateIn(serializers.Serializer):
    courseId = IdField()
    courseContentId = IdField()
    progressStatus = ListedChoiceField(choices=ProgressStatus.choices)
    activityDuration = StrictIntegerField(required=False, min_value=0, max_value=MAX_ID)
    progressPercent = PercentField(required=False)
    metadata = MetadataField(required=False)
    userId = IdField(required=False)

    def get_fields(self):
        """The declared fields, each a shallow copy, where DRF deep-copies them for every
        instance: for the hottest endpoint (every POST) that copy was two thirds of the
        validation's CPU. These fields are flat (no child field or nested serializer) and keep
        nothing of a request: each copy is bound to this serializer as the deep copy was, and
        what the copies share (choices, error messages, validators) nobody changes after
        __init__ (bench/notes.md, issue 17, "the POST (third pass)")."""
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "minItems": 1,
        "maxItems": 100,
        "uniqueItems": True,
    }
)
class DistinctIdList(serializers.ListField):
    """1 to 100 distinct ids."""

    default_error_messages = {
        "empty": "Send at least one id.",
        "min_length": "Send at least one id.",
        "max_length": "Send at most {max_length} ids.",
    }


class BulkIn(serializers.Serializer):
    """validated_data: selectors.bulk_progress's course_id and user_ids."""

    courseId = IdField(source="course_id")
    userIds = DistinctIdList(child=IdField(), min_length=1, max_length=100, source="user_ids")

    def validate_userIds(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("User ids must be distinct.")
        return value


class EnrollIn(serializers.Serializer):
    """validated_data: services.enrol's course_id and user_id (absent: the caller)."""

    courseId = IdField(source="course_id")
    userId = IdField(required=False, source="user_id")


@extend_schema_field(
    {
        "type": "string",
        "pattern": CERTIFICATE_URL_PATTERN,
        "maxLength": MAX_CERTIFICATE_URL_LENGTH,
        "description": "An absolute http(s) URL (RFC 3986), at most 500 characters.",
    }
)
class CertificateUrlField(serializers.CharField):
    """Exactly what the schema's pattern says (progress.models.certificate_url_ok, the rule the
    admin's form applies too): no more lenient than the pattern, and no stricter."""

    default_error_messages = {"invalid": CERTIFICATE_URL_ERROR}

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_CERTIFICATE_URL_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not certificate_url_ok(value):
            self.fail("invalid")
        return value


class EnrollmentPatchIn(serializers.Serializer):
    """validated_data: services.update_enrollment's keyword arguments, the fields sent."""

    enrollmentStatus = ListedChoiceField(
        choices=EnrollmentStatus.choices, required=False, source="status"
    )
    certificateUrl = CertificateUrlField(required=False, allow_null=True, source="certificate_url")
    metadata = MetadataField(required=False)


# --- output, described for the schema -----------------------------------------------------


class _VirtualFields(serializers.Serializer):
    v_created_date = serializers.CharField(help_text="DD-Mon-YYYY in the server's TIME_ZONE")
    v_created_time = serializers.CharField(help_text="HH:MM:SS (24 h) in the server's TIME_ZONE")
    v_updated_date = serializers.CharField()
    v_updated_time = serializers.CharField()


class EnrollmentOut(_VirtualFields):
    enrollmentId = serializers.IntegerField()
    userId = serializers.IntegerField()
    courseId = serializers.IntegerField()
    enrollmentStatus = serializers.ChoiceField(choices=EnrollmentStatus.choices)
    enrollmentDate = serializers.DateTimeField()
    completionDate = serializers.DateTimeField(allow_null=True)
    # What was stored: now always what CertificateUrlField accepts (the API and the admin share
    # the rule), but rows written before that, or by SQL, may hold other strings.
    certificateUrl = serializers.CharField(allow_null=True, max_length=500)
    metadata = serializers.DictField()
    enrollment_created_at = serializers.DateTimeField()
    enrollment_updated_at = serializers.DateTimeField()


class ProgressRowOut(_VirtualFields):
    progressId = serializers.IntegerField()
    userId = serializers.IntegerField()
    courseId = serializers.IntegerField()
    courseContentId = serializers.IntegerField()
    progressStatus = ListedChoiceField(choices=ProgressStatus.choices)
    activityDuration = serializers.IntegerField(min_value=0)
    progressPercent = serializers.RegexField(
        PERCENT_PATTERN, help_text='Two decimals, "0.00" to "100.00"'
    )
    metadata = serializers.DictField()
    user_course_content_progress_created_at = serializers.DateTimeField()
    user_course_content_progress_updated_at = serializers.DateTimeField()


class ActivityOut(serializers.Serializer):
    progressId = serializers.IntegerField()
    courseContentId = serializers.IntegerField()
    progressStatus = ListedChoiceField(choices=ProgressStatus.choices)
    activityDuration = serializers.IntegerField(min_value=0)
    progressPercent = serializers.RegexField(PERCENT_PATTERN)
    v_created_date = serializers.CharField()
    v_created_time = serializers.CharField()
    v_updated_date = serializers.CharField()
    v_updated_time = serializers.CharField()


class LearnerProgressOut(serializers.Serializer):
    enrollments = EnrollmentOut(allow_null=True)
    activityLogs = ProgressRowOut(many=True)


class CourseLearnerOut(serializers.Serializer):
    userId = serializers.IntegerField()
    progress = serializers.FloatField(min_value=0, max_value=100)
    enrollments = EnrollmentOut(allow_null=True)
    activityLogs = ProgressRowOut(many=True)


class ContentEngagementOut(serializers.Serializer):
    contentId = serializers.IntegerField()
    completionCount = serializers.IntegerField(min_value=0)
    avgDuration = serializers.FloatField(min_value=0)


class AnalyticsOut(serializers.Serializer):
    totalEnrollments = serializers.IntegerField(min_value=0)
    activeUsers = serializers.IntegerField(min_value=0)
    completedUsers = serializers.IntegerField(min_value=0)
    averageProgress = serializers.FloatField(min_value=0, max_value=100)
    completionRate = serializers.FloatField(min_value=0, max_value=100)
    averageCompletionTime = serializers.FloatField(allow_null=True)
    totalActivities = serializers.IntegerField(min_value=0)
    contentEngagement = ContentEngagementOut(many=True)
    computedAt = serializers.DateTimeField()


class EventOut(serializers.Serializer):
    """A change event (contract section 6); `data` depends on `type`."""

    id = serializers.CharField(help_text="Unique and opaque; the webhook-id of its deliveries")
    sequence = serializers.IntegerField(min_value=1)
    type = serializers.ChoiceField(choices=EventType.choices)
    occurredAt = serializers.DateTimeField()
    courseId = serializers.IntegerField()
    userId = serializers.IntegerField()
    data = serializers.DictField()


class FeedPaginationOut(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, help_text="The cursor this page started after")
    next = serializers.IntegerField(min_value=0, help_text="Send as `after` for the next page")
    limit = serializers.IntegerField(min_value=1)
    hasMore = serializers.BooleanField()
