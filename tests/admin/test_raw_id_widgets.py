"""Raw-id widgets name only what the viewer may see."""

import re

import pytest

from tests.admin.tools import (
    ENROLLMENTS,
    PROGRESS,
)

# --- raw-id widgets name only what the viewer may see -----------------------------------------


def raw_id_label(response, field="user") -> str:
    """What the raw-id widget shows next to the id box (the stock template's <strong>)."""
    widget = response.context["adminform"].form[field]
    html = str(widget)
    start = html.find("<strong>")
    label = html[start + 8 : html.find("</strong>", start)] if start >= 0 else ""
    return re.sub(r"<[^>]+>", "", label)  # the name, without its link


def test_instructor_sees_no_username_behind_an_id_they_cannot_see(as_instructor, world, superuser):
    for stranger in (superuser, world.dave, world.other_instructor):
        response = as_instructor.get(f"{ENROLLMENTS}add/?user={stranger.pk}")
        assert response.status_code == 200
        assert raw_id_label(response) == ""
        assert stranger.username.encode() not in response.content


@pytest.mark.parametrize("who", ["alice", "carol", "instructor"])
def test_instructor_sees_the_names_of_their_own_learners_and_themself(as_instructor, world, who):
    user = world.instructor if who == "instructor" else getattr(world, who)
    response = as_instructor.get(f"{ENROLLMENTS}add/?user={user.pk}")
    assert raw_id_label(response) == user.username


@pytest.mark.parametrize("value", ["abc", "1%00", "99999999999999999999", "-1"])
def test_raw_id_widget_takes_any_value_without_a_500(as_instructor, world, value):
    response = as_instructor.get(f"{ENROLLMENTS}add/?user={value}")
    assert response.status_code == 200
    assert raw_id_label(response) == ""


def test_admins_see_every_username_behind_an_id(as_superuser, world):
    response = as_superuser.get(f"{ENROLLMENTS}add/?user={world.dave.pk}")
    assert raw_id_label(response) == "dave"
    response = as_superuser.get(f"{PROGRESS}add/?content={world.contents[0].pk}")
    assert raw_id_label(response, "content") == str(world.contents[0])
