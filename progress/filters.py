"""Query parameters of the list endpoints. A value outside its allowed set is a 400."""

import re
from datetime import UTC, date, datetime, time, timedelta

import django_filters
from django import forms
from django.db.models import F
from django.utils import timezone

from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus

# RFC 3339: a full date, or a date-time with seconds and an offset; years 1970 to 9998.
DATE_OR_DATE_TIME_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)
_DATE_OR_DATE_TIME = re.compile(DATE_OR_DATE_TIME_PATTERN)


class DateOrDateTimeField(forms.Field):
    """An RFC 3339 date, or date-time with its offset, from 1970 to 9998 (what the schema says).

    Cleans to (aware datetime, is_whole_day); a date alone starts at midnight in TIME_ZONE.
    """

    default_error_messages = {
        "invalid": (
            "Enter a date (YYYY-MM-DD) or a date-time with its offset "
            "(YYYY-MM-DDTHH:MM:SSZ or +HH:MM), from 1970 to 9998."
        ),
    }

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if not _DATE_OR_DATE_TIME.fullmatch(value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            if len(value) == 10:
                day = datetime.combine(date.fromisoformat(value), time.min)
                return timezone.make_aware(day, timezone.get_default_timezone()), True
            # In UTC: PostgreSQL refuses offsets beyond 15:59, which RFC 3339 allows.
            return datetime.fromisoformat(value).astimezone(UTC), False
        except ValueError:  # the pattern passed, the calendar did not (2025-02-30)
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class DateOrDateTimeFilter(django_filters.Filter):
    field_class = DateOrDateTimeField

    def __init__(self, *args, end: bool = False, **kwargs):
        self.end = end
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value is None:
            return qs
        moment, whole_day = value
        if not self.end:
            return qs.filter(**{f"{self.field_name}__gte": moment})
        if whole_day:  # the whole of that day in TIME_ZONE
            return qs.filter(**{f"{self.field_name}__lt": moment + timedelta(days=1)})
        return qs.filter(**{f"{self.field_name}__lte": moment})


def _after(start: datetime, end: tuple[datetime, bool]) -> bool:
    moment, whole_day = end
    return start >= moment + timedelta(days=1) if whole_day else start > moment


class ActivityFilter(django_filters.FilterSet):
    """3.4: startDate/endDate (inclusive, on the row's last update) and status."""

    startDate = DateOrDateTimeFilter(field_name="updated_at")
    endDate = DateOrDateTimeFilter(field_name="updated_at", end=True)
    status = django_filters.ChoiceFilter(field_name="status", choices=ProgressStatus.choices)

    class Meta:
        model = ContentProgress
        fields = []

    def is_valid(self):
        valid = super().is_valid()
        if valid:
            start = self.form.cleaned_data.get("startDate")
            end = self.form.cleaned_data.get("endDate")
            if start and end and _after(start[0], end):
                self.form.add_error("startDate", "startDate must not be after endDate.")
                return False
        return valid


SORT_FIELDS = {
    "progress": "progress",
    "enrollmentDate": "enrolled_at",
    "completionDate": "completed_at",
}


class CourseLearnersFilter(django_filters.FilterSet):
    """3.2: status, sortBy and order. Ties break on userId; a null completionDate sorts last."""

    status = django_filters.ChoiceFilter(field_name="status", choices=EnrollmentStatus.choices)
    sortBy = django_filters.ChoiceFilter(
        choices=[(name, name) for name in SORT_FIELDS], method="sort_later", empty_label=None
    )
    order = django_filters.ChoiceFilter(
        choices=[("asc", "asc"), ("desc", "desc")], method="sort_later", empty_label=None
    )

    class Meta:
        model = Enrollment
        fields = []

    def sort_later(self, queryset, name, value):
        return queryset  # sortBy and order act together, in filter_queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        field = F(SORT_FIELDS[self.form.cleaned_data.get("sortBy") or "enrollmentDate"])
        if self.form.cleaned_data.get("order") == "desc":
            ordering = field.desc(nulls_last=True)
        else:
            ordering = field.asc(nulls_last=True)
        return queryset.order_by(ordering, "user_id")
