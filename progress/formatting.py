"""The output shape: how rows become the contract's JSON (section 1's timestamps, v_ fields,
percent strings, rounded aggregates, and the enrollment / progress row / activity objects).

Output is built as plain dicts from the rows the selectors fetched (DRF field-by-field
serialisation dominated the course page profile); progress/serializers.py describes the same
fields for the OpenAPI schema, and tests compare both. Commands, the admin and the change feed
format their dates here too, and the two CSV exports build their progress cells here
(progress_csv_cells).
"""

import json
from datetime import UTC, datetime
from decimal import Decimal

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


def format_enrollment(row) -> dict:
    """An enrollment object from a values() dict or a model instance's vars()."""
    return {
        **v_fields(row["created_at"], row["updated_at"]),
        "enrollmentId": row["id"],
        "userId": row["user_id"],
        "courseId": row["course_id"],
        "enrollmentStatus": row["status"],
        "enrollmentDate": iso(row["enrolled_at"]),
        "completionDate": iso(row["completed_at"]),
        "certificateUrl": row["certificate_url"] or None,
        "metadata": row["metadata"] if row["metadata"] is not None else {},
        "enrollment_created_at": iso(row["created_at"]),
        "enrollment_updated_at": iso(row["updated_at"]),
    }


def format_progress(row) -> dict:
    """A progress row / activity log object."""
    return {
        **v_fields(row["created_at"], row["updated_at"]),
        "progressId": row["id"],
        "userId": row["user_id"],
        "courseId": row["course_id"],
        "courseContentId": row["content_id"],
        "progressStatus": row["status"],
        "activityDuration": row["duration"],
        "progressPercent": percent_str(row["percent"]),
        "metadata": row["metadata"] if row["metadata"] is not None else {},
        "user_course_content_progress_created_at": iso(row["created_at"]),
        "user_course_content_progress_updated_at": iso(row["updated_at"]),
    }


def format_activity(row) -> dict:
    """The shorter activity item of 3.4."""
    return {
        "progressId": row["id"],
        "courseContentId": row["content_id"],
        "progressStatus": row["status"],
        "activityDuration": row["duration"],
        "progressPercent": percent_str(row["percent"]),
        **v_fields(row["created_at"], row["updated_at"]),
    }


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
