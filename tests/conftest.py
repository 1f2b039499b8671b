"""Personas, token clients and a course with content, shared by every test."""

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
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


@pytest.fixture(autouse=True)
def _clean_cache():
    """Tests share one Redis (or one local-memory cache); start each from empty."""
    cache.clear()
    yield
    cache.clear()


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
