"""A deterministic data set of any size, for benchmarks (seed_demo --courses/--contents/...).

Fast on purpose, so it bypasses the per-row services: users, content and enrollments are made
with bulk_create, progress rows with PostgreSQL's COPY (a multi-row INSERT elsewhere), and
afterwards the enrollments are brought in line with their rows by the set-based sync in
progress.services (the same rule as every API write), which also bumps their cache versions.

Everything is a function of (seed, course number, learner number, item number): names, titles,
statuses, minutes, timestamps. What already exists is skipped, so a rerun with the same
arguments creates nothing, and a run that stopped half-way is completed by the next one.
"""

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import status_sync
from progress.management.base import Progress, Summary, batched, keyset_ids
from progress.models import ContentProgress, Enrollment, Event

BASE = datetime(2025, 1, 1, tzinfo=UTC)
ROW_FIELDS = (
    "user",
    "course",
    "content",
    "status",
    "duration",
    "percent",
    "metadata",
    "created_at",
    "updated_at",
)
IN_CHUNK = 900  # ids per IN (...) list: under every backend's parameter limit


@dataclass(frozen=True)
class DatasetSpec:
    courses: int
    contents: int
    learners: int
    seed: int

    @property
    def prefix(self) -> str:
        return f"seed{self.seed}"

    def course_title(self, i: int) -> str:
        return f"Seed {self.seed} course {i + 1:04d}"

    def learner_name(self, k: int) -> str:
        return f"{self.prefix}_learner{k + 1:06d}"

    @property
    def owner_name(self) -> str:
        return f"{self.prefix}_owner"

    @property
    def system_name(self) -> str:
        return f"{self.prefix}_system"

    @property
    def rows(self) -> int:
        return self.courses * self.contents * self.learners


@dataclass
class DatasetResult:
    summary: Summary = field(default_factory=Summary)
    created: dict = field(default_factory=dict)
    synced: int = 0
    accounts: list = field(default_factory=list)  # (username, role, token key)
    course_ids: list = field(default_factory=list)
    spec: DatasetSpec | None = None
    timings: dict = field(default_factory=dict)  # seconds


def learner_plan(spec: DatasetSpec, i: int, k: int) -> tuple[int, int | None]:
    """(items completed, percent of the next item or None): 15 % have not started, 25 % have
    finished, the others stopped somewhere, part-way through one item."""
    rng = random.Random(f"{spec.seed}:{i}:{k}")
    draw = rng.random()
    if draw < 0.15:
        return 0, None
    if draw < 0.40:
        return spec.contents, None
    return rng.randrange(spec.contents), rng.randint(5, 95)


def enrolled_at(i: int, k: int) -> datetime:
    return BASE + timedelta(days=(i * 7 + k * 13) % 120, minutes=(k * 37) % 1440)


def learner_rows(spec: DatasetSpec, i: int, k: int, user_id: int, course_id: int, content_ids):
    """This learner's row for every content item: (user, course, content, status, minutes,
    percent, created, updated), ROW_FIELDS without metadata (always {})."""
    done, percent = learner_plan(spec, i, k)
    start = enrolled_at(i, k)
    for j, content_id in enumerate(content_ids):
        if j < done:
            status, pct, minutes = "COMPLETED", "100.00", 5 + (i * 7 + k * 13 + j * 31) % 56
        elif j == done and percent is not None:
            status, pct, minutes = "IN_PROGRESS", f"{percent}.00", 1 + (k + j) % 20
        else:
            status, pct, minutes = "NOT_STARTED", "0.00", 0
        created = start + timedelta(hours=6 * (j + 1))
        yield (
            user_id,
            course_id,
            content_id,
            status,
            minutes,
            pct,
            created,
            created + timedelta(minutes=minutes),
        )


class DatasetSeeder:
    def __init__(self, spec: DatasetSpec, *, batch_size: int, use_copy: bool, progress: Progress):
        self.spec = spec
        self.batch_size = batch_size
        self.use_copy = use_copy and connection.vendor == "postgresql"
        self.progress = progress
        self.result = DatasetResult(spec=spec)

    def _count(self, kind: str, considered: int, created: int) -> None:
        summary = self.result.summary
        summary.read += considered
        summary.changed += created
        summary.skipped += considered - created
        self.result.created[kind] = self.result.created.get(kind, 0) + created

    def run(self) -> DatasetResult:
        spec = self.spec
        started = time.monotonic()
        owner = self._account(spec.owner_name, "owner of every seeded course", perm=None)
        self._account(spec.system_name, "system account", perm="update_any_progress")
        learner_ids = self._learners()
        courses = self._courses(owner)
        for i, course in enumerate(courses):
            content_ids = self._contents(course)
            fresh = self._enrollments(course, i, learner_ids)
            self._rows(course, i, learner_ids, content_ids, fresh)
        self.progress.finish()
        self.result.timings["rows"] = time.monotonic() - started
        if self.result.created.get("progress rows") and connection.vendor == "postgresql":
            # Fresh planner statistics, for the sync below and for the benchmarks to come.
            with connection.cursor() as cursor:
                for model in (ContentProgress, Enrollment, CourseContent):
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        self._sync([course.pk for course in courses])
        if self.result.created.get("progress rows") and connection.vendor == "postgresql":
            # The triggers recorded an event per row written: the feed's plans need its stats.
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(Event._meta.db_table)}")
        self.result.timings["total"] = time.monotonic() - started
        self.result.course_ids = [course.pk for course in courses]
        return self.result

    # --- accounts, learners, courses ------------------------------------------------------

    def _account(self, username: str, role: str, perm: str | None):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"password": make_password(None), "is_staff": perm is None}
        )
        if created and perm:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="progress", codename=perm)
            )
        token, token_created = Token.objects.get_or_create(user=user)
        self._count("accounts", 2, int(created) + int(token_created))
        self.result.accounts.append((username, role, token.key))
        return user

    def _learners(self) -> list[int]:
        """The learners' user ids, in learner order; the missing ones are made in status_sync."""
        User = get_user_model()
        names = [self.spec.learner_name(k) for k in range(self.spec.learners)]
        ids = self._user_ids(names)
        missing = [name for name in names if name not in ids]
        if missing:
            unusable = make_password(None)  # one unusable hash: nobody logs in as a seed learner
            with transaction.atomic():
                User.objects.bulk_create(
                    [User(username=name, password=unusable) for name in missing],
                    batch_size=self.batch_size,
                    ignore_conflicts=True,
                )
            ids.update(self._user_ids(missing))
        self._count("learners", len(names), len(missing))
        return [ids[name] for name in names]

    @staticmethod
    def _user_ids(names: list[str]) -> dict[str, int]:
        User = get_user_model()
        ids = {}
        for chunk in batched(names, IN_CHUNK):
            ids.update(User.objects.filter(username__in=chunk).values_list("username", "pk"))
        return ids

    def _courses(self, owner) -> list[Course]:
        titles = [self.spec.course_title(i) for i in range(self.spec.courses)]
        existing = {}
        for course in Course.objects.filter(title__in=titles).order_by("pk"):
            existing.setdefault(course.title, course)
        courses = []
        for title in titles:
            course = existing.get(title)
            if course is None:
                course = Course.objects.create(title=title, description="Seeded for benchmarks.")
            courses.append(course)
        self._count("courses", len(titles), len(titles) - len(existing))
        staffed = set(
            CourseStaff.objects.filter(user=owner, course__in=courses).values_list(
                "course_id", flat=True
            )
        )
        CourseStaff.objects.bulk_create(
            [
                CourseStaff(course=course, user=owner, role=CourseStaff.Role.OWNER)
                for course in courses
                if course.pk not in staffed
            ],
            ignore_conflicts=True,
        )
        self._count("course staff", len(courses), len(courses) - len(staffed))
        return courses

    def _contents(self, course: Course) -> list[int]:
        positions = dict(CourseContent.objects.filter(course=course).values_list("position", "pk"))
        wanted = range(1, self.spec.contents + 1)
        missing = [p for p in wanted if p not in positions]
        if missing:
            with transaction.atomic():
                CourseContent.objects.bulk_create(
                    [
                        CourseContent(course=course, title=f"Item {p:04d}", position=p)
                        for p in missing
                    ]
                )
            positions = dict(
                CourseContent.objects.filter(course=course).values_list("position", "pk")
            )
        self._count("content items", len(wanted), len(missing))
        return [positions[p] for p in wanted]

    def _enrollments(self, course: Course, i: int, learner_ids: list[int]) -> bool:
        """Enrol every learner; True when the course had no enrollments before (no rows to skip)."""
        enrolled = set(Enrollment.objects.filter(course=course).values_list("user_id", flat=True))
        missing = [(k, uid) for k, uid in enumerate(learner_ids) if uid not in enrolled]
        with transaction.atomic():
            Enrollment.objects.bulk_create(
                [
                    Enrollment(
                        user_id=uid,
                        course=course,
                        enrolled_at=enrolled_at(i, k),
                        created_at=enrolled_at(i, k),
                    )
                    for k, uid in missing
                ],
                batch_size=self.batch_size,
                ignore_conflicts=True,
            )
        self._count("enrollments", len(learner_ids), len(missing))
        return not enrolled

    # --- progress rows ----------------------------------------------------------------------

    def _rows(self, course, i: int, learner_ids, content_ids, fresh: bool) -> None:
        """Every learner's row on every item, in batches of whole learners (one COPY each; the
        database's triggers move the batch's cache stamps)."""
        per_batch = max(1, self.batch_size // max(1, len(content_ids)))
        learners = list(enumerate(learner_ids))
        for chunk in batched(learners, per_batch):
            user_ids = [uid for _, uid in chunk]
            have = set()
            if not fresh:
                have = set(
                    ContentProgress.objects.filter(course=course, user_id__in=user_ids)
                    .order_by()
                    .values_list("user_id", "content_id")
                )
            rows = [
                row
                for k, uid in chunk
                for row in learner_rows(self.spec, i, k, uid, course.pk, content_ids)
                if (row[0], row[2]) not in have
            ]
            if rows:
                self._insert(rows)
            considered = len(chunk) * len(content_ids)
            self._count("progress rows", considered, len(rows))
            self.progress.advance(considered)

    def _insert(self, rows: list[tuple]) -> None:
        meta = ContentProgress._meta
        fields = [meta.get_field(name) for name in ROW_FIELDS]
        table = connection.ops.quote_name(meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with connection.cursor() as cursor:
            if self.use_copy:
                text = "".join(
                    f"{u}\t{c}\t{ct}\t{st}\t{d}\t{p}\t{{}}\t{cr.isoformat()}\t{up.isoformat()}\n"
                    for u, c, ct, st, d, p, cr, up in rows
                )
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(text)
            else:
                placeholders = ", ".join(["%s"] * len(fields))
                params = [
                    [
                        f.get_db_prep_save(value, connection)
                        for f, value in zip(fields, (u, c, ct, st, d, p, {}, cr, up), strict=True)
                    ]
                    for u, c, ct, st, d, p, cr, up in rows
                ]
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", params
                )

    # --- statuses -----------------------------------------------------------------------------

    def _sync(self, course_ids: list[int]) -> None:
        """Bring every seeded enrollment in line with its rows, set-based, in batches."""
        scope = Enrollment.objects.filter(course_id__in=course_ids)
        for ids in keyset_ids(scope, self.batch_size):
            self.result.synced += len(status_sync.apply_enrollment_status_drift(ids))
