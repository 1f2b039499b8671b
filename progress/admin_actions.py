"""Enrollment actions of the admin. Each one calls the services per enrollment, so the moves
follow the allowed moves, caches are invalidated, and one refused enrollment does not stop the
others: refusals are listed in an error message.
"""

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.response import TemplateResponse

from courseprogress.exceptions import Conflict
from progress import selectors, services
from progress.formatting import UPDATED, iso, progress_csv_cells, round2
from progress.models import (
    MAX_CERTIFICATE_URL_LENGTH,
    EnrollmentStatus,
    validate_certificate_url,
)

MAX_LISTED_REFUSALS = 10


def refusal(exc: Exception) -> str:
    """The sentence a person reads when a service refuses (409 or 400 in the API)."""
    return exc.message if isinstance(exc, Conflict) else " ".join(exc.messages)


def _report(modeladmin, request, done: int, verb: str, refused: list[str]) -> None:
    if done:
        noun = "enrollment" if done == 1 else "enrollments"
        modeladmin.message_user(request, f"{done} {noun} {verb}.", messages.SUCCESS)
    if refused:
        # Each reason is a sentence with its own period; the message ends with one, not two.
        listed = "; ".join(reason.rstrip(".") for reason in refused[:MAX_LISTED_REFUSALS])
        more = len(refused) - MAX_LISTED_REFUSALS
        suffix = f"; and {more} more" if more > 0 else ""
        modeladmin.message_user(
            request, f"{len(refused)} refused: {listed}{suffix}.", messages.ERROR
        )


def _move_each(
    modeladmin, request, queryset, to_status: str, urls: dict | None = None, verb: str = ""
) -> None:
    done, refused = 0, []
    for pk, username, title in queryset.values_list("pk", "user__username", "course__title"):
        extra = {"certificate_url": urls[pk]} if urls and pk in urls else {}
        try:
            enrollment = services.move_enrollment(pk, to_status, **extra)
        except (Conflict, ValidationError) as exc:
            refused.append(f"{username} in {title}: {refusal(exc)}")
        else:  # the enrollment's History page shows who moved it
            modeladmin.log_change(request, enrollment, f"Moved to {to_status} (admin action).")
            done += 1
    _report(modeladmin, request, done, verb or f"now {to_status}", refused)


def _move_action(to_status: str, name: str, description: str, verb: str = ""):
    def action(modeladmin, request, queryset):
        _move_each(modeladmin, request, queryset, to_status, verb=verb)

    action.__name__ = name
    return admin.action(description=description, permissions=["change"])(action)


complete = _move_action(
    EnrollmentStatus.COMPLETED, "complete", "Complete selected enrollments (from IN_PROGRESS)"
)
drop = _move_action(EnrollmentStatus.DROPPED, "drop", "Drop selected enrollments")
expire = _move_action(EnrollmentStatus.EXPIRED, "expire", "Expire selected enrollments")
# Re-enrolment applies the automatic moves at once: a learner with progress is IN_PROGRESS.
reenrol = _move_action(
    EnrollmentStatus.ENROLLED,
    "reenrol",
    "Re-enrol selected enrollments (from DROPPED/EXPIRED)",
    verb="re-enrolled",
)


def certificate_url_field(**kwargs) -> forms.CharField:
    """A certificate URL in an admin form: the API's rule (progress.models.certificate_url_ok),
    not Django's URLValidator, which also takes ftp:// and other schemes."""
    return forms.CharField(
        max_length=MAX_CERTIFICATE_URL_LENGTH,
        required=False,
        empty_value=None,
        validators=[validate_certificate_url],
        help_text="An absolute http(s) URL, as the API takes it.",
        **kwargs,
    )


class CertifyForm(forms.Form):
    """One certificate URL per selected enrollment, filled with the stored one if any. A blank
    one is not sent: the service then uses the stored URL, or refuses when there is none."""

    def __init__(self, *args, enrollments, **kwargs):
        super().__init__(*args, **kwargs)
        self.enrollments = enrollments
        for enrollment in enrollments:
            self.fields[f"url_{enrollment.pk}"] = certificate_url_field(
                label=f"{enrollment.user.username} in {enrollment.course.title}",
                initial=enrollment.certificate_url,
            )

    def urls(self) -> dict[int, str]:
        urls = {e.pk: self.cleaned_data[f"url_{e.pk}"] for e in self.enrollments}
        return {pk: url for pk, url in urls.items() if url}


@admin.action(
    description="Certify selected enrollments (asks for certificate URLs)…", permissions=["change"]
)
def certify(modeladmin, request, queryset):
    enrollments = list(queryset.select_related("user", "course"))
    form = CertifyForm(request.POST if "apply" in request.POST else None, enrollments=enrollments)
    if form.is_bound and form.is_valid():
        _move_each(modeladmin, request, queryset, EnrollmentStatus.CERTIFIED, form.urls())
        return None  # back to the list
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Certify enrollments",
        "opts": modeladmin.model._meta,
        "form": form,
        "rows": [(e, form[f"url_{e.pk}"]) for e in enrollments],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/progress/enrollment/certify.html", context)


@admin.action(description="Recompute status from progress", permissions=["change"])
def recompute(modeladmin, request, queryset):
    """Apply the automatic moves (e.g. after rows were written in bulk, which sends no signal)."""
    total = changed = 0
    for user_id, course_id, status in queryset.values_list("user_id", "course_id", "status"):
        enrollment = services.sync_enrollment_status(user_id=user_id, course_id=course_id)
        total += 1
        changed += enrollment is not None and enrollment.status != status
    modeladmin.message_user(
        request,
        f"Recomputed {total} enrollment{'s' if total != 1 else ''}; {changed} changed status.",
        messages.SUCCESS,
    )


CSV_HEADER = [
    "enrollmentId",
    "userId",
    "username",
    "email",
    "courseId",
    "courseTitle",
    "enrollmentStatus",
    "enrollmentDate",
    "completionDate",
    "certificateUrl",
    "progress",
    "courseContentId",
    "contentTitle",
    "progressStatus",
    "activityDuration",
    "progressPercent",
    "progressUpdatedAt",
]
# The progress columns: formatting.progress_csv_cells' cells (export_progress writes the same),
# with the content's title after its id.
PROGRESS_COLUMNS = [
    "courseContentId",
    "contentTitle",
    "progressStatus",
    "activityDuration",
    "progressPercent",
    UPDATED,
]


def _text(value) -> str:
    """Text a spreadsheet would otherwise run as a formula is prefixed with a quote."""
    value = "" if value is None else str(value)
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@admin.action(
    description="Export selected enrollments with their progress (CSV)", permissions=["view"]
)
def export_csv(modeladmin, request, queryset):
    """One line per progress row, the enrollment's columns repeated; one line with empty
    progress columns for an enrollment without rows."""
    enrollments = list(queryset.select_related("user", "course").order_by("course_id", "user_id"))
    progress = selectors.enrollment_progress(enrollment_ids=[e.pk for e in enrollments])
    rows = {}
    for row in selectors.progress_rows_of(queryset):
        rows.setdefault((row.user_id, row.course_id), []).append(row)

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="enrollments.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for e in enrollments:
        head = [
            e.pk,
            e.user_id,
            _text(e.user.username),
            _text(e.user.email),
            e.course_id,
            _text(e.course.title),
            e.status,
            iso(e.enrolled_at),
            iso(e.completed_at) or "",
            _text(e.certificate_url),
            f"{round2(progress.get(e.pk, 0)):.2f}",
        ]
        for row in rows.get((e.user_id, e.course_id), [None]):
            cells = progress_csv_cells({} if row is None else vars(row))
            cells["contentTitle"] = "" if row is None else _text(row.content.title)
            writer.writerow([*head, *(cells[name] for name in PROGRESS_COLUMNS)])
    return response


ENROLLMENT_ACTIONS = [complete, certify, drop, expire, reenrol, recompute, export_csv]
