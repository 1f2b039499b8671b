"""Personas, token clients and a course with content, shared by every test."""

import uuid
from functools import partial

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.db import connection
from django.test.signals import setting_changed
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from courseprogress.models import Course, CourseContent, CourseStaff

requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL)"
)


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings):
    """Production serves hashed files from collectstatic's manifest; tests serve the sources."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hashing every persona's password with PBKDF2 would dominate the suite's run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The tests' own Redis keys: the Redis database REDIS_URL names may hold anybody's data (`make
# run` on the same URL uses the prefix "cp"), so the tests write under a prefix of this run's
# own and delete only keys under it, never the whole database (FLUSHDB is what cache.clear()
# does on Redis).
TEST_KEY_PREFIX = f"cptest-{uuid.uuid4().hex[:12]}"


def _private_key_prefix() -> None:
    default = settings.CACHES["default"]
    if default["BACKEND"] == "django_redis.cache.RedisCache":
        settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": TEST_KEY_PREFIX}}
        setting_changed.send(sender=None, setting="CACHES", value=settings.CACHES, enter=True)


_private_key_prefix()


def clear_test_cache(target=None) -> None:
    """Delete what the tests wrote to the cache, and nothing else: on Redis the keys under the
    tests' prefix (any version); local memory belongs to this process anyway."""
    target = target or caches["default"]
    if not hasattr(target, "delete_pattern"):
        target.clear()
        return
    prefix = target.key_prefix
    assert prefix, "a Redis cache without a key prefix would be cleared as a whole"
    connection = target.client.get_client(write=True)
    batch = []
    for key in connection.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            connection.unlink(*batch)
            batch = []
    if batch:
        connection.unlink(*batch)


@pytest.fixture(autouse=True)
def _clean_cache():
    """Tests share one Redis (or one local-memory cache); start each from empty."""
    clear_test_cache()
    yield
    clear_test_cache()


@pytest.fixture
def make_user(django_user_model):
    def make(username, *, perms=(), **extra):
        user = django_user_model.objects.create_user(
            username=username, password="pw-" + username, email=f"{username}@example.com", **extra
        )
        for codename in perms:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        return user

    return make


@pytest.fixture
def course(db):
    course = Course.objects.create(title="Python 101")
    for position in range(1, 4):
        CourseContent.objects.create(course=course, title=f"Lesson {position}", position=position)
    return course


@pytest.fixture
def contents(course):
    return list(course.contents.order_by("position"))


@pytest.fixture
def other_course(db):
    course = Course.objects.create(title="Rust 201")
    CourseContent.objects.create(course=course, title="Ownership", position=1)
    return course


@pytest.fixture
def learner(make_user):
    return make_user("learner")


@pytest.fixture
def other_learner(make_user):
    return make_user("other_learner")


@pytest.fixture
def instructor(make_user, course):
    user = make_user("instructor")
    CourseStaff.objects.create(course=course, user=user, role=CourseStaff.Role.INSTRUCTOR)
    return user


@pytest.fixture
def owner(make_user, course):
    user = make_user("owner")
    CourseStaff.objects.create(course=course, user=user, role=CourseStaff.Role.OWNER)
    return user


@pytest.fixture
def other_instructor(make_user, other_course):
    user = make_user("other_instructor")
    CourseStaff.objects.create(course=other_course, user=user, role=CourseStaff.Role.INSTRUCTOR)
    return user


@pytest.fixture
def admin_user(make_user):
    """An admin by permission, not a superuser."""
    return make_user("admin", perms=["view_all_progress"])


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")


@pytest.fixture
def system_user(make_user):
    return make_user("system", perms=["update_any_progress"])


@pytest.fixture
def client_for():
    def make(user=None):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def enrolled(learner, course):
    from progress import services

    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    return enrollment


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed(): ...` runs the on_commit callbacks of the writes in the block when it
    ends, as their commit would, without a transactional test (which empties every table after
    it)."""
    return partial(django_capture_on_commit_callbacks, execute=True)
