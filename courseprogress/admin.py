"""The catalog in the admin, and the rule every admin page of the project follows.

Who sees what (contract section 1, "Roles"; section 5, "The Django admin"; the rule is
progress.policy's can_view_course, in its set form visible_course_ids):
- superusers and holders of `progress.view_all_progress` (admins) see every course;
- course staff (a CourseStaff row, OWNER or INSTRUCTOR) who are `is_staff` see only the courses
  they teach, and those courses' content, staff, enrollments and progress rows.
Course staff need no Django model permission: CourseStaff rows are the one source of truth, as
in the API. Django's model permissions still add rights on top (a superuser holds them all), but
never widen what an instructor's querysets contain.
"""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from courseprogress.models import Course, CourseContent, CourseStaff
from progress.policy import visible_course_ids

admin.site.site_header = "Course progress administration"
admin.site.site_title = "Course progress"
admin.site.index_title = "Courses, enrollments and progress"
admin.site.site_url = None  # the site is an API: no "View site" link


def visible_courses(user):
    """The courses this user may see in the admin: all for admins, else those they teach."""
    courses = visible_course_ids(user)
    return Course.objects.all() if courses is None else Course.objects.filter(pk__in=courses)


def visible_users(user):
    """The users this user may see in the admin: all for admins; for course staff themselves
    and the learners and staff of the courses they teach (whom their lists already show)."""
    User = get_user_model()
    courses = visible_course_ids(user)
    if courses is None:
        return User.objects.all()
    from progress.models import Enrollment

    return User.objects.filter(
        Q(pk=user.pk)
        | Exists(Enrollment.objects.filter(user_id=OuterRef("pk"), course_id__in=courses))
        | Exists(CourseStaff.objects.filter(user_id=OuterRef("pk"), course_id__in=courses))
    )


class ScopedRawIdWidget(ForeignKeyRawIdWidget):
    """A raw-id widget that names the object behind an id only when the viewer may see it.

    The stock widget labels any id with the object's name (`.../enrollment/add/?user=1` showed
    an instructor the username "admin"); here an id outside `queryset` gets no label, as an id
    that does not exist."""

    def __init__(self, rel, admin_site, *, queryset, **kwargs):
        super().__init__(rel, admin_site, **kwargs)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            obj = self.queryset.using(self.db).get(**{key: value})
        except (ValueError, TypeError, ValidationError, self.queryset.model.DoesNotExist):
            return "", ""
        opts = obj._meta
        try:
            url = reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
            )
        except NoReverseMatch:
            url = ""
        return Truncator(obj).words(14), url


class CourseListFilter(admin.SimpleListFilter):
    """A course filter that offers only the courses the user may see (the stock one lists all)."""

    title = "course"
    parameter_name = "course"

    def lookups(self, request, model_admin):
        return visible_courses(request.user).values_list("pk", "title")

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not (value.isascii() and value.isdigit()):  # ?course=abc: the admin's "bad filter"
            raise IncorrectLookupParameters(f"Not a course id: {value!r}")
        return queryset.filter(course_id=value)


class ValidatedChangeList(ChangeList):
    """A change list whose every filter value is checked before it reaches the database.

    A value the filters cannot use is the admin's IncorrectLookupParameters (a redirect to
    `?e=1`, "the filters were wrong"), never a 500:
    - a NUL character anywhere in the query string (PostgreSQL's text cannot hold it, so the
      query itself fails, long after the stock filters have accepted the value);
    - a value a filter or the date hierarchy cannot turn into a query: the stock date
      hierarchy builds "the next year" of `?<field>__year=9999` as year 10000 and crashes.
    """

    def get_filters(self, request):
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters("NUL characters are not allowed in filters.")
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class ValidatedChangeListMixin:
    """For every ModelAdmin of the project: lists through ValidatedChangeList."""

    def get_changelist(self, request, **kwargs):
        return ValidatedChangeList


class CourseScopedMixin:
    """Scopes querysets to the user's courses and grants course staff the right to view them.

    `course_lookup` is the path from the model to its course id. Subclasses widen
    `can_change_by_role` for what the contract lets a role change.
    """

    course_lookup = "course_id"

    def course_id_of(self, obj) -> int:
        """The course of obj (inlines are asked about their parent course)."""
        return obj.pk if isinstance(obj, Course) else obj.course_id

    def get_field_queryset(self, db, db_field, request):
        if db_field.related_model is Course:  # choices, and what a submitted id may be
            return visible_courses(request.user)
        return super().get_field_queryset(db, db_field, request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        courses = visible_course_ids(request.user)
        if courses is None:
            return queryset
        return queryset.filter(**{f"{self.course_lookup}__in": courses})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        widget = getattr(formfield, "widget", None)
        if type(widget) is ForeignKeyRawIdWidget:  # label only what the viewer may see
            formfield.widget = ScopedRawIdWidget(
                db_field.remote_field,
                self.admin_site,
                using=widget.db,
                queryset=self.raw_id_label_queryset(db_field, request),
            )
        return formfield

    def raw_id_label_queryset(self, db_field, request):
        model = db_field.related_model
        courses = visible_course_ids(request.user)
        if courses is None:
            return model._default_manager.all()
        if model is get_user_model():
            return visible_users(request.user)
        if model is Course:
            return visible_courses(request.user)
        if model is CourseContent:
            return CourseContent.objects.filter(course_id__in=courses)
        return model._default_manager.none()

    def can_view_by_role(self, request, obj=None) -> bool:
        """Admins, and the staff of obj's course (of any course when there is no obj)."""
        courses = visible_course_ids(request.user)
        if courses is None:
            return True
        return bool(courses) if obj is None else self.course_id_of(obj) in courses

    def can_change_by_role(self, request, obj=None) -> bool:
        return False

    def has_module_permission(self, request):
        return super().has_module_permission(request) or self.can_view_by_role(request)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self.can_view_by_role(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) or self.can_change_by_role(request, obj)


class CourseContentInline(CourseScopedMixin, admin.TabularInline):
    model = CourseContent
    fields = ["position", "title"]
    extra = 0


class CourseStaffInline(CourseScopedMixin, admin.TabularInline):
    model = CourseStaff
    fields = ["user", "role"]
    raw_id_fields = ["user"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


def _count(model, **match):
    """A per-row count as a subquery: cheap per page, no join that multiplies rows."""
    rows = model.objects.filter(**match).order_by().values(*match).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n")), 0)


@admin.register(Course)
class CourseAdmin(ValidatedChangeListMixin, CourseScopedMixin, admin.ModelAdmin):
    course_lookup = "pk"
    list_display = ["title", "content_items", "enrollment_count", "created_at", "dashboard_link"]
    search_fields = ["title"]
    date_hierarchy = "created_at"
    list_filter = [("created_at", admin.DateFieldListFilter)]
    inlines = [CourseContentInline, CourseStaffInline]

    def get_queryset(self, request):
        """The list's counts only on the list page: the course autocomplete of the enrollment
        and progress forms uses this queryset too, a keystroke at a time."""
        from progress.models import Enrollment

        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is None or not match.url_name.endswith("_changelist"):
            return queryset
        return queryset.annotate(
            content_items=_count(CourseContent, course_id=OuterRef("pk")),
            enrollment_count=_count(Enrollment, course_id=OuterRef("pk")),
        )

    @admin.display(description="content items", ordering="content_items")
    def content_items(self, obj):
        return obj.content_items

    @admin.display(description="enrollments", ordering="enrollment_count")
    def enrollment_count(self, obj):
        return obj.enrollment_count

    @admin.display(description="dashboard")
    def dashboard_link(self, obj):
        url = reverse("admin:courseprogress_course_dashboard", args=[obj.pk])
        return format_html('<a href="{}">Progress dashboard</a>', url)

    def dashboard_view(self, request, course_id: int):
        from progress.dashboard import course_dashboard

        return course_dashboard(request, course_id, admin_site=self.admin_site)

    def get_urls(self):
        view = self.admin_site.admin_view(self.dashboard_view)
        return [
            path("<int:course_id>/dashboard/", view, name="courseprogress_course_dashboard"),
            *super().get_urls(),
        ]


@admin.register(CourseContent)
class CourseContentAdmin(ValidatedChangeListMixin, CourseScopedMixin, admin.ModelAdmin):
    """Listed for browsing and for the content autocomplete of the progress form."""

    list_display = ["title", "course", "position"]
    list_select_related = ["course"]
    list_filter = [CourseListFilter]
    search_fields = ["title", "course__title"]
    autocomplete_fields = ["course"]
    ordering = ["course__title", "position", "id"]
