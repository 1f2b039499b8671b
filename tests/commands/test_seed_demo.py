"""seed_demo: the named demo set and the large generated set."""

from rest_framework.authtoken.models import Token

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import services
from progress.management.demo import demo_password
from progress.models import ContentProgress, Enrollment, EnrollmentStatus
from tests.commands.tools import (
    User,
    read_progress,
    run,
    snapshot,
    summary,
)
from tests.conftest import requires_postgres

# --- seed_demo: the named demo set -------------------------------------------------------------


def test_seed_demo_loads_the_named_demo_set(db, client_for):
    out, _ = run("seed_demo")

    course = Course.objects.get(title="Demo: Introduction to Python")
    assert course.contents.count() == 5
    statuses = dict(Enrollment.objects.values_list("user__username", "status"))
    assert statuses == {
        "demo_new": EnrollmentStatus.ENROLLED,
        "demo_active": EnrollmentStatus.IN_PROGRESS,
        "demo_done": EnrollmentStatus.COMPLETED,
        "demo_certified": EnrollmentStatus.CERTIFIED,
        "demo_dropped": EnrollmentStatus.DROPPED,
    }
    assert Enrollment.objects.get(user__username="demo_done").completed_at is not None
    assert Enrollment.objects.get(user__username="demo_certified").certificate_url
    roles = dict(CourseStaff.objects.filter(course=course).values_list("user__username", "role"))
    assert roles == {"demo_owner": "OWNER", "demo_instructor": "INSTRUCTOR"}
    assert User.objects.get(username="demo_owner").is_staff
    assert User.objects.get(username="demo_instructor").is_staff
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="demo_system").has_perm("progress.update_any_progress")

    # Every account is printed with its password and token, and the admin URL.
    for user in User.objects.all():
        line = next(line for line in out.splitlines() if f" {user.username} " in f" {line} ")
        assert demo_password(user.username) in line
        assert Token.objects.get(user=user).key in line
    assert "http://127.0.0.1:8000/admin/" in out
    assert summary(out)["changed"] > 0

    # The printed credentials work: the admin logs in, a learner reads their progress.
    active = User.objects.get(username="demo_active")
    results = read_progress(client_for, active, course)
    assert results["enrollments"]["enrollmentStatus"] == "IN_PROGRESS"
    assert len(results["activityLogs"]) == 3


def test_seed_demo_second_run_changes_nothing(db, client):
    run("seed_demo")
    before = snapshot()

    out, _ = run("seed_demo")

    assert snapshot() == before
    assert summary(out)["changed"] == 0
    assert "already loaded" in out
    assert Token.objects.get(user__username="admin").key in out  # still printed
    assert client.login(username="admin", password=demo_password("admin"))
    assert client.get("/admin/").status_code == 200


def test_seed_demo_leaves_an_existing_admin_account_alone(db, django_user_model):
    django_user_model.objects.create_user("admin", password="the operator's own")
    run("seed_demo")
    assert django_user_model.objects.get(username="admin").check_password("the operator's own")


def test_seed_demo_dry_run_writes_nothing(db):
    before = snapshot()
    out, _ = run("seed_demo", "--dry-run")
    assert snapshot() == before
    assert summary(out)["changed"] > 0
    assert "dry run" in out


# --- seed_demo: the large set --------------------------------------------------------------------

LARGE = ("--courses", "2", "--contents", "5", "--learners", "20", "--seed", "7")


def assert_statuses_follow_the_rows(course_ids):
    for row in Enrollment.objects.filter(course_id__in=course_ids):
        stats = services.progress_stats(user_id=row.user_id, course_id=row.course_id)
        expected = services.automatic_status(Enrollment(status=EnrollmentStatus.ENROLLED), stats)
        assert row.status == expected, row
        assert (row.completed_at is not None) == (row.status == EnrollmentStatus.COMPLETED)


def test_large_seed_makes_the_set_asked_for_with_consistent_statuses(db):
    out, _ = run("seed_demo", *LARGE)

    courses = Course.objects.filter(title__startswith="Seed 7 course ")
    assert courses.count() == 2
    assert CourseContent.objects.filter(course__in=courses).count() == 10
    assert User.objects.filter(username__startswith="seed7_learner").count() == 20
    assert not User.objects.get(username="seed7_learner000001").has_usable_password()
    assert Enrollment.objects.filter(course__in=courses).count() == 40
    assert ContentProgress.objects.filter(course__in=courses).count() == 200
    assert_statuses_follow_the_rows(list(courses.values_list("pk", flat=True)))
    statuses = set(Enrollment.objects.values_list("status", flat=True))
    assert {EnrollmentStatus.IN_PROGRESS, EnrollmentStatus.COMPLETED} <= statuses
    owner = User.objects.get(username="seed7_owner")
    assert CourseStaff.objects.filter(user=owner, course__in=courses).count() == 2
    assert Token.objects.get(user=owner).key in out
    assert summary(out)["failed"] == 0


def test_large_seed_rerun_creates_nothing_and_a_bigger_one_adds_only_the_difference(db):
    run("seed_demo", *LARGE)
    before = snapshot()

    out, _ = run("seed_demo", *LARGE)
    assert snapshot() == before
    assert summary(out)["changed"] == 0

    old_rows = {row["id"]: row for row in before["ContentProgress"]}
    run("seed_demo", "--courses", "2", "--contents", "5", "--learners", "22", "--seed", "7")
    assert ContentProgress.objects.count() == 220
    for row in ContentProgress.objects.filter(pk__in=old_rows).values():
        assert row == old_rows[row["id"]]  # untouched


def test_large_seed_dry_run_writes_nothing(db):
    before = snapshot()
    out, _ = run("seed_demo", *LARGE, "--dry-run")
    assert snapshot() == before
    assert "Would create" in out
    assert summary(out)["changed"] > 0


def seeded_rows():
    """The seeded data without its ids, comparable across two seeds."""
    return sorted(
        (
            row["user__username"].split("_", 1)[1],
            row["course__title"].split(" course ")[1],
            row["content__position"],
            row["status"],
            row["percent"],
            row["duration"],
            row["metadata"] == {},
            row["created_at"],
            row["updated_at"],
        )
        for row in ContentProgress.objects.values(
            "user__username",
            "course__title",
            "content__position",
            "status",
            "percent",
            "duration",
            "metadata",
            "created_at",
            "updated_at",
        )
    )


@requires_postgres
def test_large_seed_with_copy_writes_what_insert_writes(db):
    run("seed_demo", *LARGE, "--no-copy")
    by_insert = seeded_rows()
    statuses = sorted(Enrollment.objects.values_list("user__username", "status", "completed_at"))
    Course.objects.all().delete()
    User.objects.all().delete()

    run("seed_demo", *LARGE)  # COPY on PostgreSQL

    assert seeded_rows() == by_insert
    assert (
        sorted(Enrollment.objects.values_list("user__username", "status", "completed_at"))
        == statuses
    )
