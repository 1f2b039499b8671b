"""Every endpoint, method and role, with ids that exist and ids that do not: the one contract of
who may do what (progress/policy.py). The endpoints' own test files test what happens once in.

One table: a row per request, a column per role, the expected status in each cell. Learners
and staff of other courses get 403 for ids that do not exist too, so nobody learns which exist.
A refused request changes nothing stored.
"""

from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import TestCase, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import policy, services
from progress.models import ContentProgress, Enrollment
from tests.conftest import clear_test_cache
from tests.helpers import snapshot

UPDATE = {
    "userId": "{learner}",
    "courseId": "{course}",
    "courseContentId": "{content}",
    "progressStatus": "IN_PROGRESS",
}
BULK = {"courseId": "{course}", "userIds": ["{learner}"]}
ENROL = {"courseId": "{course}", "userId": "{learner}"}
ROLES = (
    "anon",
    "learner",
    "other_learner",
    "instructor",
    "other_instructor",
    "owner",
    "admin_user",
    "system_user",
    "superuser",
)
MISSING = 987654
MANY = "&".join(f"p{n}=1" for n in range(1001))
OWN = {key: value for key, value in UPDATE.items() if key != "userId"}

# name: (method, path, body), then the expected status for each role, in ROLES order.
# The learner (only) is enrolled in the course; the newcomer is nobody's persona, enrolled nowhere.
# fmt: off
MATRIX = {
    #                                                                                      anon learner other instr o.instr owner admin system super
    "learner progress":                 (("get", "/user-progress/{course}/{learner}", None),                     (401, 200, 403, 200, 403, 200, 200, 403, 200)),
    "learner progress, missing course": (("get", "/user-progress/{missing}/{learner}", None),                    (401, 404, 403, 403, 403, 403, 404, 403, 404)),
    "learner progress, missing user":   (("get", "/user-progress/{course}/{missing}", None),                     (401, 403, 403, 404, 403, 404, 404, 403, 404)),
    "activities":                       (("get", "/user-progress/{course}/{learner}/activities", None),          (401, 200, 403, 200, 403, 200, 200, 403, 200)),
    "activities, missing course":       (("get", "/user-progress/{missing}/{learner}/activities", None),         (401, 404, 403, 403, 403, 403, 404, 403, 404)),
    "activities, missing user":         (("get", "/user-progress/{course}/{missing}/activities", None),          (401, 403, 403, 404, 403, 404, 404, 403, 404)),
    "course page":                      (("get", "/user-progress/course/{course}/all", None),                    (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "course page, missing course":      (("get", "/user-progress/course/{missing}/all", None),                   (401, 403, 403, 403, 403, 403, 404, 403, 404)),
    "analytics":                        (("get", "/user-progress/course/{course}/analytics", None),              (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "analytics, missing course":        (("get", "/user-progress/course/{missing}/analytics", None),             (401, 403, 403, 403, 403, 403, 404, 403, 404)),
    "update for the learner":           (("post", "/user-progress/update", UPDATE),                              (401, 200, 403, 403, 403, 403, 200, 200, 200)),
    "update, missing course":           (("post", "/user-progress/update", {**UPDATE, "courseId": "{missing}"}), (401, 404, 403, 403, 403, 403, 404, 404, 404)),
    "update, missing user":             (("post", "/user-progress/update", {**UPDATE, "userId": "{missing}"}),   (401, 403, 403, 403, 403, 403, 404, 404, 404)),
    "update, LOCKED for the learner":   (("post", "/user-progress/update", {**UPDATE, "progressStatus": "LOCKED"}), (401, 403, 403, 403, 403, 403, 200, 200, 200)),
    # Without userId everyone posts their own progress: allowed, then 409 for the unenrolled.
    "update for oneself":               (("post", "/user-progress/update", OWN),                                 (401, 200, 409, 409, 409, 409, 409, 409, 409)),
    "bulk":                             (("post", "/user-progress/bulk", BULK),                                  (401, 200, 403, 200, 403, 200, 200, 403, 200)),
    "bulk, missing course":             (("post", "/user-progress/bulk", {**BULK, "courseId": "{missing}"}),     (401, 404, 403, 403, 403, 403, 404, 403, 404)),
    "bulk, missing user":               (("post", "/user-progress/bulk", {**BULK, "userIds": ["{missing}"]}),    (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "bulk, the other learner":          (("post", "/user-progress/bulk", {**BULK, "userIds": ["{other}"]}),      (401, 403, 200, 200, 403, 200, 200, 403, 200)),
    "bulk, both learners":              (("post", "/user-progress/bulk", {**BULK, "userIds": ["{learner}", "{other}"]}), (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "enrol the learner":                (("post", "/user-progress/enrollments", ENROL),                          (401, 200, 403, 200, 403, 200, 200, 200, 200)),
    "enrol a newcomer":                 (("post", "/user-progress/enrollments", {**ENROL, "userId": "{newcomer}"}), (401, 403, 403, 201, 403, 201, 201, 201, 201)),
    "enrol, missing course":            (("post", "/user-progress/enrollments", {**ENROL, "courseId": "{missing}"}), (401, 404, 403, 403, 403, 403, 404, 404, 404)),
    "enrol, missing user":              (("post", "/user-progress/enrollments", {**ENROL, "userId": "{missing}"}),   (401, 403, 403, 404, 403, 404, 404, 404, 404)),
    "move an enrollment":               (("patch", "/user-progress/enrollments/{enrollment}", {"metadata": {}}), (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "move an enrollment to DROPPED":    (("patch", "/user-progress/enrollments/{enrollment}", {"enrollmentStatus": "DROPPED"}), (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    "move, missing enrollment":         (("patch", "/user-progress/enrollments/{missing}", {"metadata": {}}),    (401, 403, 403, 403, 403, 403, 404, 403, 404)),
    "events":                           (("get", "/user-progress/events", None),                                 (401, 200, 200, 200, 200, 200, 200, 403, 200)),
    "events of the learner":            (("get", "/user-progress/events?userId={learner}", None),                (401, 200, 403, 200, 200, 200, 200, 403, 200)),
    "events of the course":             (("get", "/user-progress/events?courseId={course}", None),               (401, 200, 200, 200, 403, 200, 200, 403, 200)),
    "events, courseId not an id":       (("get", "/user-progress/events?courseId=abc", None),                    (401, 400, 400, 403, 403, 403, 400, 403, 400)),
    "wrong method on update":           (("put", "/user-progress/update", {}),                                   (401, 405, 405, 405, 405, 405, 405, 405, 405)),
    "wrong method on analytics":        (("delete", "/user-progress/course/{course}/analytics", None),           (401, 403, 403, 405, 403, 405, 405, 403, 405)),
    "wrong method on enrollment":       (("get", "/user-progress/enrollments/{enrollment}", None),               (401, 405, 405, 405, 405, 405, 405, 405, 405)),
    "options on update":                (("options", "/user-progress/update", None),                             (401, 200, 200, 200, 200, 200, 200, 200, 200)),
    "options on analytics":             (("options", "/user-progress/course/{course}/analytics", None),          (401, 403, 403, 200, 403, 200, 200, 403, 200)),
    # Bad formats and query strings come after authorisation (issue 13): nothing before 401/403.
    "course page, unknown format":      (("get", "/user-progress/course/{course}/all?format=xml", None),         (401, 403, 403, 400, 403, 400, 400, 403, 400)),
    "progress, unknown format":         (("get", "/user-progress/{course}/{learner}?format=xml", None),          (401, 400, 403, 400, 403, 400, 400, 403, 400)),
    "course page, 1001 parameters":     (("get", "/user-progress/course/{course}/all?" + MANY, None),            (401, 403, 403, 400, 403, 400, 400, 403, 400)),
    # An endpoint whose role check reads the body or the query string (3.3, 3.6, 3.7, the feed)
    # refuses an unusable format or query string first.
    "update, 1001 parameters":          (("post", "/user-progress/update?" + MANY, UPDATE),                      (401, 400, 400, 400, 400, 400, 400, 400, 400)),
    "update, unknown format":           (("post", "/user-progress/update?format=xml", UPDATE),                   (401, 400, 400, 400, 400, 400, 400, 400, 400)),
    "bulk, unknown format":             (("post", "/user-progress/bulk?format=xml", BULK),                       (401, 400, 400, 400, 400, 400, 400, 400, 400)),
    "enrol, 1001 parameters":           (("post", "/user-progress/enrollments?" + MANY, ENROL),                  (401, 400, 400, 400, 400, 400, 400, 400, 400)),
    "move, unknown format":             (("patch", "/user-progress/enrollments/{missing}?format=xml", {}),       (401, 400, 400, 400, 400, 400, 400, 400, 400)),
    "events, 1001 parameters":          (("get", "/user-progress/events?" + MANY, None),                         (401, 400, 400, 400, 400, 400, 400, 400, 400)),
}
# fmt: on

# What an allowed request of these rows did, and a refused one did not (beyond the status).
EFFECTS = {
    "enrol a newcomer": lambda ids: Enrollment.objects.filter(user_id=ids["newcomer"]).exists(),
    "move an enrollment to DROPPED": lambda ids: (
        Enrollment.objects.get(pk=ids["enrollment"]).status == "DROPPED"
    ),
    "update, LOCKED for the learner": lambda ids: ContentProgress.objects.filter(
        user_id=ids["learner"], status="LOCKED"
    ).exists(),
}


def fill(template, ids):
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in ids:
            return ids[template[1:-1]]
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, ids) for value in template]
    return template


class AuthorizationMatrixTest(TestCase):
    """The personas, course and enrollment are made once for the class; each cell runs in a
    savepoint that is rolled back, with the cache emptied, so no cell sees another's writes."""

    @classmethod
    def setUpTestData(cls):
        # setUpTestData runs before the function-scoped fixtures (conftest's fast hasher).
        with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
            users = {role: make_persona(role) for role in ROLES[1:]}
            newcomer = get_user_model().objects.create_user(username="newcomer", password="pw")
        course = Course.objects.create(title="Python 101")
        contents = [
            CourseContent.objects.create(course=course, title=f"Lesson {n}", position=n)
            for n in range(1, 4)
        ]
        other_course = Course.objects.create(title="Rust 201")
        CourseContent.objects.create(course=other_course, title="Ownership", position=1)
        for role, staff_of in (
            ("instructor", course),
            ("owner", course),
            ("other_instructor", other_course),
        ):
            role_name = CourseStaff.Role.OWNER if role == "owner" else CourseStaff.Role.INSTRUCTOR
            CourseStaff.objects.create(course=staff_of, user=users[role], role=role_name)
        learner = users["learner"]
        enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
        cls.users = users
        cls.courses = (course.pk, other_course.pk, MISSING)
        cls.tokens = {role: Token.objects.create(user=user).key for role, user in users.items()}
        cls.ids = {
            "course": course.pk,
            "learner": learner.pk,
            "other": users["other_learner"].pk,
            "newcomer": newcomer.pk,
            "other_course": other_course.pk,
            "content": contents[0].pk,
            "enrollment": enrollment.pk,
            "missing": MISSING,
        }

    def request_as(self, role, method, path, body):
        client = APIClient()
        if role != "anon":
            client.credentials(HTTP_AUTHORIZATION=f"Token {self.tokens[role]}")
        if body is None:
            return getattr(client, method)(fill(path, self.ids))
        return getattr(client, method)(fill(path, self.ids), fill(body, self.ids), format="json")

    def test_matrix(self):
        for name, ((method, path, body), statuses) in MATRIX.items():
            for role, expected in zip(ROLES, statuses, strict=True):
                with self.subTest(f"{name} / {role}"), rolled_back():
                    clear_test_cache()
                    before = snapshot()
                    response = self.request_as(role, method, path, body)
                    assert response.status_code == expected, response.content
                    assert response.json()["success"] is (expected < 400)
                    if expected >= 400:
                        assert snapshot() == before
                    if name in EFFECTS:
                        assert EFFECTS[name](self.ids) is (expected < 400)

    def test_a_refused_update_names_the_field(self):
        """The one 403 that says why: what the caller may not do, never whether an id exists."""
        cases = {
            "userId": {**UPDATE, "userId": "{other}"},
            "progressStatus": {**UPDATE, "progressStatus": "LOCKED"},
        }
        for field, body in cases.items():
            with self.subTest(field), rolled_back():
                response = self.request_as("learner", "post", "/user-progress/update", body)
                assert response.status_code == 403
                assert response.json()["message"] == "Access denied"
                assert list(response.json()["errors"]) == [field]

    def test_the_admin_scope_is_the_predicate_in_set_form(self):
        """The admin's lists (visible_course_ids) and the API (can_view_course) agree."""
        for role, user in self.users.items():
            for course_id in self.courses:
                with self.subTest(f"{role} / {course_id}"):
                    user = type(user).objects.get(pk=user.pk)  # nothing memoised
                    visible = policy.visible_course_ids(user)
                    assert policy.can_view_course(user, course_id=course_id) is (
                        visible is None or course_id in visible
                    )


def make_persona(role):
    """As conftest's personas: the same usernames, and the admin and the system by permission."""
    if role == "superuser":
        return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    username = {"admin_user": "admin", "system_user": "system"}.get(role, role)
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, email=f"{username}@example.com"
    )
    codename = {"admin_user": "view_all_progress", "system_user": "update_any_progress"}.get(role)
    if codename:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@contextmanager
def rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)
