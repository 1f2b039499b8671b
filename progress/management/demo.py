"""The named demo data set that `make run` loads: one course and a person for every role.

Everything goes through the services (enrol, record_progress, update_enrollment), so the demo
shows what the API would have produced. It is loaded once: an account, the course or a
learner's enrollment that already exists is left as it is, so a second run changes nothing.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.utils.crypto import salted_hmac
from rest_framework.authtoken.models import Token

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import selectors, services
from progress.management.base import Summary
from progress.models import Enrollment, EnrollmentStatus, ProgressStatus

COURSE_TITLE = "Demo: Introduction to Python"
CONTENT_TITLES = ("Welcome", "Variables and types", "Control flow", "Functions", "Final project")
CERTIFICATE_URL = "https://example.com/certificates/demo-certified"
STAFF_GROUP = "Course staff"
# What course staff may open in the admin; the admin itself scopes them to their courses.
STAFF_PERMISSIONS = (
    ("courseprogress", "view_course"),
    ("courseprogress", "view_coursecontent"),
    ("courseprogress", "view_coursestaff"),
    ("progress", "view_enrollment"),
    ("progress", "change_enrollment"),
    ("progress", "view_contentprogress"),
)


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    superuser: bool = False
    staff_role: str | None = None
    system: bool = False
    stage: str | None = None  # learners: how far they got


ACCOUNTS = (
    Account("admin", "superuser: everything, in the API and the admin", superuser=True),
    Account("demo_owner", "course owner: admin site, course reads, moves", staff_role="OWNER"),
    Account(
        "demo_instructor", "instructor: admin site, course reads, moves", staff_role="INSTRUCTOR"
    ),
    Account("demo_system", "system account: posts progress for anyone", system=True),
    # Learners are described by what the database says now (describe_learners), not by the
    # stage they were seeded at: the demo is there to be changed.
    Account("demo_new", "learner", stage="not_started"),
    Account("demo_active", "learner", stage="in_progress"),
    Account("demo_done", "learner", stage="completed"),
    Account("demo_certified", "learner", stage="certified"),
    Account("demo_dropped", "learner", stage="dropped"),
)
DEMO_USERNAMES = tuple(account.username for account in ACCOUNTS)

# (status, percent, minutes) per content item, in course order; missing items have no row.
STAGE_ROWS = {
    "not_started": [],
    "in_progress": [
        ("COMPLETED", None, 12),
        ("COMPLETED", None, 25),
        ("IN_PROGRESS", Decimal(40), 9),
    ],
    "completed": [("COMPLETED", None, m) for m in (10, 22, 31, 18, 45)],
    "certified": [("COMPLETED", None, m) for m in (8, 19, 27, 20, 52)],
    "dropped": [("IN_PROGRESS", Decimal(30), 6)],
}


def demo_password(username: str) -> str:
    """A password derived from SECRET_KEY: stable for this installation (so it can be printed
    on every run), unknown to anyone without the key (the demo also runs production-like)."""
    return salted_hmac("courseprogress.seed_demo", username).hexdigest()[:16]


@dataclass
class DemoResult:
    summary: Summary
    course: Course
    accounts: list[tuple[Account, object, str]]  # (account, user, token key)


def load_demo() -> DemoResult:
    """Create whatever part of the demo set is missing, in one transaction."""
    summary = Summary()
    with transaction.atomic():
        group = _staff_group(summary)
        users = {account.username: _account(account, group, summary) for account in ACCOUNTS}
        course = _course(summary)
        for account in ACCOUNTS:
            if account.staff_role:
                _, created = CourseStaff.objects.get_or_create(
                    course=course,
                    user=users[account.username],
                    defaults={"role": account.staff_role},
                )
                _count(summary, created)
            if account.stage:
                _learner(users[account.username], course, account.stage, summary)
        tokens = {}
        for account in ACCOUNTS:
            token, created = Token.objects.get_or_create(user=users[account.username])
            tokens[account.username] = token.key
            _count(summary, created)
    accounts = [(a, users[a.username], tokens[a.username]) for a in ACCOUNTS]
    return DemoResult(summary=summary, course=course, accounts=accounts)


def describe_learners(course: Course, users: list) -> dict[int, str]:
    """Each learner's role line as the data stands: status, course progress, enrollment id."""
    enrollments = {e.user_id: e for e in Enrollment.objects.filter(course=course, user__in=users)}
    progress = selectors.enrollment_progress(enrollment_ids=[e.pk for e in enrollments.values()])
    lines = {}
    for user in users:
        enrollment = enrollments.get(user.pk)
        if enrollment is None:
            lines[user.pk] = "learner: not enrolled"
            continue
        done = progress.get(enrollment.pk, 0)
        lines[user.pk] = (
            f"learner: {enrollment.status}, {done:.0f} % done (enrollment {enrollment.pk})"
        )
    return lines


def reset_all_data() -> None:
    """Every row of every table deleted (manage.py flush: ids start from 1 again) and the cache
    emptied of this installation's keys, so nothing cached for the old rows is served."""
    call_command("flush", interactive=False, verbosity=0)
    delete_pattern = getattr(cache, "delete_pattern", None)  # django-redis: this prefix only
    if delete_pattern is not None:
        delete_pattern("*")
    else:
        cache.clear()


def _count(summary: Summary, created: bool) -> None:
    summary.read += 1
    if created:
        summary.changed += 1
    else:
        summary.skipped += 1


def _staff_group(summary: Summary) -> Group:
    group, created = Group.objects.get_or_create(name=STAFF_GROUP)
    if created:
        for app_label, codename in STAFF_PERMISSIONS:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    _count(summary, created)
    return group


def _account(account: Account, group: Group, summary: Summary):
    """The account, created with its role if it is missing; an existing one is left alone."""
    User = get_user_model()
    user = User.objects.filter(username=account.username).first()
    _count(summary, user is None)
    if user is not None:
        return user
    email = f"{account.username}@example.com"
    password = demo_password(account.username)
    if account.superuser:
        return User.objects.create_superuser(account.username, email, password)
    user = User.objects.create_user(
        account.username, email, password, is_staff=bool(account.staff_role)
    )
    if account.staff_role:
        user.groups.add(group)
    if account.system:
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="progress", codename="update_any_progress"
            )
        )
    return user


def _course(summary: Summary) -> Course:
    course = Course.objects.filter(title=COURSE_TITLE).order_by("pk").first()
    _count(summary, course is None)
    if course is not None:
        return course
    course = Course.objects.create(
        title=COURSE_TITLE, description="A short course to try the progress API with."
    )
    for position, title in enumerate(CONTENT_TITLES, start=1):
        CourseContent.objects.create(course=course, title=title, position=position)
        _count(summary, True)
    return course


def _learner(user, course: Course, stage: str, summary: Summary) -> None:
    """Enrol and replay the learner's progress, unless they are enrolled already."""
    exists = Enrollment.objects.filter(user=user, course=course).exists()
    _count(summary, not exists)
    if exists:
        return
    enrollment, _ = services.enrol(user_id=user.pk, course_id=course.pk)
    contents = list(course.contents.order_by("position", "pk"))
    for content, (status, percent, minutes) in zip(contents, STAGE_ROWS[stage], strict=False):
        services.record_progress(
            user_id=user.pk,
            course_id=course.pk,
            content_id=content.pk,
            status=ProgressStatus(status),
            percent=percent,
            duration=minutes,
            metadata={"source": "seed_demo"},
        )
        _count(summary, True)
    if stage == "certified":
        services.update_enrollment(
            enrollment.pk, status=EnrollmentStatus.CERTIFIED, certificate_url=CERTIFICATE_URL
        )
    elif stage == "dropped":
        services.move_enrollment(enrollment.pk, EnrollmentStatus.DROPPED)
