"""Fixtures of the command tests (the personas and courses are in tests/conftest.py)."""

import pytest

from progress import services


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The demo accounts get real passwords; a cheap hasher keeps these tests quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def two_enrolled(learner, other_learner, course):
    for user in (learner, other_learner):
        services.enrol(user_id=user.pk, course_id=course.pk)
