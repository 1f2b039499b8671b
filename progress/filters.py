"""Query parameters of the list endpoints: the FilterSets, and which parameters each endpoint
reads, validated before any cache lookup. A value outside its allowed set is a 400."""

import re
from datetime import UTC, date, datetime, time, timedelta

import django_filters
from django import forms
from django.db.models import F
from django.utils import timezone

from courseprogress.exceptions import InvalidQuery
from courseprogress.pagination import PageLimitPagination
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus

# RFC 3339: a full date, or a date-time with seconds and an offset; years 1970 to 9998.
DATE_OR_DATE_TIME_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)
_DATE_OR_DATE_TIME = re.compile(DATE_OR_DATE_TIME_PATTERN)


class ListedChoiceField(django_filters.fields.ChoiceField):
    """A choice whose error names the valid values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        values = ", ".join(str(value) for value, _ in self.choices if value not in ("", None))
        self.error_messages["invalid_choice"] = (
            f"%(value)s is not a valid choice; use one of: {values}."
        )


class ListedChoiceFilter(django_filters.ChoiceFilter):
    field_class = ListedChoiceField


# A "+" left unencoded in a URL's query string arrives as a space: "...T10:00:00 02:00".
_SPACE_FOR_PLUS = re.compile(r"T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})? [0-9]{2}:[0-9]{2}$")


class DateOrDateTimeField(forms.Field):
    """An RFC 3339 date, or date-time with its offset, from 1970 to 9998 (what the schema says).

    Cleans to (aware datetime, is_whole_day); a date alone starts at midnight in TIME_ZONE.
    """

    default_error_messages = {
        "invalid": (
            "Enter a date (YYYY-MM-DD) or a date-time with its offset "
            "(YYYY-MM-DDTHH:MM:SSZ or +HH:MM), from 1970 to 9998."
        ),
        "plus_as_space": (
            "The offset's + arrived as a space: in a URL query a + means a space, so send it "
            "encoded as %2B (2025-10-13T10:00:00%2B02:00), or give the time in UTC with Z."
        ),
    }

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if _SPACE_FOR_PLUS.search(value):
            raise forms.ValidationError(self.error_messages["plus_as_space"], code="invalid")
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
    status = ListedChoiceFilter(field_name="status", choices=ProgressStatus.choices)

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

    status = ListedChoiceFilter(field_name="status", choices=EnrollmentStatus.choices)
    sortBy = ListedChoiceFilter(
        choices=[(name, name) for name in SORT_FIELDS], method="sort_later", empty_label=None
    )
    order = ListedChoiceFilter(
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


# --- query-parameter hygiene: what the list endpoints read, validated before any cache lookup


ACTIVITY_PARAMS = ("startDate", "endDate", "status", "page", "limit")
COURSE_PAGE_PARAMS = ("status", "sortBy", "order", "page", "limit")


def activities_pagination() -> PageLimitPagination:
    return PageLimitPagination(default_limit=100, max_limit=1000)


def course_page_pagination() -> PageLimitPagination:
    return PageLimitPagination(default_limit=20, max_limit=100)


def relevant_params(params, names) -> dict:
    """The query parameters an endpoint reads; one given twice keeps its values (a 400 later)."""
    relevant = {}
    for name in names:
        if name in params:
            values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
            relevant[name] = values[0] if len(values) == 1 else values
    return relevant


def reject_blank_or_repeated(params: dict) -> None:
    """`?page=` or `?status=a&status=b` is a 400, not the default or one of the values."""
    errors = {}
    for name, value in params.items():
        if isinstance(value, list):
            errors[name] = ["Give this parameter once."]
        elif value == "":
            errors[name] = ["This field may not be blank."]
    if errors:
        raise InvalidQuery(errors)


def validated_params(filterset_class, params, pagination: PageLimitPagination) -> dict:
    """The parameters of a list endpoint as the values its page is made from; a 400 for any bad
    one. Cached pages are keyed on these, after validation: an entry is found only for a
    request that would have made it (`?limit=2%26order%3Ddesc` is a bad limit, not a hit on
    `?limit=2&order=desc`), and `?page=01` shares the entry of `?page=1`."""
    reject_blank_or_repeated(params)
    filterset = filterset_class(params, queryset=filterset_class._meta.model.objects.none())
    if not filterset.is_valid():
        raise InvalidQuery(filterset.errors)
    page, limit = pagination.parse(params)
    values = {"page": page, "limit": limit}
    for name, value in filterset.form.cleaned_data.items():
        if value not in (None, ""):
            values[name] = _canonical(value)
    return values


def _canonical(value):
    if isinstance(value, tuple | list):
        return [_canonical(item) for item in value]
    return value.isoformat() if hasattr(value, "isoformat") else value
