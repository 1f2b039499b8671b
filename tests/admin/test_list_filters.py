"""List filters and the date hierarchy: a bad value is "?e=1", never a 500."""

import pytest

from tests.admin.tools import (
    CONTENTS,
    COURSES,
    ENROLLMENTS,
    PROGRESS,
    listed,
)

# --- list filters and the date hierarchy: a bad value is "?e=1", never a 500 ----------------


@pytest.mark.parametrize(
    "url",
    [
        f"{ENROLLMENTS}?course=abc",
        f"{ENROLLMENTS}?course=1%00",
        f"{ENROLLMENTS}?course=%D9%A1",
        f"{ENROLLMENTS}?status__exact=%00",
        f"{ENROLLMENTS}?q=%00",
        f"{ENROLLMENTS}?enrolled_at__year=9999",
        f"{ENROLLMENTS}?enrolled_at__year=9999&enrolled_at__month=12",
        f"{ENROLLMENTS}?enrolled_at__year=0",
        f"{ENROLLMENTS}?enrolled_at__year=abc",
        f"{PROGRESS}?course=abc",
        f"{PROGRESS}?status__exact=%00",
        f"{COURSES}?created_at__year=9999",
        f"{COURSES}?created_at__year=9999&created_at__month=12&created_at__day=31",
        f"{CONTENTS}?course=x",
    ],
)
def test_bad_filter_values_are_the_admins_bad_filter_page(as_superuser, world, url):
    response = as_superuser.get(url)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    assert as_superuser.get(response["Location"]).status_code == 200


def test_a_valid_year_still_filters(as_superuser, world):
    year = world.enrollment["alice"].enrolled_at.year
    assert len(listed(as_superuser.get(f"{ENROLLMENTS}?enrolled_at__year={year}"))) == 4
    assert listed(as_superuser.get(f"{ENROLLMENTS}?enrolled_at__year=9998")) == []


def test_too_many_form_fields_are_a_400(as_superuser, world):
    fields = {f"field{i}": "1" for i in range(1001)}
    assert as_superuser.post(f"{ENROLLMENTS}add/", fields).status_code == 400
    assert as_superuser.get(ENROLLMENTS, fields).status_code == 400
