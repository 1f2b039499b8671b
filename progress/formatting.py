"""The output shape: how rows become the contract's JSON (section 1's timestamps, v_ fields,
percent strings, rounded aggregates, and the enrollment / progress row / activity objects).

Each object is declared once, as a table of output key -> column -> kind (ENROLLMENT_FIELDS,
PROGRESS_FIELDS, ACTIVITY_FIELDS). Two writers are built from those tables: plain-dict
formatters for rows the selectors fetched (DRF field-by-field serialisation dominated the course
page profile), and on PostgreSQL the SQL expression that makes the database write the same
JSON (json_object_sql: the big lists of 3.1 and 3.2 never pass through Python objects).
progress/serializers.py describes the same fields for the OpenAPI schema, and tests compare
both. Commands, the admin and the change feed format their dates here too, and the two CSV
exports build their progress cells here (progress_csv_cells).
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso(value: datetime | None) -> str | None:
    """UTC, ISO 8601 with milliseconds and Z: 2025-10-13T17:50:51.683Z."""
    if value is None:
        return None
    # isoformat() is C code; the [:23] drops the "+00:00" (years are always four digits).
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def _local_date_and_time(value: datetime) -> tuple[str, str]:
    """DD-Mon-YYYY and HH:MM:SS in the server's TIME_ZONE, English month names whatever the
    locale."""
    local = value.astimezone(timezone.get_default_timezone())
    date = f"{local.day:02d}-{MONTHS[local.month - 1]}-{local.year:04d}"
    return date, local.isoformat(timespec="seconds")[11:19]


def v_fields(created: datetime, updated: datetime) -> dict:
    """The four v_ fields (each timestamp converted once: rows come by the thousand)."""
    created_date, created_time = _local_date_and_time(created)
    updated_date, updated_time = _local_date_and_time(updated)
    return {
        "v_created_date": created_date,
        "v_created_time": created_time,
        "v_updated_date": updated_date,
        "v_updated_time": updated_time,
    }


def percent_str(value) -> str:
    return f"{Decimal(value):.2f}"


def round2(value) -> float:
    return round(float(value or 0), 2)


ENROLLMENT_VALUES = (
    "id",
    "user_id",
    "course_id",
    "status",
    "enrolled_at",
    "completed_at",
    "certificate_url",
    "metadata",
    "created_at",
    "updated_at",
)
PROGRESS_VALUES = (
    "id",
    "user_id",
    "course_id",
    "content_id",
    "status",
    "duration",
    "percent",
    "metadata",
    "created_at",
    "updated_at",
)


# --- the objects, declared once --------------------------------------------------------------
#
# Each object of the contract is a table of (output key, column, kind): the key it carries, the
# values() name it is made from, and how that value is written. Both writers are built from
# these tables: the Python formatters below (format_enrollment, format_progress,
# format_activity) and, on PostgreSQL, json_object_sql(), which makes the database write the
# same object as JSON text (the big lists of 3.1 and 3.2, progress/selectors.py). A key added,
# moved or changed here changes both; tests/test_json_from_database.py holds them equal.


class OutputField(NamedTuple):
    key: str
    column: str  # the values() name the value is read from
    kind: str  # a key of PYTHON_WRITERS (and of _SQL_WRITERS)


def _v_fields() -> tuple[OutputField, ...]:
    return (
        OutputField("v_created_date", "created_at", "local_date"),
        OutputField("v_created_time", "created_at", "local_time"),
        OutputField("v_updated_date", "updated_at", "local_date"),
        OutputField("v_updated_time", "updated_at", "local_time"),
    )


ENROLLMENT_FIELDS = (
    *_v_fields(),
    OutputField("enrollmentId", "id", "plain"),
    OutputField("userId", "user_id", "plain"),
    OutputField("courseId", "course_id", "plain"),
    OutputField("enrollmentStatus", "status", "plain"),
    OutputField("enrollmentDate", "enrolled_at", "timestamp"),
    OutputField("completionDate", "completed_at", "timestamp"),
    OutputField("certificateUrl", "certificate_url", "blank_as_null"),
    OutputField("metadata", "metadata", "object"),
    OutputField("enrollment_created_at", "created_at", "timestamp"),
    OutputField("enrollment_updated_at", "updated_at", "timestamp"),
)
PROGRESS_FIELDS = (
    *_v_fields(),
    OutputField("progressId", "id", "plain"),
    OutputField("userId", "user_id", "plain"),
    OutputField("courseId", "course_id", "plain"),
    OutputField("courseContentId", "content_id", "plain"),
    OutputField("progressStatus", "status", "plain"),
    OutputField("activityDuration", "duration", "plain"),
    OutputField("progressPercent", "percent", "percent"),
    OutputField("metadata", "metadata", "object"),
    OutputField("user_course_content_progress_created_at", "created_at", "timestamp"),
    OutputField("user_course_content_progress_updated_at", "updated_at", "timestamp"),
)
# The shorter activity item of 3.4.
ACTIVITY_FIELDS = (
    OutputField("progressId", "id", "plain"),
    OutputField("courseContentId", "content_id", "plain"),
    OutputField("progressStatus", "status", "plain"),
    OutputField("activityDuration", "duration", "plain"),
    OutputField("progressPercent", "percent", "percent"),
    *_v_fields(),
)

LOCAL_KINDS = {"local_date": 0, "local_time": 1}  # which half of _local_date_and_time()
PYTHON_WRITERS: dict[str, Callable[[Any], Any]] = {
    "plain": lambda value: value,
    "timestamp": iso,
    "percent": percent_str,
    "blank_as_null": lambda value: value or None,
    "object": lambda value: value if value is not None else {},
}


def python_formatter(fields: tuple[OutputField, ...], name: str, doc: str) -> Callable[[Any], dict]:
    """The function that writes one object of `fields` from a values() dict (or a model
    instance's vars()); each timestamp is converted to local time once."""
    local_columns = tuple(dict.fromkeys(f.column for f in fields if f.kind in LOCAL_KINDS))
    plan = tuple(
        (f.key, f.column, LOCAL_KINDS.get(f.kind), PYTHON_WRITERS.get(f.kind)) for f in fields
    )

    def format_row(row) -> dict:
        local = {column: _local_date_and_time(row[column]) for column in local_columns}
        return {
            key: write(row[column]) if write else local[column][half]
            for key, column, half, write in plan
        }

    format_row.__name__ = format_row.__qualname__ = name
    format_row.__doc__ = doc
    return format_row


format_enrollment = python_formatter(
    ENROLLMENT_FIELDS,
    "format_enrollment",
    "An enrollment object from a values() dict or a model instance's vars().",
)
format_progress = python_formatter(
    PROGRESS_FIELDS, "format_progress", "A progress row / activity log object."
)
format_activity = python_formatter(
    ACTIVITY_FIELDS, "format_activity", "The shorter activity item of 3.4."
)


# --- the same objects written by PostgreSQL ---------------------------------------------------
#
# Written as Python writes them: timestamps truncated to milliseconds (isoformat's timespec
# truncates), local dates and times in TIME_ZONE (English month abbreviations: to_char's "Mon"
# without the TM prefix ignores the locale), numeric(5,2) percents as their text ("12.50"),
# an empty certificate URL as null, metadata (jsonb) passed through as stored. Each value is
# written as JSON text (strings escaped by to_json, NULL as null) and the object is the
# concatenation, keys in the order of the table: compact like the renderer's output, and about
# a third cheaper for the database than json_build_object.

_UTC_STAMP = '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\''
_SQL_WRITERS = {
    "plain": "to_json({value})::text",
    "timestamp": f"'\"' || to_char({{value}} AT TIME ZONE 'UTC', {_UTC_STAMP}) || '\"'",
    "local_date": "'\"' || to_char({value} AT TIME ZONE {zone}, 'DD-Mon-YYYY') || '\"'",
    "local_time": "'\"' || to_char({value} AT TIME ZONE {zone}, 'HH24:MI:SS') || '\"'",
    "percent": "'\"' || ({value})::text || '\"'",
    "blank_as_null": "to_json(NULLIF({value}, ''))::text",
    "object": "COALESCE({value}, '{{}}'::jsonb)::text",
}


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_object_sql(
    fields: tuple[OutputField, ...], source: str, time_zone: str | None = None
) -> str:
    """A PostgreSQL expression that writes one object of `fields` as JSON text, reading each
    column as `source`."column" (a subquery of values() with those names); local dates and
    times in `time_zone` (default: TIME_ZONE)."""
    zone = _sql_text(time_zone or settings.TIME_ZONE)
    parts = []
    for position, field in enumerate(fields):
        value = _SQL_WRITERS[field.kind].format(value=f'{source}."{field.column}"', zone=zone)
        key = ("{" if position == 0 else ",") + json.dumps(field.key) + ":"
        parts.append(f"{_sql_text(key)} || COALESCE({value}, 'null')")
    return "(" + " || ".join(parts) + " || '}')"


# --- files: export_progress (CSV and JSON Lines) and the admin's CSV export ---------------------

CREATED = "user_course_content_progress_created_at"
UPDATED = "user_course_content_progress_updated_at"


def progress_record(row) -> dict:
    """A progress row in the API's field names and plain values, as the exports write it.

    `row` holds user_id and course_id and, for a progress row, content_id, status, duration,
    percent (a Decimal), metadata, created_at and updated_at (a values() dict or a model
    instance's vars()); without content_id (an enrollment without progress) the progress fields
    are None. A progress row's missing metadata is {} (as in the API)."""
    present = row.get("content_id") is not None
    metadata = row.get("metadata")
    return {
        "userId": row.get("user_id"),
        "courseId": row.get("course_id"),
        "courseContentId": row.get("content_id"),
        "progressStatus": row.get("status"),
        "activityDuration": row.get("duration"),
        "progressPercent": row.get("percent"),
        "metadata": ({} if metadata is None else metadata) if present else None,
        CREATED: iso(row.get("created_at")),
        UPDATED: iso(row.get("updated_at")),
    }


def progress_csv_cells(row) -> dict:
    """progress_record() as CSV cells: the one rule both CSV exports (export_progress and the
    admin's export action) write a progress row by. progressPercent is the API's "50.00",
    metadata JSON text (UTF-8, not escaped), None an empty cell; numbers stay numbers for the
    csv module to write."""
    cells = progress_record(row)
    if cells["progressPercent"] is not None:
        cells["progressPercent"] = percent_str(cells["progressPercent"])
    if cells["metadata"] is not None:
        cells["metadata"] = json.dumps(cells["metadata"], ensure_ascii=False)
    return {name: "" if value is None else value for name, value in cells.items()}
