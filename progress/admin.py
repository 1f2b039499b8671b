"""Enrollments and progress rows in the admin: scoped to the user's courses, written through the
services (so moves follow the allowed moves and caches are invalidated), cheap on big tables.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import smart_split, unescape_string_literal
from django.utils.timezone import localtime

from courseprogress.admin import (
    CourseListFilter,
    CourseScopedMixin,
    ValidatedChangeListMixin,
    visible_courses,
)
from courseprogress.exceptions import Conflict
from courseprogress.models import CourseContent
from progress import admin_actions, selectors, services
from progress.admin_actions import refusal
from progress.formatting import round2
from progress.models import ContentProgress, Enrollment, EnrollmentStatus
from progress.policy import can_correct_progress, can_move_enrollment, can_record_for_anyone
from progress.rules import ALLOWED_MOVES

User = get_user_model()


class EstimatedCountPaginator(Paginator):
    """COUNT(*) over a whole big PostgreSQL table scans all of it on every page view. When the
    list is unfiltered, take the planner's estimate (pg_class.reltuples, kept fresh by
    autovacuum) instead; filtered lists, and tables too small for it to matter, count exactly.
    """

    exact_below = 10_000

    @cached_property
    def count(self):
        estimate = self.estimate()
        if estimate is not None and estimate >= self.exact_below:
            return estimate
        return super().count

    def estimate(self) -> int | None:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql" or queryset.query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        return row[0] if row else None


def compact_datetime(value) -> str:
    """A list cell's date and time in the site's time zone, in two short lines when the
    column is narrow: "2026-12-01 05:49" (the stock cell never wraps, and pushes the columns
    after it off-screen)."""
    return date_format(localtime(value), "Y-m-d H:i")


class CourseColumnMixin:
    """The course as a list column that wraps (a foreign key column never does, and a long
    course title pushed the list into a sideways scroll)."""

    @admin.display(description="course", ordering="course__title")
    def course_title(self, obj):
        return obj.course.title


class ServiceFormMixin:
    """Saves go through the services; a refusal they raise (the form could not know: a stale
    page, a learner without an active enrollment) becomes an error message, not a 500. The
    admin's transaction around the save has rolled back by then."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (Conflict, ValidationError) as exc:
            self.message_user(request, f"Not saved: {refusal(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def _ids(queryset, cap: int = 2000):
    """The matching ids as a list, so that the planner knows how few there are and uses the big
    table's indexes; past `cap` matches, the same ids as a subquery."""
    ids = list(queryset.values_list("pk", flat=True)[: cap + 1])
    return ids if len(ids) <= cap else queryset.values("pk")


class BigTableAdmin(
    ValidatedChangeListMixin, CourseScopedMixin, ServiceFormMixin, admin.ModelAdmin
):
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # no second COUNT of the unfiltered table
    ordering = ["-id"]  # the primary key index: no sort of the whole table
    list_per_page = 50
    search_help_text = "Search by username, email or course title."
    search_fields = ["user__username", "user__email", "course__title"]  # see get_search_results

    def get_search_results(self, request, queryset, search_term):
        """Each word must match a username, an email or a course title, as in the stock search.

        The stock search ORs LIKEs across joined tables, which scans every row of this table
        (1.6 s at a million rows); matching the small tables first and filtering this one by
        their ids goes through its user and course indexes instead.
        """
        for word in smart_split(search_term):
            if word[:1] in ('"', "'") and word[-1:] == word[:1]:
                word = unescape_string_literal(word)
            users = User.objects.filter(Q(username__icontains=word) | Q(email__icontains=word))
            courses = visible_courses(request.user).filter(title__icontains=word)
            queryset = queryset.filter(Q(user_id__in=_ids(users)) | Q(course_id__in=_ids(courses)))
        return queryset, False


@admin.register(Enrollment)
class EnrollmentAdmin(CourseColumnMixin, BigTableAdmin):
    # What an instructor scans for first, left to right; the e-mail is searchable, and the
    # course, whose title can be long, comes last (a 1400 px screen shows every column).
    list_display = [
        "user",
        "status",
        "progress_percent",
        "enrolled",
        "completed",
        "course_title",
    ]
    list_select_related = ["user", "course"]
    list_filter = [
        "status",
        CourseListFilter,
        ("enrolled_at", admin.DateFieldListFilter),
        ("completed_at", admin.DateFieldListFilter),
    ]
    date_hierarchy = "enrolled_at"
    raw_id_fields = ["user"]
    autocomplete_fields = ["course"]
    actions = admin_actions.ENROLLMENT_ACTIONS

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "certificate_url":  # the API's rule, as in the certify action
            return admin_actions.certificate_url_field(label="Certificate URL")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def can_change_by_role(self, request, obj=None):
        if obj is None:  # the list: course staff (of any course) and admins
            return self.can_view_by_role(request)
        return can_move_enrollment(request.user, course_id=obj.course_id)

    def get_queryset(self, request):
        # Computed for the page's rows only (the paginator's count does not select it).
        return (
            super()
            .get_queryset(request)
            .annotate(progress=selectors.any_course_progress_expression())
        )

    @admin.display(description="progress")
    def progress_percent(self, obj):
        return f"{round2(obj.progress):.2f} %"

    @admin.display(description="enrolled", ordering="enrolled_at")
    def enrolled(self, obj):
        return compact_datetime(obj.enrolled_at)

    @admin.display(description="completed", ordering="completed_at")
    def completed(self, obj):
        return compact_datetime(obj.completed_at) if obj.completed_at else "-"

    def has_add_permission(self, request):
        return super().has_add_permission(request) or self.can_view_by_role(request)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["user", "course"]})]
        return [
            (None, {"fields": ["user", "course", "status", "certificate_url", "metadata"]}),
            ("Dates", {"fields": ["enrolled_at", "completed_at", "created_at", "updated_at"]}),
            ("Progress", {"fields": ["course_progress", "progress_rows"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "user",
            "course",
            "enrolled_at",
            "completed_at",
            "created_at",
            "updated_at",
            "course_progress",
            "progress_rows",
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        status = form.base_fields.get("status")
        if obj is not None and status is not None:  # offer only the moves the contract allows
            allowed = {obj.status, *ALLOWED_MOVES[obj.status]}
            status.choices = [c for c in EnrollmentStatus.choices if c[0] in allowed]
        return form

    def save_model(self, request, obj, form, change):
        if change:
            sent = {
                name: form.cleaned_data[name]
                for name in ("status", "certificate_url", "metadata")
                if name in form.changed_data
            }
            enrollment = services.update_enrollment(obj.pk, **sent)
        else:
            enrollment, _ = services.enrol(user_id=obj.user_id, course_id=obj.course_id)
        obj.pk = enrollment.pk
        obj.refresh_from_db()

    @admin.display(description="course progress")
    def course_progress(self, obj):
        progress = selectors.enrollment_progress(enrollment_ids=[obj.pk]).get(obj.pk, 0)
        return f"{round2(progress):.2f} %"

    @admin.display(description="progress rows")
    def progress_rows(self, obj):
        """Every content item of the course, with the learner's row when there is one."""
        rows = {
            row.content_id: row
            for row in ContentProgress.objects.filter(user_id=obj.user_id, course_id=obj.course_id)
        }
        contents = CourseContent.objects.filter(course_id=obj.course_id).order_by("position", "id")
        lines = []
        for content in contents:
            row = rows.get(content.pk)
            if row is None:
                lines.append((content.position, content.title, "no activity", "", "", ""))
                continue
            url = reverse("admin:progress_contentprogress_change", args=[row.pk])
            link = format_html('<a href="{}">{}</a>', url, row.get_status_display())
            updated = date_format(localtime(row.updated_at), "DATETIME_FORMAT")
            lines.append(
                (content.position, content.title, link, row.percent, row.duration, updated)
            )
        if not lines:
            return "This course has no content."
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", lines
        )
        return format_html(
            '<table class="progress-rows"><thead><tr><th>#</th><th>content</th><th>status</th>'
            "<th>percent</th><th>minutes</th><th>updated</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )


class ContentProgressForm(forms.ModelForm):
    class Meta:
        model = ContentProgress
        fields = ["user", "course", "content", "status", "percent", "duration", "metadata"]

    def clean(self):
        cleaned = super().clean()
        course, content = cleaned.get("course"), cleaned.get("content")
        if course is not None and content is not None and content.course_id != course.pk:
            self.add_error("content", "This content is not part of the selected course.")
        return cleaned


@admin.register(ContentProgress)
class ContentProgressAdmin(CourseColumnMixin, BigTableAdmin):
    form = ContentProgressForm
    # Who, which item, how far, how long, when; the course (a long title) last.
    list_display = [
        "user",
        "content",
        "status",
        "percent",
        "minutes",
        "updated",
        "course_title",
    ]
    list_select_related = ["user", "course", "content"]
    list_filter = ["status", CourseListFilter, ("updated_at", admin.DateFieldListFilter)]
    raw_id_fields = ["user", "content"]
    autocomplete_fields = ["course"]

    def can_change_by_role(self, request, obj=None):
        return can_correct_progress(request.user)

    @admin.display(description="minutes", ordering="duration")
    def minutes(self, obj):
        return obj.duration

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj):
        return compact_datetime(obj.updated_at)

    def has_add_permission(self, request):
        return super().has_add_permission(request) or can_correct_progress(request.user)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "course", "content", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        def sent(name):  # fields left as they were are not sent: they keep their stored value
            return form.cleaned_data[name] if name in form.changed_data else None

        row = services.record_progress(
            user_id=obj.user_id,
            course_id=obj.course_id,
            content_id=obj.content_id,
            status=obj.status,
            percent=sent("percent"),
            duration=sent("duration"),
            metadata=sent("metadata"),
            exact=can_record_for_anyone(request.user),
        )
        obj.pk = row.pk
        obj.refresh_from_db()


# Webhook subscriptions and deliveries (superusers only).
from progress import admin_webhooks  # noqa: E402, F401
