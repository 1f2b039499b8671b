"""The manage.py commands: seed_demo, backfill_enrollment_status, import_progress,
export_progress, expire_enrollments. Each is run as an operator would (call_command with
captured stdout/stderr) and judged by its output, its exit and the rows in the database."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.db import OperationalError
from django.db.models import Max
from django.utils import timezone
from rest_framework.authtoken.models import Token

from courseprogress.exceptions import Conflict
from courseprogress.models import Course, CourseContent, CourseStaff
from progress import bulk, services
from progress.management.demo import demo_password
from progress.management.progress_files import CREATED, EXPORT_FIELDS
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus
from tests.conftest import requires_postgres

User = get_user_model()
COMMANDS = [
    "seed_demo",
    "backfill_enrollment_status",
    "import_progress",
    "export_progress",
    "expire_enrollments",
]
SUMMARY = re.compile(
    r"Summary: read (\d+), (?:would change|changed) (\d+), skipped (\d+), failed (\d+)"
)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The demo accounts get real passwords; a cheap hasher keeps these tests quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(name, *args, expect_failure=False):
    """(stdout, stderr) of a command; with expect_failure it must exit non-zero."""
    out, err = io.StringIO(), io.StringIO()
    if expect_failure:
        with pytest.raises(CommandError) as failure:
            call_command(name, *args, stdout=out, stderr=err)
        err.write(f"CommandError: {failure.value}\n")
    else:
        call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def summary(text: str) -> dict:
    found = SUMMARY.search(text)
    assert found, f"no summary in {text!r}"
    return dict(
        zip(("read", "changed", "skipped", "failed"), map(int, found.groups()), strict=True)
    )


def snapshot() -> dict:
    """Every row a command could write, every column: equal snapshots = nothing changed."""
    models = [User, Group, Token, Course, CourseContent, CourseStaff, Enrollment, ContentProgress]
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


def enrollment(user, course) -> Enrollment:
    return Enrollment.objects.get(user=user, course=course)


def read_progress(client_for, user, course) -> dict:
    response = client_for(user).get(f"/user-progress/{course.pk}/{user.pk}")
    assert response.status_code == 200
    return response.json()["results"]


def write_file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_text(rows: list[dict], fields=None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def progress(user, course, content, status, **kwargs):
    return services.record_progress(
        user_id=user.pk, course_id=course.pk, content_id=content.pk, status=status, **kwargs
    )


# --- every command ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_explains_itself_and_every_option(name, capsys):
    command = load_command_class("progress", name)
    parser = command.create_parser("manage.py", name)
    undocumented = [action.dest for action in parser._actions if not action.help]
    assert undocumented == []
    assert len(command.help) > 300  # a description, not a title

    with pytest.raises(SystemExit) as exit_:
        call_command(name, "--help")
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert command.help.splitlines()[0] in text
    assert "--batch-size" in text
    assert "--progress" in text
    assert ("--dry-run" in text) == (name != "export_progress")


def test_progress_goes_to_stderr_only_when_asked(db, course, learner, enrolled):
    _, quiet_err = run("backfill_enrollment_status")
    assert quiet_err == ""  # captured stderr is no terminal: no progress line
    _, err = run("backfill_enrollment_status", "--progress")
    assert "backfill: 1/1 enrollments (100%)" in err


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


# --- backfill_enrollment_status ------------------------------------------------------------------


def test_backfill_fixes_drift_made_with_queryset_update(
    client_for, learner, other_learner, course, contents, enrolled
):
    progress(learner, course, contents[0], "IN_PROGRESS")
    other = services.enrol(user_id=other_learner.pk, course_id=course.pk)[0]
    assert read_progress(client_for, learner, course)["enrollments"]["enrollmentStatus"] == (
        "IN_PROGRESS"
    )  # now cached
    # Bulk paths: no signals, so the enrollments never hear of these rows.
    ContentProgress.objects.bulk_create(
        [ContentProgress(user=learner, course=course, content=c) for c in contents[1:]]
        + [ContentProgress(user=other_learner, course=course, content=contents[0])]
    )
    ContentProgress.objects.filter(user=learner).update(status=ProgressStatus.COMPLETED)
    ContentProgress.objects.filter(user=other_learner).update(status=ProgressStatus.IN_PROGRESS)
    before = snapshot()

    out, _ = run("backfill_enrollment_status", "--dry-run")
    assert snapshot() == before
    assert f"would fix enrollment {enrolled.pk} " in out
    assert "IN_PROGRESS -> COMPLETED, completionDate" in out
    assert f"would fix enrollment {other.pk} (user {other_learner.pk}" in out
    assert "ENROLLED -> IN_PROGRESS" in out
    assert summary(out) == {"read": 2, "changed": 2, "skipped": 0, "failed": 0}

    out, _ = run("backfill_enrollment_status")
    assert summary(out)["changed"] == 2
    fixed = enrollment(learner, course)
    assert fixed.status == EnrollmentStatus.COMPLETED
    last_completed = ContentProgress.objects.filter(user=learner).aggregate(m=Max("updated_at"))
    assert fixed.completed_at == max(last_completed["m"], fixed.enrolled_at)
    assert fixed.updated_at > before["Enrollment"][0]["updated_at"]
    assert enrollment(other_learner, course).status == EnrollmentStatus.IN_PROGRESS
    # The cached read sees the fix.
    results = read_progress(client_for, learner, course)
    assert results["enrollments"]["enrollmentStatus"] == "COMPLETED"
    assert {row["progressStatus"] for row in results["activityLogs"]} == {"COMPLETED"}

    after = snapshot()
    out, _ = run("backfill_enrollment_status")
    assert snapshot() == after
    assert summary(out) == {"read": 2, "changed": 0, "skipped": 2, "failed": 0}


def test_backfill_never_moves_certified_dropped_expired_nor_backwards(make_user, course, contents):
    stamp = datetime(2025, 3, 1, tzinfo=UTC)
    cases = {
        "certified": {
            "status": "CERTIFIED",
            "certificate_url": "https://x.test/c",
            "completed_at": stamp,
        },
        "dropped": {"status": "DROPPED"},
        "expired": {"status": "EXPIRED"},
        "completed": {"status": "COMPLETED", "completed_at": stamp},
        "in_progress": {"status": "IN_PROGRESS"},
    }
    users = {}
    for name, fields in cases.items():
        users[name] = make_user(name)
        Enrollment.objects.create(user=users[name], course=course, **fields)
        status = "NOT_STARTED" if name in ("completed", "in_progress") else "COMPLETED"
        ContentProgress.objects.bulk_create(
            [
                ContentProgress(user=users[name], course=course, content=c, status=status)
                for c in contents
            ]
        )
    CourseContent.objects.create(course=course, title="Added later", position=9)
    before = snapshot()

    out, _ = run("backfill_enrollment_status")

    assert snapshot() == before
    assert summary(out)["changed"] == 0


def test_backfill_dates_a_completed_enrollment_that_has_no_completion_date(
    learner, course, contents
):
    row = Enrollment.objects.create(user=learner, course=course, status="COMPLETED")
    ContentProgress.objects.bulk_create(
        [
            ContentProgress(user=learner, course=course, content=c, status="COMPLETED")
            for c in contents
        ]
    )
    out, _ = run("backfill_enrollment_status")
    row.refresh_from_db()
    assert row.status == EnrollmentStatus.COMPLETED
    assert row.completed_at == ContentProgress.objects.aggregate(m=Max("updated_at"))["m"]
    assert "COMPLETED, completionDate" not in out  # verbosity 1: only the summary
    assert summary(out)["changed"] == 1


def test_backfill_course_option_limits_the_fix_to_that_course(
    learner, course, contents, other_course
):
    for c in (course, other_course):
        services.enrol(user_id=learner.pk, course_id=c.pk)
        ContentProgress.objects.bulk_create(
            [ContentProgress(user=learner, course=c, content=c.contents.first())]
        )
    ContentProgress.objects.update(status="IN_PROGRESS")

    out, _ = run("backfill_enrollment_status", "--course", str(other_course.pk))

    assert enrollment(learner, other_course).status == EnrollmentStatus.IN_PROGRESS
    assert enrollment(learner, course).status == EnrollmentStatus.ENROLLED
    assert summary(out)["read"] == 1
    run("backfill_enrollment_status", "--course", "999999", expect_failure=True)


def test_a_database_failure_is_a_plain_error_that_a_rerun_recovers_from(
    monkeypatch, learner, course, contents, enrolled
):
    ContentProgress.objects.bulk_create(
        [ContentProgress(user=learner, course=course, content=contents[0], status="COMPLETED")]
    )

    def lost(ids):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(bulk, "apply_enrollment_status_drift", lost)
    _, err = run("backfill_enrollment_status", expect_failure=True)
    assert "Database error: server closed the connection unexpectedly." in err
    assert "run the command again to finish" in err

    monkeypatch.undo()
    out, _ = run("backfill_enrollment_status")
    assert summary(out)["changed"] == 1


ROW_PATTERNS = {
    "none": [],
    "not_started": ["NOT_STARTED"] * 3,
    "locked": ["LOCKED"],
    "one_in_progress": ["IN_PROGRESS"],
    "one_completed": ["COMPLETED"],
    "two_completed": ["COMPLETED", "COMPLETED", "LOCKED"],
    "all_completed": ["COMPLETED"] * 3,
}


def test_set_based_sync_agrees_with_automatic_status(make_user, course, contents):
    empty = Course.objects.create(title="No content yet")
    n = 0
    for status in EnrollmentStatus.values:
        for statuses in ROW_PATTERNS.values():
            for target in (course, empty):
                if target is empty and statuses:
                    continue
                n += 1
                user = make_user(f"u{n}")
                Enrollment.objects.create(user=user, course=target, status=status)
                ContentProgress.objects.bulk_create(
                    [
                        ContentProgress(user=user, course=target, content=content, status=s)
                        for content, s in zip(contents, statuses, strict=False)
                    ]
                )
    drift = {row["id"]: row for row in bulk.enrollment_status_drift()}

    for row in Enrollment.objects.all():
        stats = services.progress_stats(user_id=row.user_id, course_id=row.course_id)
        expected = services.automatic_status(row, stats)
        assert drift.get(row.pk, {"target_status": row.status})["target_status"] == expected


STORED = [
    None,
    {"status": "IN_PROGRESS", "percent": Decimal(40), "duration": 10, "metadata": {"a": 1}},
    {"status": "COMPLETED", "percent": Decimal(100), "duration": 30, "metadata": {}},
    {"status": "LOCKED", "percent": Decimal(0), "duration": 0, "metadata": {}},
]
UPDATES = [
    {"status": "NOT_STARTED"},
    {"status": "IN_PROGRESS", "percent": Decimal(40), "duration": 10, "metadata": {"a": 1}},
    {"status": "IN_PROGRESS", "percent": Decimal(20)},
    {"status": "IN_PROGRESS", "duration": 11},
    {"status": "IN_PROGRESS", "metadata": {"b": 2}},
    {"status": "COMPLETED"},
    {"status": "COMPLETED", "percent": Decimal(100), "duration": 30, "metadata": {}},
    {"status": "LOCKED"},
]


@pytest.mark.parametrize("exact", [False, True])
def test_the_import_skips_exactly_the_updates_record_progress_would_not_change(
    exact, learner, course, contents, enrolled
):
    fields = ("status", "percent", "duration", "metadata")
    for stored in STORED:
        for update in UPDATES:
            ContentProgress.objects.all().delete()
            row = None
            if stored:
                row = ContentProgress.objects.create(
                    user=learner, course=course, content=contents[0], **stored
                )
            predicted = services.progress_update_changes(row, exact=exact, **update)
            try:
                after = progress(learner, course, contents[0], exact=exact, **update)
            except (Conflict, PermissionDenied):
                # Refused: predicted as a change, so that the refusal is seen; but a line that
                # is exactly the stored row (an exported LOCKED row) is skipped, not refused.
                as_stored = stored is not None and all(
                    stored[name] == update.get(name, stored[name]) for name in fields
                )
                assert predicted is not as_stored, (stored, update)
                continue
            changed = row is None or any(
                getattr(after, name) != getattr(row, name) for name in fields
            )
            assert predicted == changed, (stored, update)


# --- import_progress -----------------------------------------------------------------------------


@pytest.fixture
def two_enrolled(learner, other_learner, course):
    for user in (learner, other_learner):
        services.enrol(user_id=user.pk, course_id=course.pk)


def test_import_writes_good_rows_and_reports_bad_ones_by_line(
    tmp_path, make_user, learner, course, contents, other_course, two_enrolled
):
    outsider = make_user("outsider")  # exists, not enrolled
    c1, c2, c3 = (c.pk for c in contents)
    foreign = other_course.contents.first().pk
    text = (
        "userId,courseId,courseContentId,progressStatus,activityDuration,progressPercent,metadata\n"
        f'{learner.pk},{course.pk},{c1},COMPLETED,30,,"{{""device"": ""web""}}"\n'  # 2 good
        # Lines 3-4: one record, its quoted metadata spans two lines.
        f'{learner.pk},{course.pk},{c2},IN_PROGRESS,10,45.5,"{{""note"": ""two"",\n'
        '""lines"": 2}"\n'
        f"{learner.pk},{course.pk},{c3},DONE,5,,\n"  # 5: unknown status
        f"999999,{course.pk},{c1},IN_PROGRESS,,,\n"  # 6: unknown user
        f"{learner.pk},999999,{c1},IN_PROGRESS,,,\n"  # 7: unknown course
        f"{learner.pk},{course.pk},{foreign},IN_PROGRESS,,,\n"  # 8: content of another course
        f"{outsider.pk},{course.pk},{c1},IN_PROGRESS,,,\n"  # 9: not enrolled
        f"{learner.pk},{course.pk},{c2},IN_PROGRESS,-3,100.5,\n"  # 10: out of range
        f'{learner.pk},{course.pk},{c3},IN_PROGRESS,,33.333,"[1, 2]"\n'  # 11: three decimals, list
        f"{learner.pk},{course.pk},{c3},IN_PROGRESS,1.5,nan,\n"  # 12: not numbers
    )
    path = write_file(tmp_path, "progress.csv", text)
    errors_path = tmp_path / "rejected.csv"

    out, err = run("import_progress", path, "--errors-file", str(errors_path), expect_failure=True)

    assert summary(out) == {"read": 10, "changed": 2, "skipped": 0, "failed": 8}
    reported = dict(re.findall(r"^line (\d+): (.*)$", err, re.MULTILINE))
    assert sorted(map(int, reported)) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert reported["5"].startswith("progressStatus: ")
    assert reported["6"] == "userId: User 999999 does not exist."
    assert reported["7"] == "courseId: Course 999999 does not exist."
    assert reported["8"] == "courseContentId: This content is not part of the course."
    assert reported["9"] == "The learner has no active enrollment in this course."
    assert "activityDuration" in reported["10"]
    assert "progressPercent" in reported["10"]
    assert "progressPercent" in reported["11"]
    assert "metadata: A JSON object is required." in reported["11"]
    assert "activityDuration" in reported["12"]
    assert "progressPercent" in reported["12"]
    assert "CommandError: 8 rows failed" in err

    rows = {row.content_id: row for row in ContentProgress.objects.all()}
    assert set(rows) == {c1, c2}
    assert (rows[c1].status, rows[c1].percent, rows[c1].duration) == ("COMPLETED", 100, 30)
    assert rows[c1].metadata == {"device": "web"}
    assert (rows[c2].status, rows[c2].percent, rows[c2].duration) == (
        "IN_PROGRESS",
        Decimal("45.50"),
        10,
    )
    assert rows[c2].metadata == {"note": "two", "lines": 2}
    assert enrollment(learner, course).status == EnrollmentStatus.IN_PROGRESS

    with errors_path.open(newline="") as rejected:
        bad = list(csv.DictReader(rejected))
    assert [row["line"] for row in bad] == ["5", "6", "7", "8", "9", "10", "11", "12"]
    assert bad[1]["error"] == "userId: User 999999 does not exist."
    assert bad[1]["userId"] == "999999"  # the row as it was, to fix and import again


def test_import_json_lines_by_username_applies_the_learner_merge(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[0], "COMPLETED", duration=40, metadata={"a": 1})
    lines = [
        # Lower than stored: the merge keeps status, percent, minutes; metadata keys merge.
        {
            "username": "learner",
            "courseId": course.pk,
            "courseContentId": contents[0].pk,
            "progressStatus": "IN_PROGRESS",
            "activityDuration": 5,
            "progressPercent": 20,
            "metadata": {"b": 2},
        },
        {
            "username": "learner",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
            "progressPercent": 12.5,
            "extra": "ignored",
        },
        {
            "username": "nobody",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },
        {
            "userId": learner.pk,
            "username": "other_learner",
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },
        {
            "userId": str(learner.pk),
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "IN_PROGRESS",
        },  # the API takes no strings for ids
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n[1]\n"
    path = write_file(tmp_path, "progress.jsonl", text)

    out, err = run("import_progress", path, expect_failure=True)

    assert summary(out) == {"read": 7, "changed": 2, "skipped": 0, "failed": 5}
    assert "line 3: username: There is no user 'nobody'." in err
    assert "line 4: userId: User" in err
    assert "line 5: userId: A whole number is required." in err
    assert "line 7: not valid JSON" in err
    assert "line 8: a JSON object is required" in err
    first = ContentProgress.objects.get(content=contents[0])
    assert (first.status, first.percent, first.duration) == ("COMPLETED", 100, 40)
    assert first.metadata == {"a": 1, "b": 2}
    assert ContentProgress.objects.get(content=contents[1]).percent == Decimal("12.50")


def test_import_overwrite_stores_the_fields_as_given(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[0], "COMPLETED", duration=40, metadata={"a": 1})
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": contents[0].pk,
            "progressStatus": "IN_PROGRESS",
            "activityDuration": 5,
            "progressPercent": 20,
            "metadata": {"b": 2},
        },
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": contents[1].pk,
            "progressStatus": "LOCKED",
        },
    ]
    path = write_file(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    _, err = run("import_progress", path, expect_failure=True)  # LOCKED needs --overwrite
    assert "line 2: progressStatus: LOCKED is set only with --overwrite" in err

    out, _ = run("import_progress", path, "--overwrite")
    assert summary(out)["changed"] == 2
    first = ContentProgress.objects.get(content=contents[0])
    assert (first.status, first.percent, first.duration) == ("IN_PROGRESS", 20, 5)
    assert first.metadata == {"b": 2}
    assert ContentProgress.objects.get(content=contents[1]).status == "LOCKED"


def import_rows(learner, course, contents):
    return [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": c.pk,
            "progressStatus": "COMPLETED" if i else "IN_PROGRESS",
            "activityDuration": 10 + i,
            "progressPercent": 50 if not i else "",
            "metadata": "",
        }
        for i, c in enumerate(contents)
    ]


def test_import_dry_run_writes_nothing(tmp_path, learner, course, contents, two_enrolled):
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    before = snapshot()
    out, _ = run("import_progress", path, "--dry-run")
    assert snapshot() == before
    assert summary(out) == {"read": 3, "changed": 3, "skipped": 0, "failed": 0}
    assert "would change 3" in out


def test_import_twice_changes_nothing_the_second_time(
    tmp_path, learner, course, contents, two_enrolled
):
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    out, _ = run("import_progress", path)
    assert summary(out)["changed"] == 3
    before = snapshot()

    out, _ = run("import_progress", path)

    assert snapshot() == before
    assert summary(out) == {"read": 3, "changed": 0, "skipped": 3, "failed": 0}


def test_import_invalidates_cached_reads(
    tmp_path, client_for, learner, course, contents, two_enrolled
):
    assert read_progress(client_for, learner, course)["activityLogs"] == []  # cached
    path = write_file(tmp_path, "p.csv", csv_text(import_rows(learner, course, contents)))
    run("import_progress", path)
    results = read_progress(client_for, learner, course)
    assert len(results["activityLogs"]) == 3
    assert results["enrollments"]["enrollmentStatus"] == "IN_PROGRESS"


def test_import_keeps_timestamps_of_rows_it_creates(
    tmp_path, learner, course, contents, two_enrolled
):
    progress(learner, course, contents[1], "IN_PROGRESS")
    existing = ContentProgress.objects.get(content=contents[1])
    base = {
        "userId": learner.pk,
        "courseId": course.pk,
        "progressStatus": "COMPLETED",
        "user_course_content_progress_created_at": "2025-01-02T10:00:00.000Z",
        "user_course_content_progress_updated_at": "2025-01-03T11:30:00.250Z",
    }
    future = (timezone.now() + timedelta(days=2)).isoformat()
    rows = [
        {**base, "courseContentId": contents[0].pk},
        {**base, "courseContentId": contents[1].pk},
        {
            **base,
            "courseContentId": contents[2].pk,
            "user_course_content_progress_updated_at": future,
        },
        {
            **base,
            "courseContentId": contents[2].pk,
            "user_course_content_progress_created_at": "2025-01-04T00:00:00Z",
        },
    ]
    path = write_file(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    _, err = run("import_progress", path, expect_failure=True)

    created = ContentProgress.objects.get(content=contents[0])
    assert created.created_at == datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
    assert created.updated_at == datetime(2025, 1, 3, 11, 30, 0, 250000, tzinfo=UTC)
    changed = ContentProgress.objects.get(content=contents[1])
    assert changed.status == "COMPLETED"
    assert changed.created_at == existing.created_at
    assert changed.updated_at > existing.updated_at  # written now
    assert "line 3: user_course_content_progress_updated_at: May not be in the future." in err
    assert "line 4: user_course_content_progress_updated_at: May not be before" in err


def test_import_failed_batch_leaves_nothing_half_written(
    tmp_path, monkeypatch, learner, course, contents, two_enrolled, other_learner
):
    rows = import_rows(learner, course, contents) + import_rows(other_learner, course, contents)
    path = write_file(tmp_path, "p.csv", csv_text(rows[:5]))  # lines 2-6
    real = services.record_progress
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 4:  # the second row of the second batch
            raise RuntimeError("connection lost")
        return real(**kwargs)

    monkeypatch.setattr(services, "record_progress", flaky)
    out, err = run("import_progress", path, "--batch-size", "2", expect_failure=True)

    assert "Stopped: the batch of lines 4-5 failed and was rolled back" in err
    assert "RuntimeError: connection lost" in err
    # The first batch is written; nothing of the second (its first row was written, then
    # rolled back with it); the third never ran.
    assert ContentProgress.objects.count() == 2
    assert set(ContentProgress.objects.values_list("user_id", "content_id")) == {
        (learner.pk, contents[0].pk),
        (learner.pk, contents[1].pk),
    }
    assert summary(out) == {"read": 4, "changed": 2, "skipped": 0, "failed": 2}

    monkeypatch.setattr(services, "record_progress", real)
    out, _ = run("import_progress", path, "--batch-size", "2")
    assert summary(out) == {"read": 5, "changed": 3, "skipped": 2, "failed": 0}


def test_import_refuses_a_file_it_cannot_read(tmp_path, two_enrolled):
    path = write_file(tmp_path, "p.csv", "userId,courseContentId,progressStatus\n1,2,COMPLETED\n")
    _, err = run("import_progress", path, expect_failure=True)
    assert "the CSV header lacks courseId" in err
    _, err = run("import_progress", write_file(tmp_path, "p.txt", ""), expect_failure=True)
    assert "--format" in err
    _, err = run("import_progress", str(tmp_path / "missing.csv"), expect_failure=True)
    assert "No such file" in err


@pytest.mark.slow
# Each batch commits, as it does in production: inside one test transaction on PostgreSQL, its
# ten thousand savepoints (subtransactions) overflow the snapshot's subtransaction cache and
# every later row check slows down (the run took minutes instead of seconds).
@pytest.mark.django_db(transaction=True)
def test_import_of_ten_thousand_rows_is_correct(tmp_path, course):
    CourseContent.objects.bulk_create(
        [CourseContent(course=course, title=f"Item {j}", position=10 + j) for j in range(97)]
    )
    contents = list(course.contents.order_by("position"))
    assert len(contents) == 100
    learners = User.objects.bulk_create([User(username=f"bulk{k:03d}") for k in range(100)])
    Enrollment.objects.bulk_create([Enrollment(user=u, course=course) for u in learners])
    expected = {}
    lines = []
    for k, user in enumerate(learners):
        for j, content in enumerate(contents):
            # Learners with k % 4 == 0 finish everything; the others stop part-way.
            status = (
                "COMPLETED" if k % 4 == 0 or j < k % 7 else ("IN_PROGRESS", "NOT_STARTED")[j % 2]
            )
            percent = Decimal(100) if status == "COMPLETED" else Decimal((j * 7 + k) % 100)
            expected[(user.pk, content.pk)] = (status, percent, (j + k) % 90)
            lines.append(
                {
                    "userId": user.pk,
                    "courseId": course.pk,
                    "courseContentId": content.pk,
                    "progressStatus": status,
                    "activityDuration": (j + k) % 90,
                    "progressPercent": float(percent),
                    "metadata": {"k": k},
                }
            )
    path = write_file(tmp_path, "big.jsonl", "".join(json.dumps(line) + "\n" for line in lines))

    out, _ = run("import_progress", path, "--batch-size", "1000")

    assert summary(out) == {"read": 10_000, "changed": 10_000, "skipped": 0, "failed": 0}
    stored = {
        (row.user_id, row.content_id): (row.status, row.percent, row.duration)
        for row in ContentProgress.objects.all()
    }
    assert stored == expected
    finished = {u.pk for k, u in enumerate(learners) if k % 4 == 0}
    statuses = dict(Enrollment.objects.values_list("user_id", "status"))
    assert {uid for uid, s in statuses.items() if s == "COMPLETED"} == finished
    assert bulk.enrollment_status_drift() == []


# --- export_progress ------------------------------------------------------------------------------


@pytest.fixture
def course_with_progress(learner, other_learner, course, contents, two_enrolled, make_user):
    progress(learner, course, contents[0], "COMPLETED", duration=12, metadata={"seen": "ü"})
    progress(learner, course, contents[2], "IN_PROGRESS", percent=Decimal("33.25"), duration=4)
    services.enrol(user_id=make_user("third").pk, course_id=course.pk)
    return course


def test_export_writes_the_api_fields_as_csv_to_stdout(course_with_progress, learner, contents):
    out, err = run("export_progress", "--course", str(course_with_progress.pk))

    lines = list(csv.DictReader(io.StringIO(out)))
    assert list(lines[0]) == list(EXPORT_FIELDS)
    first, second, *alone = lines
    row = ContentProgress.objects.get(content=contents[0])
    assert first == {
        "userId": str(learner.pk),
        "courseId": str(course_with_progress.pk),
        "courseContentId": str(contents[0].pk),
        "progressStatus": "COMPLETED",
        "activityDuration": "12",
        "progressPercent": "100.00",
        "metadata": '{"seen": "ü"}',
        "user_course_content_progress_created_at": row.created_at.isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z"),
        "user_course_content_progress_updated_at": row.updated_at.isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z"),
        "enrollmentStatus": "IN_PROGRESS",
        "enrollmentDate": first["enrollmentDate"],
        "completionDate": "",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["enrollmentDate"])
    assert (second["courseContentId"], second["progressPercent"]) == (str(contents[2].pk), "33.25")
    # Enrollments without progress follow, with the progress fields empty.
    assert [(a["progressStatus"], a["enrollmentStatus"]) for a in alone] == [
        ("", "ENROLLED"),
        ("", "ENROLLED"),
    ]
    assert summary(err) == {"read": 4, "changed": 0, "skipped": 0, "failed": 0}  # not in the data


def test_export_writes_json_lines_to_a_file(tmp_path, course_with_progress):
    target = tmp_path / "course.jsonl"
    out, _ = run(
        "export_progress", "--course", str(course_with_progress.pk), "--output", str(target)
    )
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[0]["progressPercent"] == 100 and lines[1]["progressPercent"] == 33.25
    assert lines[0]["metadata"] == {"seen": "ü"}
    assert lines[3]["courseContentId"] is None
    assert f"Wrote 4 lines to {target}" in out
    run("export_progress", "--course", "999999", expect_failure=True)


PROGRESS_COLUMNS = (
    "user_id",
    "content_id",
    "status",
    "percent",
    "duration",
    "metadata",
    "created_at",
    "updated_at",
)


def stored_rows():
    rows = []
    for row in ContentProgress.objects.order_by("user_id", "content_id").values(*PROGRESS_COLUMNS):
        for name in ("created_at", "updated_at"):  # the API's timestamps carry milliseconds
            row[name] = row[name].replace(microsecond=row[name].microsecond // 1000 * 1000)
        rows.append(row)
    return rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_then_import_round_trips(tmp_path, fmt, course_with_progress):
    before = stored_rows()
    path = str(tmp_path / f"export.{fmt}")
    run("export_progress", "--course", str(course_with_progress.pk), "--output", path)

    out, _ = run("import_progress", path)  # into the same data: nothing to change
    assert summary(out) == {"read": 4, "changed": 0, "skipped": 4, "failed": 0}

    ContentProgress.objects.all().delete()
    out, _ = run("import_progress", path)
    assert summary(out) == {"read": 4, "changed": 2, "skipped": 2, "failed": 0}
    assert stored_rows() == before


# --- expire_enrollments ---------------------------------------------------------------------------


def test_expire_by_enrollment_date_and_by_metadata(make_user, course, other_course):
    def make(name, status, enrolled, metadata=None, target=course, **extra):
        return Enrollment.objects.create(
            user=make_user(name),
            course=target,
            status=status,
            enrolled_at=datetime.fromisoformat(enrolled),
            metadata=metadata or {},
            **extra,
        )

    future = (timezone.now() + timedelta(days=30)).isoformat()
    old_enrolled = make("old_enrolled", "ENROLLED", "2024-06-01T00:00:00+00:00")
    old_completed = make("old_completed", "COMPLETED", "2024-01-01T00:00:00+00:00")
    recent = make("recent", "IN_PROGRESS", "2025-03-01T00:00:00+00:00")
    certified = make(
        "certified", "CERTIFIED", "2024-01-01T00:00:00+00:00", certificate_url="https://x.test/c"
    )
    dropped = make("dropped", "DROPPED", "2024-01-01T00:00:00+00:00")
    lapsed = make("lapsed", "IN_PROGRESS", "2025-06-01T00:00:00+00:00", {"expiresAt": "2025-07-31"})
    valid = make("valid", "ENROLLED", "2025-06-01T00:00:00+00:00", {"expiresAt": future})
    elsewhere = make("elsewhere", "ENROLLED", "2024-01-01T00:00:00+00:00", target=other_course)
    before = snapshot()

    out, _ = run(
        "expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk), "--dry-run"
    )
    assert snapshot() == before
    listed = re.findall(r"^would expire enrollment (\d+) ", out, re.MULTILINE)
    assert listed == [str(e.pk) for e in (old_enrolled, old_completed, lapsed)]
    assert "expiresAt 2025-08-01T00:00:00.000Z has passed" in out  # the end of that day

    out, _ = run("expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk))
    assert summary(out)["changed"] == 3
    expired = set(Enrollment.objects.filter(status="EXPIRED").values_list("pk", flat=True))
    assert expired == {old_enrolled.pk, old_completed.pk, lapsed.pk}
    for untouched in (recent, certified, dropped, valid, elsewhere):
        assert Enrollment.objects.get(pk=untouched.pk).status == untouched.status

    after = snapshot()
    out, _ = run("expire_enrollments", "--before", "2025-01-01", "--course", str(course.pk))
    assert snapshot() == after
    assert summary(out)["changed"] == 0


def test_expire_without_before_applies_only_the_metadata_rule(make_user, course):
    old = Enrollment.objects.create(
        user=make_user("old"), course=course, enrolled_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    run("expire_enrollments")
    assert Enrollment.objects.get(pk=old.pk).status == EnrollmentStatus.ENROLLED


def test_expire_reports_an_unreadable_expiry_and_expires_the_rest(make_user, course):
    bad = Enrollment.objects.create(
        user=make_user("bad"), course=course, metadata={"expiresAt": "next tuesday"}
    )
    lapsed = Enrollment.objects.create(
        user=make_user("lapsed"), course=course, metadata={"expiresAt": "2025-01-01T12:00:00Z"}
    )
    out, err = run("expire_enrollments", expect_failure=True)
    assert f"enrollment {bad.pk}: metadata expiresAt 'next tuesday' is not an ISO 8601" in err
    assert summary(out) == {"read": 2, "changed": 1, "skipped": 0, "failed": 1}
    assert Enrollment.objects.get(pk=lapsed.pk).status == EnrollmentStatus.EXPIRED
    run("expire_enrollments", "--before", "yesterday", expect_failure=True)


def test_expire_invalidates_cached_reads(client_for, learner, course, enrolled):
    assert read_progress(client_for, learner, course)["enrollments"]["enrollmentStatus"] == (
        "ENROLLED"
    )
    services.update_enrollment(enrolled.pk, metadata={"expiresAt": "2025-01-01"})
    read_progress(client_for, learner, course)  # cached again, with the metadata
    run("expire_enrollments")
    results = read_progress(client_for, learner, course)
    assert results["enrollments"]["enrollmentStatus"] == "EXPIRED"


# --- import_progress: hostile lines are that line's error (issue 13) -----------------------------


def test_a_deeply_nested_json_line_is_that_lines_error(
    tmp_path, learner, course, contents, enrolled
):
    good = {"userId": learner.pk, "courseId": course.pk, "progressStatus": "COMPLETED"}
    lines = [
        json.dumps({**good, "courseContentId": contents[0].pk}),
        '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({**good, "courseContentId": contents[1].pk}),
    ]
    csv_path = write_file(
        tmp_path,
        "nested.csv",
        csv_text(
            [{**good, "courseContentId": contents[2].pk, "metadata": "[" * 20_000 + "]" * 20_000}]
        ),
    )
    out, err = run(
        "import_progress",
        write_file(tmp_path, "nested.jsonl", "\n".join(lines)),
        expect_failure=True,
    )
    assert summary(out) == {"read": 3, "changed": 2, "skipped": 0, "failed": 1}
    assert "line 2: JSON nested too deeply to read" in err
    out, err = run("import_progress", csv_path, expect_failure=True)
    assert summary(out) == {"read": 1, "changed": 0, "skipped": 0, "failed": 1}
    assert "line 2: metadata: A JSON object is required." in err


@pytest.mark.parametrize("offset", ["+23:59", "-23:59", "+15:59", "-16:00"])
def test_any_iso_offset_in_a_timestamp_is_understood(
    tmp_path, learner, course, contents, enrolled, offset
):
    """PostgreSQL refuses offsets past 15:59 that ISO 8601 allows: the import converts to UTC
    first, so the row is written, and the other rows of its batch with it."""
    stamp = f"2025-10-13T12:00:00{offset}"
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": content.pk,
            "progressStatus": "COMPLETED",
            CREATED: stamp if content == contents[1] else "",
        }
        for content in contents
    ]
    out, _ = run("import_progress", write_file(tmp_path, "stamps.csv", csv_text(rows)))
    assert summary(out) == {"read": 3, "changed": 3, "skipped": 0, "failed": 0}
    stored = ContentProgress.objects.get(content=contents[1]).created_at
    assert stored == datetime.fromisoformat(stamp)


def test_a_timestamp_past_the_calendar_in_utc_is_that_lines_error(
    tmp_path, learner, course, contents, enrolled
):
    rows = [
        {
            "userId": learner.pk,
            "courseId": course.pk,
            "courseContentId": content.pk,
            "progressStatus": "COMPLETED",
            CREATED: stamp,
        }
        for content, stamp in zip(
            contents, ["0001-01-01T00:00:00+23:59", "", "9999-12-31T23:59:59-23:59"], strict=True
        )
    ]
    out, err = run(
        "import_progress", write_file(tmp_path, "edges.csv", csv_text(rows)), expect_failure=True
    )
    assert summary(out) == {"read": 3, "changed": 1, "skipped": 0, "failed": 2}
    assert f"line 2: {CREATED}: An ISO 8601 date-time is required." in err
    assert f"line 4: {CREATED}: An ISO 8601 date-time is required." in err


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_any_course_exports_and_imports_back_unchanged(tmp_path, fmt, make_user, course, contents):
    """DROPPED and EXPIRED learners, LOCKED rows, certificates: the export imports back with
    exit 0 and "changed 0", with or without --overwrite."""
    learners = {status: make_user(f"l-{status.lower()}") for status in EnrollmentStatus.values}
    for status, user in learners.items():
        services.enrol(user_id=user.pk, course_id=course.pk)
        progress(user, course, contents[1], "LOCKED", exact=True)  # no activity
        if status != "ENROLLED":
            metadata = {"k": 1}
            progress(
                user, course, contents[0], "IN_PROGRESS", percent=Decimal(10), metadata=metadata
            )
    done = learners["COMPLETED"], learners["CERTIFIED"]
    for user in done:
        for content in contents:
            progress(user, course, content, "COMPLETED", exact=True)
    certified = enrollment(learners["CERTIFIED"], course)
    services.move_enrollment(certified.pk, "CERTIFIED", certificate_url="https://c.example/1")
    for status in ("DROPPED", "EXPIRED"):
        services.move_enrollment(enrollment(learners[status], course).pk, status)
    assert {e.status for e in Enrollment.objects.all()} == set(EnrollmentStatus.values)
    before = snapshot()
    path = str(tmp_path / f"export.{fmt}")
    run("export_progress", "--course", str(course.pk), "--output", path)

    for options in ([], ["--overwrite"]):
        out, err = run("import_progress", path, *options)
        counts = summary(out)
        assert (counts["changed"], counts["failed"]) == (0, 0), err
        assert counts["read"] == counts["skipped"] == ContentProgress.objects.count()
        assert snapshot() == before
