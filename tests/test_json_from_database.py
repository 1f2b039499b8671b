"""The JSON PostgreSQL writes for 3.1, 3.2, 3.4 and 3.6 equals the JSON the Python formatters write.

On PostgreSQL the selectors have the database write the enrollment and progress row objects
(progress/formatting.py: json_object_sql, built from the same declarations as the Python
formatters). Hypothesis draws learners and rows (every status, percents with .5 edges and 100,
durations 0 and large, timestamps with and without microseconds and around daylight-saving
changes of several TIME_ZONEs, metadata with unicode, nesting and 64-bit integers, enrollments
with and without a completion date or certificate, rows of learners with no enrollment), and
every read must give the same parsed body, key order and JSON types included, both ways.
Elsewhere (SQLite) only the Python path exists, so these tests need PostgreSQL.
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.http import QueryDict
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from courseprogress.models import Course, CourseContent
from courseprogress.renderers import dumps
from progress import selectors
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus
from tests.conftest import requires_postgres
from tests.helpers import PROGRESS_ROW_KEYS

pytestmark = [requires_postgres, pytest.mark.django_db]

ZONES = ["UTC", "Asia/Kolkata", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
# Instants (UTC) where one of the zones above changes its clocks.
CLOCK_CHANGES = [
    datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # Europe/Berlin, spring
    datetime(2025, 10, 26, 1, 0, tzinfo=UTC),  # Europe/Berlin, autumn
    datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # America/New_York, spring
    datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # America/New_York, autumn
    datetime(2025, 4, 5, 15, 0, tzinfo=UTC),  # Australia/Lord_Howe: half an hour back
]

moments = st.one_of(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, seconds, micro: change + timedelta(seconds=seconds, microseconds=micro),
        st.sampled_from(CLOCK_CHANGES),
        st.integers(-7200, 7200),
        st.sampled_from([0, 0, 999, 999_999, 500_000, 123_456]),
    ),
)
timestamps = st.one_of(moments, moments.map(lambda moment: moment.replace(microsecond=0)))
percents = st.one_of(
    st.sampled_from(["0", "0.5", "12.5", "33.33", "50.05", "66.67", "99.99", "99.5", "100"]),
    st.integers(0, 10_000).map(lambda n: f"{n / 100:.2f}"),
).map(Decimal)
durations = st.one_of(st.sampled_from([0, 1, 2**31 - 1]), st.integers(0, 2**31 - 1))
json_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | json_text
    | st.sampled_from(["\u2028", "é😀", '"\\/<>&']),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3)
    ),
    max_leaves=8,
)
metadata = st.dictionaries(json_text, json_values, max_size=4)

row = st.fixed_dictionaries(
    {
        "status": st.sampled_from(ProgressStatus.values),
        "percent": percents,
        "duration": durations,
        "metadata": metadata,
        "created_at": timestamps,
        "updated_at": timestamps,
    }
)
enrollment = st.fixed_dictionaries(
    {
        "status": st.sampled_from(EnrollmentStatus.values),
        "enrolled_at": timestamps,
        "completed_at": st.none() | timestamps,
        "certificate_url": st.sampled_from([None, "", "https://example.com/cert/1?a=b#c"]),
        "metadata": metadata,
        "created_at": timestamps,
        "updated_at": timestamps,
    }
)
learner = st.fixed_dictionaries(
    {
        "enrollment": st.none() | enrollment,
        # a row for some of the course's items (by index), at most one per item
        "rows": st.dictionaries(st.integers(0, 3), row, max_size=4),
    }
)
worlds = st.fixed_dictionaries(
    {
        "zone": st.sampled_from(ZONES),
        "items": st.integers(0, 4),
        "learners": st.lists(learner, min_size=1, max_size=5),
    }
)
activity_params = st.fixed_dictionaries(
    {
        "status": st.none() | st.sampled_from(ProgressStatus.values),
        "startDate": st.none()
        | st.sampled_from(["1970-01-01", "2025-03-30", "2025-11-02T06:00:00Z"]),
        "endDate": st.none() | st.sampled_from(["2025-11-02", "2100-12-31"]),  # never before
        "page": st.integers(1, 3),
        "limit": st.integers(1, 4),
    }
)
page_params = st.fixed_dictionaries(
    {
        "status": st.none() | st.sampled_from(EnrollmentStatus.values),
        "page": st.integers(1, 3),
        "limit": st.integers(1, 4),
    }
)


def build(world, django_user_model):
    course = Course.objects.create(title="Property")
    items = [
        CourseContent.objects.create(course=course, title=f"item {n}", position=n)
        for n in range(world["items"])
    ]
    users = []
    for index, spec in enumerate(world["learners"]):
        user = django_user_model.objects.create(username=f"property{index}")
        users.append(user)
        if spec["enrollment"] is not None:
            fields = spec["enrollment"]
            made = Enrollment.objects.create(user=user, course=course)
            Enrollment.objects.filter(pk=made.pk).update(**fields)  # no auto_now on update()
        for item, fields in spec["rows"].items():
            if item >= len(items):
                continue
            made = ContentProgress.objects.create(user=user, course=course, content=items[item])
            ContentProgress.objects.filter(pk=made.pk).update(**fields)
    return course, users


def body(data) -> str:
    """The JSON the renderer writes, parsed and written again: keys in order, types kept."""
    return json.dumps(json.loads(dumps(data)))


def both_ways(read):
    """read() with the JSON written by PostgreSQL, then by the Python formatters."""
    from_database = body(read())
    with mock.patch.object(selectors, "json_from_database", return_value=False):
        from_python = body(read())
    return from_database, from_python


class Rollback(Exception):
    pass


def in_rolled_back_transaction(check):
    """Each example writes its own world and leaves nothing behind for the next."""
    try:
        with transaction.atomic():
            check()
            raise Rollback
    except Rollback:
        pass


@settings(
    max_examples=40,
    deadline=None,
    # No shrinking: on a database it can take minutes; the failing example is printed as drawn.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    world=worlds,
    params=st.lists(page_params, min_size=1, max_size=2),
    activities=activity_params,
)
def test_database_json_equals_python_json(world, params, activities, django_user_model):
    def check():
        with override_settings(TIME_ZONE=world["zone"]):
            course, users = build(world, django_user_model)
            for user in users:  # 3.1, enrolled or not
                database, python = both_ways(
                    lambda user=user: selectors.learner_progress(
                        course_id=course.pk, user_id=user.pk
                    )
                )
                assert database == python
                query = QueryDict(mutable=True)  # 3.4
                query.update({k: str(v) for k, v in activities.items() if v is not None})
                database, python = both_ways(
                    lambda user=user, query=query: selectors.activities_page(
                        course_id=course.pk, user_id=user.pk, params=query
                    )
                )
                assert database == python, dict(query)
            for sort_by in ("progress", "enrollmentDate", "completionDate"):  # 3.2
                for order in ("asc", "desc"):
                    for extra in params:
                        query = QueryDict(mutable=True)
                        query.update({"sortBy": sort_by, "order": order})
                        query.update({k: str(v) for k, v in extra.items() if v is not None})
                        database, python = both_ways(
                            lambda query=query: selectors.course_page(
                                course_id=course.pk, params=query
                            )
                        )
                        assert database == python, dict(query)
            database, python = both_ways(  # 3.6, with a user who is not enrolled
                lambda: selectors.bulk_progress(
                    course_id=course.pk,
                    user_ids=[user.pk for user in users] + [users[0].pk + 1000],
                    contents=world["items"],
                )
            )
            assert database == python

    in_rolled_back_transaction(check)


def test_the_database_writes_every_kind_of_value(django_user_model, settings):
    """One fixed world, read back: the database's JSON carries what the contract says (not
    only the same as Python's): milliseconds truncated, local v_ fields, percent strings."""
    settings.TIME_ZONE = "Asia/Kolkata"
    world = {
        "zone": "Asia/Kolkata",
        "items": 2,
        "learners": [
            {
                "enrollment": {
                    "status": "COMPLETED",
                    "enrolled_at": datetime(2025, 10, 13, 17, 50, 51, 683999, tzinfo=UTC),
                    "completed_at": None,
                    "certificate_url": "",
                    "metadata": {"b": 1, "a": [2**63 - 1, "é\u2028"]},
                    "created_at": datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC),
                    "updated_at": datetime(2025, 10, 13, 18, 40, 0, tzinfo=UTC),
                },
                "rows": {
                    0: {
                        "status": "COMPLETED",
                        "percent": Decimal("12.5"),
                        "duration": 0,
                        "metadata": {},
                        "created_at": datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC),
                        "updated_at": datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC),
                    }
                },
            }
        ],
    }
    course, (user,) = build(world, django_user_model)
    result = json.loads(dumps(selectors.learner_progress(course_id=course.pk, user_id=user.pk)))
    enrollment, (log,) = result["enrollments"], result["activityLogs"]
    assert enrollment["enrollmentDate"] == "2025-10-13T17:50:51.683Z"
    assert (enrollment["v_created_date"], enrollment["v_created_time"]) == (
        "13-Oct-2025",
        "23:20:51",
    )
    assert enrollment["completionDate"] is None and enrollment["certificateUrl"] is None
    assert enrollment["metadata"] == {"a": [2**63 - 1, "é\u2028"], "b": 1}
    assert log["progressPercent"] == "12.50" and log["activityDuration"] == 0
    assert list(log) == PROGRESS_ROW_KEYS
