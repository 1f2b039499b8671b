"""The Django admin as the instructors' workplace (issue 5), the world its tests share.

World: "Python 101" (3 lessons) taught by `instructor`, with alice IN_PROGRESS (lesson 1 at 50 %,
10 min), bob COMPLETED (every lesson, 20/30/40 min) and carol ENROLLED (no activity); "Rust 201"
taught by `other_instructor`, with dave IN_PROGRESS.
"""

from types import SimpleNamespace

import pytest

from progress.models import Enrollment
from tests import factories
from tests.admin.tools import (
    staff,
)


@pytest.fixture
def world(make_user, course, contents, other_course, instructor, other_instructor):
    def learner(name, of_course):
        user = make_user(name)
        factories.enrol(user, of_course)
        return user

    alice, bob, carol = (learner(name, course) for name in ("alice", "bob", "carol"))
    dave = learner("dave", other_course)
    factories.record(alice, contents[0], "IN_PROGRESS", percent=50, duration=10)
    factories.complete(bob, contents, durations=(20, 30, 40))
    factories.record(dave, other_course.contents.get(), "IN_PROGRESS")
    return SimpleNamespace(
        course=course,
        contents=contents,
        other_course=other_course,
        instructor=staff(instructor),
        other_instructor=staff(other_instructor),
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        enrollment={
            user.username: Enrollment.objects.get(user=user) for user in (alice, bob, carol, dave)
        },
    )


@pytest.fixture
def as_instructor(client, world):
    client.force_login(world.instructor)
    return client


@pytest.fixture
def as_superuser(client, world, superuser):
    client.force_login(superuser)
    return client
