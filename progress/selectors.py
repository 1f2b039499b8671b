"""Every cross-row read. The database aggregates and filters; Python only shapes the rows (on
PostgreSQL the database writes the JSON of the big lists too: see "JSON written by PostgreSQL")."""

import functools
from collections import defaultdict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import OrderBy, RawSQL
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from courseprogress import replicas
from courseprogress.exceptions import InvalidQuery, NotFound
from courseprogress.models import Course, CourseContent
from courseprogress.renderers import json_fragment
from progress import read_cache, rules
from progress.filters import (
    ACTIVITY_PARAMS,
    COURSE_PAGE_PARAMS,
    ActivityFilter,
    CourseLearnersFilter,
    activities_pagination,
    course_page_pagination,
    reject_blank_or_repeated,
    relevant_params,
    validated_params,
)
from progress.formatting import (
    ACTIVITY_FIELDS,
    ENROLLMENT_FIELDS,
    ENROLLMENT_VALUES,
    PROGRESS_FIELDS,
    PROGRESS_VALUES,
    OutputField,
    format_activity,
    format_enrollment,
    format_progress,
    iso,
    json_object_sql,
    round2,
)
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus

User = get_user_model()


def ensure_course_and_user(*, course_id: int | None = None, user_id: int | None = None) -> None:
    """404 for a course, then a user, given that does not exist, in one query (None: nothing
    usable to look up)."""
    if course_id is None:
        if user_id is not None and not User.objects.filter(pk=user_id).exists():
            raise NotFound("User not found.")
        return
    course = Course.objects.filter(pk=course_id)
    if user_id is not None:
        course = course.annotate(user_exists=Exists(User.objects.filter(pk=user_id)))
    found = course.values_list("user_exists" if user_id is not None else "pk", flat=True).first()
    if found is None:
        raise NotFound("Course not found.")
    if not found:
        raise NotFound("User not found.")


def content_count(course_id: int) -> int:
    """How many content items the course has; 404 when the course does not exist."""
    count = (
        Course.objects.filter(pk=course_id)
        .annotate(n=Count("contents"))
        .values_list("n", flat=True)
        .first()
    )
    if count is None:
        raise NotFound("Course not found.")
    return count


def content_count_at(course_id: int) -> tuple[int, str | None]:
    """content_count(), and the primary's WAL position read in the same query when replicas
    may compute (else None): where a replica must have replayed to before it answers 3.6."""
    if not read_cache.reads_position():
        return content_count(course_id), None
    found = (
        Course.objects.filter(pk=course_id)
        .annotate(n=Count("contents"), position=RawSQL("pg_current_wal_lsn()::text", []))
        .values_list("n", "position")
        .first()
    )
    if found is None:
        raise NotFound("Course not found.")
    return found


# A learner's activity logs: newest update first.
LOG_ORDER = ("-updated_at", "-id")


def _activity_rows(*, course_id: int, user_ids) -> QuerySet:
    return (
        ContentProgress.objects.filter(course_id=course_id, user_id__in=user_ids)
        .order_by(*LOG_ORDER)
        .values(*PROGRESS_VALUES)
    )


# --- JSON written by PostgreSQL -----------------------------------------------------------------
#
# On PostgreSQL the big lists (3.1's rows, 3.2's and 3.6's learners with their rows) are written
# as JSON text by the database, from the same declarations the Python formatters are built from
# (progress/formatting.py), and handed to the renderer (and the cache) as JSON fragments: the
# rows never become Python objects. The queries are the ORM's own (filters, sorting, the progress
# expression), wrapped in one statement. Elsewhere (SQLite) the Python formatters write them;
# tests/test_json_from_database.py holds both equal.


def json_from_database(alias: str) -> bool:
    return connections[alias].vendor == "postgresql"


def _sql(queryset: QuerySet, alias: str) -> tuple[str, tuple]:
    sql, params = queryset.query.get_compiler(using=alias).as_sql()
    return sql, tuple(params)


def _json_list_sql(
    fields: tuple[OutputField, ...],
    source: str,
    ordering: tuple[str, ...],
    time_zone: str | None = None,
) -> str:
    """A JSON array of the objects of `fields` over the rows of `source`, in `ordering`
    (values() names, "-" for descending), as an aggregate expression; "[]" for no rows."""
    order = ", ".join(
        f'{source}."{name.lstrip("-")}"{" DESC" if name.startswith("-") else ""}'
        for name in ordering
    )
    row = json_object_sql(fields, source, time_zone)
    return f"'[' || COALESCE(string_agg({row}, ',' ORDER BY {order}), '') || ']'"


def _fragment(text: str | None):
    return json_fragment(text.encode()) if text is not None else None


def _values_sql(model, names: tuple[str, ...], where: tuple[str, ...]) -> str:
    """SELECT of the columns values(*names) reads, named as values() names them, filtered by
    `where` (attribute = %s each): a plain statement for the hottest read."""
    qn = connection.ops.quote_name
    columns = {field.attname: field.column for field in model._meta.concrete_fields}
    select = ", ".join(f"{qn(columns[name])} AS {qn(name)}" for name in names)
    condition = " AND ".join(f"{qn(columns[name])} = %s" for name in where)
    return f"SELECT {select} FROM {qn(model._meta.db_table)} WHERE {condition}"


@functools.cache
def _learner_parts_sql(time_zone: str) -> tuple[str, str]:
    """3.1's two scalar subqueries: the enrollment object and the rows (parameters: user,
    course each), built once per TIME_ZONE: building them through the ORM on every miss cost
    as much as running them."""
    where = ("user_id", "course_id")
    enrollment = _values_sql(Enrollment, ENROLLMENT_VALUES, where)
    rows = _values_sql(ContentProgress, PROGRESS_VALUES, where)
    enrollment_json = json_object_sql(ENROLLMENT_FIELDS, "e", time_zone)
    rows_json = _json_list_sql(PROGRESS_FIELDS, "r", LOG_ORDER, time_zone)
    return (
        f"(SELECT {enrollment_json} FROM ({enrollment}) e)",
        f"(SELECT {rows_json} FROM ({rows}) r)",
    )


def _learner_sql(time_zone: str) -> str:
    """3.1 as one statement (parameters: user, course, user, course)."""
    enrollment, rows = _learner_parts_sql(time_zone)
    return f"SELECT {enrollment}, {rows}"


@functools.cache
def _learner_stamped_sql(time_zone: str) -> str:
    """The learner's stamp (read_cache.learner_stamp_sql; NULL when not enrolled) and 3.1 in
    one statement (parameters: user, course, three times): a miss with no entry to check."""
    enrollment, rows = _learner_parts_sql(time_zone)
    return f"SELECT {read_cache.learner_stamp_sql()}, {enrollment}, {rows}"


def _learner_json(*, course_id: int, user_id: int, alias: str) -> tuple:
    """3.1 in one statement: the enrollment object (None when not enrolled) and the rows."""
    with connections[alias].cursor() as cursor:
        cursor.execute(_learner_sql(settings.TIME_ZONE), (user_id, course_id, user_id, course_id))
        enrollment, rows = cursor.fetchone()
    return _fragment(enrollment), _fragment(rows)


def _learner_stamped(*, course_id: int, user_id: int) -> tuple[str | None, dict]:
    """read_cache.cached_at_once's one-statement miss for 3.1: (the learner's stamp, or None
    when not enrolled; 3.1's result)."""
    ids = (user_id, course_id)
    with connection.cursor() as cursor:
        cursor.execute(_learner_stamped_sql(settings.TIME_ZONE), ids * 3)
        stamp, enrollment, rows = cursor.fetchone()
    if enrollment is None:  # an enrollment proves both exist; without one, check
        ensure_course_and_user(course_id=course_id, user_id=user_id)
    return stamp, {"enrollments": _fragment(enrollment), "activityLogs": _fragment(rows)}


def _order_sql(queryset: QuerySet, source: str) -> str:
    """The ordering of `queryset` (order_by() of values() names, or OrderBy(F(name)) as
    CourseLearnersFilter sorts) on the columns of `source`, a subquery of its values()."""
    terms = []
    for item in queryset.query.order_by:
        if isinstance(item, str):
            name, descending, nulls = item.lstrip("-"), item.startswith("-"), ""
        elif isinstance(item, OrderBy) and isinstance(item.expression, F):
            name, descending = item.expression.name, item.descending  # type: ignore[attr-defined]
            nulls = " NULLS LAST" if item.nulls_last else " NULLS FIRST" if item.nulls_first else ""
        else:
            raise TypeError(f"Cannot order the JSON of a page by {item!r}")
        terms.append(f'{source}."{name}"{" DESC" if descending else ""}{nulls}')
    return ", ".join(terms)


def _sorts_by(queryset: QuerySet, name: str) -> bool:
    """Whether `queryset` is ordered by the column or annotation `name` (as _order_sql reads
    its ordering)."""
    for item in queryset.query.order_by:
        term = getattr(item.expression, "name", None) if isinstance(item, OrderBy) else item
        if isinstance(term, str) and term.lstrip("-") == name:
            return True
    return False


def _learner_entries_statement(
    enrollments: QuerySet,
    *,
    course_id: int,
    alias: str,
    page: slice | None = None,
    time_zone: str | None = None,
) -> tuple[str, tuple]:
    """The statement of _learner_entries_json (its SQL and parameters); local dates and
    times in `time_zone` (default: TIME_ZONE)."""
    selected = enrollments.values(*ENROLLMENT_VALUES, "progress")
    if page is not None and not _sorts_by(enrollments, "progress"):
        # Slice first, then the progress of the page's rows only: under a LIMIT the
        # planner computes the target list (the progress subquery) for every row it
        # skips to reach OFFSET too (360 rows at page 18 instead of 20).
        selected = selected.filter(pk__in=enrollments.values("pk")[page])
    elif page is not None:
        selected = selected[page]
    learners_sql, learners_params = _sql(selected, alias)
    rows_sql = _values_sql(ContentProgress, PROGRESS_VALUES, ("course_id",))
    rows_params = (course_id,)
    total_sql, total_params = "NULL", ()
    if page is not None:  # counted once (an InitPlan); the progress expression is not run
        count_sql, total_params = _sql(enrollments.order_by().values("pk"), alias)
        total_sql = f"(SELECT COUNT(*) FROM ({count_sql}) c)"
    ordering = f" ORDER BY {_order_sql(enrollments, 'l')}" if enrollments.query.order_by else ""
    sql = (
        f'SELECT l."user_id", l."progress", {total_sql},'
        f" {json_object_sql(ENROLLMENT_FIELDS, 'l', time_zone)},"
        f" (SELECT {_json_list_sql(PROGRESS_FIELDS, 'r', LOG_ORDER, time_zone)}"
        f" FROM ({rows_sql}) r"
        f' WHERE r."user_id" = l."user_id")'
        f" FROM ({learners_sql}) l{ordering}"
    )
    return sql, total_params + rows_params + learners_params


def _run_learner_entries(sql: str, params: tuple, alias: str) -> tuple[list[dict], int | None]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    entries = [
        {
            "userId": user_id,
            "progress": round2(progress),
            "enrollments": _fragment(enrollment),
            "activityLogs": _fragment(rows),
        }
        for user_id, progress, _, enrollment, rows in found
    ]
    return entries, (found[0][2] if found else None)


def _learner_entries_json(
    enrollments: QuerySet, *, course_id: int, alias: str, page: slice | None = None
) -> tuple[list[dict], int | None]:
    """The 3.2 entries of `enrollments` (a course_learners() queryset, filtered and sorted) in
    one statement: each learner's progress, enrollment object and rows; with `page`, only
    that slice of them, in order, and the number of enrollments before slicing (None when the
    slice is empty: no row carried it)."""
    sql, params = _learner_entries_statement(
        enrollments, course_id=course_id, alias=alias, page=page
    )
    return _run_learner_entries(sql, params, alias)


# The course page's statement, compiled once per shape. Building it (course_learners(),
# django-filter's filtering and sorting, the ORM's compiler) cost ~7 ms of CPU a request, more
# than running it; what varies between requests of one shape is only the course id (a
# parameter) and the page's LIMIT and OFFSET (numbers the compiler writes into the SQL). The
# statement is compiled by the same code from stand-in values, which are then swapped for the
# request's; tests/test_json_from_database.py runs it on a new course every example.
_COURSE_STAND_IN = -918_273_645  # no course id, percent or count ever equals it
_OFFSET_STAND_IN, _LIMIT_STAND_IN = 900_000_007, 800_000_011
_LAST_OFFSET = 2**62


@functools.lru_cache(maxsize=256)
def _course_page_template(
    alias: str, time_zone: str, shape: tuple[tuple[str, str], ...]
) -> tuple[str, tuple, tuple[int, ...], str]:
    """(SQL, parameters, the positions of the course id among them, the LIMIT/OFFSET text to
    replace) of the course page of `shape` (the validated status, sortBy and order)."""
    filterset = CourseLearnersFilter(
        dict(shape), queryset=course_learners(course_id=_COURSE_STAND_IN)
    )
    if not filterset.is_valid():  # validated before: cannot happen
        raise InvalidQuery(filterset.errors)
    page = slice(_OFFSET_STAND_IN, _OFFSET_STAND_IN + _LIMIT_STAND_IN)
    sql, params = _learner_entries_statement(
        filterset.qs, course_id=_COURSE_STAND_IN, alias=alias, page=page, time_zone=time_zone
    )
    slots = tuple(
        i for i, value in enumerate(params) if type(value) is int and value == _COURSE_STAND_IN
    )
    limit_offset = f"LIMIT {_LIMIT_STAND_IN} OFFSET {_OFFSET_STAND_IN}"
    if sql.count(limit_offset) != 1 or str(_COURSE_STAND_IN) in sql or not slots:
        raise RuntimeError("The course page's statement no longer has the expected shape")
    return sql, params, slots, limit_offset


def _course_page_json(
    *, course_id: int, validated: dict, alias: str
) -> tuple[list[dict], int | None]:
    """_learner_entries_json of the course page `validated` (validated_params()) asks for,
    from the statement compiled once for its shape."""
    shape = tuple(
        (name, str(validated[name])) for name in ("status", "sortBy", "order") if name in validated
    )
    sql, params, slots, limit_offset = _course_page_template(alias, settings.TIME_ZONE, shape)
    values = list(params)
    for slot in slots:
        values[slot] = course_id
    limit = validated["limit"]
    # Any offset past the enrollments gives the same empty page; PostgreSQL's is a bigint.
    offset = min((validated["page"] - 1) * limit, _LAST_OFFSET)
    sql = sql.replace(limit_offset, f"LIMIT {int(limit)} OFFSET {int(offset)}")
    return _run_learner_entries(sql, tuple(values), alias)


def _rows_page_json(
    rows: QuerySet, fields: tuple[OutputField, ...], *, alias: str, page: slice
) -> tuple:
    """One page of `rows` (a filtered, sorted ContentProgress queryset) as a JSON array of the
    objects of `fields`, and how many rows there are before slicing, in one statement."""
    count_sql, count_params = _sql(rows.order_by().values("pk"), alias)
    page_sql, page_params = _sql(rows.values(*PROGRESS_VALUES)[page], alias)
    array = f"'[' || COALESCE(string_agg({json_object_sql(fields, 'r')}, ','"
    sql = (
        f"SELECT (SELECT COUNT(*) FROM ({count_sql}) c),"
        f" (SELECT {array} ORDER BY {_order_sql(rows, 'r')}), '') || ']' FROM ({page_sql}) r)"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, count_params + page_params)
        total, page_json = cursor.fetchone()
    return _fragment(page_json), total


# --- one learner's progress in a course -------------------------------------------------------


def learner_progress(*, course_id: int, user_id: int) -> dict:
    """The enrollment (or None) and the progress rows, newest update first."""
    alias = replicas.reading_on()
    if json_from_database(alias):
        enrollment_json, rows_json = _learner_json(
            course_id=course_id, user_id=user_id, alias=alias
        )
        if enrollment_json is None:  # an enrollment proves both exist; without one, check
            ensure_course_and_user(course_id=course_id, user_id=user_id)
        return {"enrollments": enrollment_json, "activityLogs": rows_json}
    enrollment = (
        Enrollment.objects.filter(course_id=course_id, user_id=user_id)
        .values(*ENROLLMENT_VALUES)
        .first()
    )
    if enrollment is None:  # an enrollment proves both exist; without one, check
        ensure_course_and_user(course_id=course_id, user_id=user_id)
    rows = _activity_rows(course_id=course_id, user_ids=[user_id])
    return {
        "enrollments": format_enrollment(enrollment) if enrollment else None,
        "activityLogs": [format_progress(row) for row in rows],
    }


def cached_learner_progress(*, course_id: int, user_id: int) -> dict:
    if json_from_database(DEFAULT_DB_ALIAS) and not replicas.enabled():
        return read_cache.cached_at_once(
            read_cache.learner_key(course_id, user_id),
            stamp=lambda: read_cache.learner_stamp(course_id=course_id, user_id=user_id),
            compute=lambda: learner_progress(course_id=course_id, user_id=user_id),
            stamp_and_compute=lambda: _learner_stamped(course_id=course_id, user_id=user_id),
            ttl_name="LEARNER_PROGRESS",
        )
    version = read_cache.learner_stamp(course_id=course_id, user_id=user_id)
    if version is None:
        return learner_progress(course_id=course_id, user_id=user_id)
    return read_cache.cached(
        read_cache.learner_key(course_id, user_id),
        version,
        lambda: learner_progress(course_id=course_id, user_id=user_id),
        ttl_name="LEARNER_PROGRESS",
    )


# --- one learner's activities -----------------------------------------------------------------


def activities_page(*, course_id: int, user_id: int, params) -> dict:
    """One learner's rows in a course, filtered, newest update first, one page of them."""
    reject_blank_or_repeated(params)
    filterset = ActivityFilter(
        params,
        queryset=ContentProgress.objects.filter(course_id=course_id, user_id=user_id).order_by(
            "-updated_at", "-id"
        ),
    )
    if not filterset.is_valid():
        raise InvalidQuery(filterset.errors)
    pagination = activities_pagination()
    alias = replicas.reading_on()
    if json_from_database(alias):  # one statement: the count and the page as JSON
        page, limit = pagination.parse(params)
        offset = min((page - 1) * limit, _LAST_OFFSET)  # past the end either way
        results, total = _rows_page_json(
            filterset.qs, ACTIVITY_FIELDS, alias=alias, page=slice(offset, offset + limit)
        )
        return {"results": results, "pagination": pagination.pagination(page, limit, total)}
    rows, meta = pagination.paginate(filterset.qs.values(*PROGRESS_VALUES), params)
    return {"results": [format_activity(row) for row in rows], "pagination": meta}


def cached_activities_page(*, course_id: int, user_id: int, params) -> dict:
    params = relevant_params(params, ACTIVITY_PARAMS)
    version = read_cache.learner_stamp(course_id=course_id, user_id=user_id)
    if version is None:  # not enrolled: check existence, do not cache
        ensure_course_and_user(course_id=course_id, user_id=user_id)
        return activities_page(course_id=course_id, user_id=user_id, params=params)
    validated = validated_params(ActivityFilter, params, activities_pagination())
    return read_cache.cached(
        read_cache.activities_key(course_id, user_id, validated),
        version,
        lambda: activities_page(course_id=course_id, user_id=user_id, params=params),
        ttl_name="LEARNER_PROGRESS",
    )


# --- per-learner course progress (course page, bulk) ------------------------------------------


def _score_total():
    """The sum of the learner's item scores in the enrollment's course, as a float expression
    on an Enrollment queryset: the total the database keeps on the enrollment, in hundredths
    (progress/total_sql.py), no longer summed over the rows on every read.

    int -> float -> / 100.0 is the double nearest the exact sum, as the cast of a decimal sum of
    the rows' scores is: every progress and every sort is the same to the last bit."""
    return Cast("progress_total", FloatField()) / Value(100.0, output_field=FloatField())


def progress_expression(contents: int):
    """A learner's course progress as a database expression on an Enrollment queryset.

    Each content item scores by rules.STATUS_SCORES (100 when COMPLETED, else its percent), or
    0 without a row; the progress is the mean over all of the course's items.
    """
    if not contents:
        return Value(0.0, output_field=FloatField())
    return _score_total() / Value(float(contents), output_field=FloatField())


def _progress_over(count):
    """progress_expression with the course's content count as a database expression."""
    return Coalesce(_score_total() / NullIf(Cast(count, FloatField()), Value(0.0)), Value(0.0))


def any_course_progress_expression():
    """progress_expression for enrollments of any course (the admin's list): the course's
    content count comes from a subquery per row, so only use it on a page of rows."""
    contents = (
        CourseContent.objects.filter(course_id=OuterRef("course_id"))
        .order_by()
        .values("course_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return _progress_over(Subquery(contents))


def course_learners(*, course_id: int, contents: int | None = None) -> QuerySet:
    """Enrollments of a course annotated with each learner's progress (3.2 filters and sorts).
    Without `contents`, the content count is counted in the same statement (once: the
    subquery does not depend on the row)."""
    if contents is None:
        count = (
            CourseContent.objects.filter(course_id=course_id)
            .order_by()
            .values("course_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        progress = _progress_over(Subquery(count))
    else:
        progress = progress_expression(contents)
    return Enrollment.objects.filter(course_id=course_id).annotate(progress=progress)


def learner_entries(enrollments: list[dict], *, course_id: int) -> list[dict]:
    """{"userId", "progress", "enrollments", "activityLogs"} for each enrollment, in order.

    One query for the activity logs of all of them.
    """
    user_ids = [enrollment["user_id"] for enrollment in enrollments]
    logs = defaultdict(list)
    if user_ids:
        for row in _activity_rows(course_id=course_id, user_ids=user_ids):
            logs[row["user_id"]].append(format_progress(row))
    return [
        {
            "userId": enrollment["user_id"],
            "progress": round2(enrollment["progress"]),
            "enrollments": format_enrollment(enrollment),
            "activityLogs": logs[enrollment["user_id"]],
        }
        for enrollment in enrollments
    ]


def course_page(
    *, course_id: int, params, contents: int | None = None, validated: dict | None = None
) -> dict:
    """3.2: one page of the course's learners, each with progress and activity logs.
    `validated`: validated_params() of `params`, when the caller has it already."""
    reject_blank_or_repeated(params)
    pagination = course_page_pagination()
    alias = replicas.reading_on()
    if contents is None and json_from_database(alias):  # one statement: page, count, JSON
        if validated is None:
            validated = validated_params(CourseLearnersFilter, params, pagination)
        entries, total = _course_page_json(course_id=course_id, validated=validated, alias=alias)
        if total is None:  # a page past the end, or nobody enrolled
            total = _course_learners_filtered(course_id, params, contents).count()
        page, limit = validated["page"], validated["limit"]
        return {"results": entries, "pagination": pagination.pagination(page, limit, total)}
    enrollments, meta = pagination.paginate(
        _course_learners_filtered(course_id, params, contents).values(
            *ENROLLMENT_VALUES, "progress"
        ),
        params,
    )
    return {"results": learner_entries(enrollments, course_id=course_id), "pagination": meta}


def _course_learners_filtered(course_id: int, params, contents: int | None) -> QuerySet:
    """course_learners() filtered and sorted as the query parameters say (400 on bad ones)."""
    filterset = CourseLearnersFilter(
        params, queryset=course_learners(course_id=course_id, contents=contents)
    )
    if not filterset.is_valid():
        raise InvalidQuery(filterset.errors)
    return filterset.qs


def cached_course_page(*, course_id: int, params, stamp: read_cache.Stamp | None) -> dict:
    """3.2 through the cache, checked against `stamp`: the course's, read in this request (by
    policy.CanViewCourse, with the staff check); None when the course does not exist."""
    params = relevant_params(params, COURSE_PAGE_PARAMS)
    if stamp is None:
        raise NotFound("Course not found.")
    validated = validated_params(CourseLearnersFilter, params, course_page_pagination())
    return read_cache.cached(
        read_cache.course_page_key(course_id, validated),
        stamp,
        lambda: course_page(course_id=course_id, params=params, validated=validated),
        ttl_name="COURSE_PAGE",
    )


def bulk_progress_at(
    *, course_id: int, user_ids: list[int], contents: int, position: str | None
) -> list[dict]:
    """3.6, computed where every write up to `position` (content_count_at) is visible."""
    return replicas.compute_at(
        position,
        lambda: bulk_progress(course_id=course_id, user_ids=user_ids, contents=contents),
    )


def bulk_progress(*, course_id: int, user_ids: list[int], contents: int) -> list[dict]:
    """3.6: the 3.2 entry of each user, in the order asked; null enrollment when not enrolled."""
    enrollments = course_learners(course_id=course_id, contents=contents).filter(
        user_id__in=user_ids
    )
    alias = replicas.reading_on()
    if json_from_database(alias):
        found, _ = _learner_entries_json(enrollments, course_id=course_id, alias=alias)
    else:
        found = learner_entries(
            list(enrollments.values(*ENROLLMENT_VALUES, "progress")), course_id=course_id
        )
    entries = {entry["userId"]: entry for entry in found}
    return [
        entries.get(user_id)
        or {"userId": user_id, "progress": 0.0, "enrollments": None, "activityLogs": []}
        for user_id in user_ids
    ]


# --- course analytics -------------------------------------------------------------------------


def course_analytics(*, course_id: int) -> dict:
    """Course analytics in three aggregate queries; no individual learner appears.

    1. the course (404 when missing) and its enrollments, with the sum of their progress
    totals (the enrolled learners' scores, kept by the database: progress/total_sql.py); 2. one
    GROUP BY over the course's progress rows gives every per-item figure; 3. the items in course
    order. Python only adds up one line per content item (bench/RESULTS.md has the plans).
    """
    completed = rules.FINISHED
    stats = Course.objects.filter(pk=course_id).aggregate(
        course=Count("id", distinct=True),
        total=Count("enrollments"),
        active=Count("enrollments", filter=Q(enrollments__status=EnrollmentStatus.IN_PROGRESS)),
        completed=Count("enrollments", filter=Q(enrollments__status__in=completed)),
        completion_time=Avg(
            ExpressionWrapper(
                F("enrollments__completed_at") - F("enrollments__enrolled_at"),
                output_field=DurationField(),
            ),
            filter=Q(enrollments__completed_at__isnull=False),
        ),
        # The enrolled learners' scores (hundredths), as kept on their enrollments.
        score=Sum("enrollments__progress_total"),
    )
    if not stats["course"]:
        raise NotFound("Course not found.")

    per_content = {
        content_id: (rows, completions, avg_duration)
        for content_id, rows, completions, avg_duration in (
            ContentProgress.objects.filter(course_id=course_id)
            .order_by()
            .values("content_id")
            .annotate(
                rows=Count("id"),
                completions=Count("id", filter=Q(status=ProgressStatus.COMPLETED)),
                avg_duration=Avg(Cast("duration", FloatField())),
            )
            .values_list("content_id", "rows", "completions", "avg_duration")
        )
    }
    content_ids = list(
        CourseContent.objects.filter(course_id=course_id)
        .order_by("position", "id")
        .values_list("id", flat=True)
    )
    content_engagement = []
    for pk in content_ids:
        _, completions, avg_duration = per_content.get(pk, (0, 0, 0.0))
        content_engagement.append(
            {
                "contentId": pk,
                "completionCount": completions,
                "avgDuration": round2(avg_duration or 0.0),
            }
        )
    total_rows = sum(entry[0] for entry in per_content.values())

    total = stats["total"]
    contents = len(content_ids)
    # float(hundredths) / 100 is the double nearest the exact sum, as float(Decimal sum) was.
    total_score = float(stats["score"] or 0) / 100
    average_progress = total_score / (contents * total) if contents and total else 0
    completion_time = stats["completion_time"]
    return {
        "totalEnrollments": total,
        "activeUsers": stats["active"],
        "completedUsers": stats["completed"],
        "averageProgress": round2(average_progress),
        "completionRate": round2(100 * stats["completed"] / total) if total else 0,
        "averageCompletionTime": (
            round2(completion_time.total_seconds() / 86400) if completion_time is not None else None
        ),
        "totalActivities": total_rows,
        "contentEngagement": content_engagement,
        "computedAt": iso(timezone.now()),
    }


def cached_course_analytics(*, course_id: int) -> dict:
    return course_analytics_at(course_id=course_id, stamp=read_cache.course_stamp_at(course_id))


def course_analytics_at(*, course_id: int, stamp: read_cache.Stamp | None) -> dict:
    """3.5 through the cache, checked against `stamp`: the course's, read in this request (the
    API's by policy.CanViewCourse, with the staff check); None when the course does not
    exist."""
    if stamp is None:
        raise NotFound("Course not found.")
    return read_cache.cached(
        read_cache.analytics_key(course_id),
        stamp,
        lambda: course_analytics(course_id=course_id),
        ttl_name="COURSE_ANALYTICS",
        once=True,
    )


# --- admin pages: reads for the enrollment page, the CSV export, the dashboard ----------------


def enrollment_progress(*, enrollment_ids) -> dict[int, float]:
    """Each enrollment's course progress (the `progress` of 3.2), by enrollment id.

    One query for the courses and their content counts, then one per course among them.
    """
    courses = Enrollment.objects.filter(pk__in=enrollment_ids).values("course_id")
    content_counts = dict(
        Course.objects.filter(pk__in=courses).annotate(n=Count("contents")).values_list("pk", "n")
    )
    progress: dict[int, float] = {}
    for course_id, contents in content_counts.items():
        learners = course_learners(course_id=course_id, contents=contents)
        progress.update(learners.filter(pk__in=enrollment_ids).values_list("pk", "progress"))
    return progress


def progress_rows_of(enrollments: QuerySet) -> QuerySet:
    """The progress rows of the given enrollments' learners in their courses, in course order."""
    mine = enrollments.filter(user_id=OuterRef("user_id"), course_id=OuterRef("course_id"))
    return (
        ContentProgress.objects.filter(Exists(mine))
        .select_related("content")
        .order_by("course_id", "user_id", "content__position", "content_id")
    )


def enrollment_status_counts(*, course_id: int) -> dict[str, int]:
    """How many of the course's enrollments are in each status (0 for the absent ones)."""
    counts = dict.fromkeys(EnrollmentStatus.values, 0)
    counts.update(
        Enrollment.objects.filter(course_id=course_id)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return counts


def learners_furthest_behind(*, course_id: int, contents: int, limit: int = 10) -> list[dict]:
    """Learners still working on the course (ENROLLED, IN_PROGRESS), lowest progress first;
    ties go to whoever enrolled earliest."""
    return list(
        course_learners(course_id=course_id, contents=contents)
        .filter(status__in=rules.MOVES_AUTOMATICALLY)
        .order_by("progress", "enrolled_at", "user_id")
        .values("id", "user_id", "user__username", "status", "progress", "enrolled_at")[:limit]
    )
