"""Cached reads that are never stale and never leak (contract 3.9).

Every cached entry is checked against a stamp read from the database in the same request:
- one learner in a course: (enrollment id, enrollment cache_version);
- a whole course: (course cache_version, number of enrollments, sum of their cache versions).
The database moves these itself, by triggers, in the transaction of every write — whoever
writes: the API, the admin, commands, `QuerySet.update()`, `bulk_create()`, plain SQL (see
progress/migrations/0003_freshness_triggers.py for what moves which stamp, and why a stamp
never comes back). An entry made before a write therefore can never be served after it: its
stamp no longer matches the database.

Writes delete no entries (they did until issue 17's third pass, bench/notes.md): the delete
only freed memory early, and cost every write a Redis round trip whether a read followed or not
(a read that then finds the stale entry pays one small stamp statement more than one that finds
none: cached_at_once). Redis stays bounded without it: every entry keeps its TTL (CACHE_TTL_*),
and keys are per learner and course, per course, or per validated parameters, so the next read
overwrites a stale entry rather than adding one beside it.

Callers authorise first; these functions only ever see requests already allowed to read.
Redis errors are ignored by django-redis (short socket timeouts, logged), so a read falls back
to the database and a write never fails because Redis is away.
"""

import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import NamedTuple, cast

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from courseprogress import replicas
from courseprogress.renderers import JSONFragment, dumps, json_fragment
from courseprogress.safe_cache import safe_get, safe_set

# The layout of the entries (see "entries" below). A new layout takes a new version, so that
# while old and new workers run side by side (a rolling deploy) neither reads the other's.
LAYOUT = "v3"


def learner_key(course_id: int, user_id: int) -> str:
    return f"learner:{LAYOUT}:{course_id}:{user_id}"


def analytics_key(course_id: int) -> str:
    return f"analytics:{LAYOUT}:{course_id}"


def activities_key(course_id: int, user_id: int, params: dict) -> str:
    return f"activities:{LAYOUT}:{course_id}:{user_id}:{params_digest(params)}"


def course_page_key(course_id: int, params: dict) -> str:
    return f"coursepage:{LAYOUT}:{course_id}:{params_digest(params)}"


def params_digest(params: dict) -> str:
    """A digest of validated parameters (selectors.validated_params). As JSON, so that no value
    can pass for another pair: joined as "k=v&k=v", {"limit": "2&order=desc"} and
    {"limit": "2", "order": "desc"} were the same key."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


class Stamp(NamedTuple):
    """A stamp, and the primary's WAL position when it was read (None without replicas): a
    miss is computed where every write up to there is visible (courseprogress/replicas.py)."""

    value: str
    position: str | None = None


def learner_stamp(*, course_id: int, user_id: int) -> Stamp | None:
    """The learner's stamp; None when not enrolled (such reads are not cached).

    Read on every cached request, so it is one plain statement: through the ORM, building the
    query cost several times more than running it (bench/RESULTS.md)."""
    with connection.cursor() as cursor:
        cursor.execute(_stamp_sql(reads_position())["learner"], [user_id, course_id])
        row = cursor.fetchone()
    return Stamp(*row) if row else None


def course_stamp_at(course_id: int) -> Stamp | None:
    """A stamp that changes with every write in the course; None when the course does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(_stamp_sql(reads_position())["course"], [course_id])
        row = cursor.fetchone()
    return None if row is None else _course_stamp(row)


def _course_stamp(row) -> Stamp:
    """The course stamp from the course statement's columns: version, enrollments, their sum."""
    course_version, enrollments, versions, *position = row
    return Stamp(f"{course_version}:{enrollments}:{versions}", *position)


def learner_stamp_sql() -> str:
    """learner_stamp()'s value as a scalar subquery (parameters: user, course; NULL when not
    enrolled), to be read with the data (selectors._learner_stamped_sql)."""
    return f"({_stamp_sql(False)['learner']})"


def course_stamp_and_staff(course_id: int, user_id: int) -> tuple[Stamp | None, set[int]]:
    """course_stamp_at(course_id), and the ids of the courses `user_id` is staff of (OWNER or
    INSTRUCTOR), in one statement: a course-scoped read authorises (progress/policy.py decides
    with them) and checks its cache with one round trip. Plain SQL, the same on every
    database: the staff rows, then the course's stamp row (none when the course is missing)."""
    with connection.cursor() as cursor:
        cursor.execute(_stamp_sql(reads_position())["course_and_staff"], [user_id, course_id])
        rows = cursor.fetchall()
    taught = {row[1] for row in rows if row[0] == 0}
    course = [row[1:] for row in rows if row[0] == 1]  # none when the course is missing
    return (_course_stamp(course[0]) if course else None), taught


def learner_version(*, course_id: int, user_id: int) -> str | None:
    stamp = learner_stamp(course_id=course_id, user_id=user_id)
    return stamp.value if stamp else None


def course_stamp(course_id: int) -> str | None:
    stamp = course_stamp_at(course_id)
    return stamp.value if stamp else None


def reads_position() -> bool:
    """The WAL position is read only when replicas may compute: without them it costs nothing."""
    return replicas.enabled() and connection.vendor == "postgresql"


@functools.cache
def _stamp_sql(with_position: bool) -> dict[str, str]:
    """The stamp statements, with table and column names taken from the models; with the
    primary's WAL position in the same statement when `with_position`."""
    from courseprogress.models import Course, CourseStaff
    from progress.models import Enrollment

    qn = connection.ops.quote_name

    def column(model, name):
        return qn(model._meta.get_field(name).column)

    position = ", pg_current_wal_lsn()::text" if with_position else ""
    enrollments, courses = qn(Enrollment._meta.db_table), qn(Course._meta.db_table)
    course = (
        f"SELECT c.{column(Course, 'cache_version')}, COUNT(e.{column(Enrollment, 'id')}),"
        f" COALESCE(SUM(e.{column(Enrollment, 'cache_version')}), 0){position}"
        f" FROM {courses} c LEFT JOIN {enrollments} e"
        f" ON e.{column(Enrollment, 'course')} = c.{column(Course, 'id')}"
        f" WHERE c.{column(Course, 'id')} = %s"
        f" GROUP BY c.{column(Course, 'id')}, c.{column(Course, 'cache_version')}"
    )
    staff = (
        f"SELECT 0, {column(CourseStaff, 'course')}, NULL, NULL{', NULL' if with_position else ''}"
        f" FROM {qn(CourseStaff._meta.db_table)} WHERE {column(CourseStaff, 'user')} = %s"
    )
    return {
        # (enrollment id, cache_version) as the one text value both the stamp read and the
        # one-statement 3.1 read compare with (learner_stamp_sql).
        "learner": (
            f"SELECT CAST({column(Enrollment, 'id')} AS TEXT) || '.' ||"
            f" CAST({column(Enrollment, 'cache_version')} AS TEXT){position}"
            f" FROM {enrollments}"
            f" WHERE {column(Enrollment, 'user')} = %s AND {column(Enrollment, 'course')} = %s"
        ),
        "course": course,
        "course_and_staff": f"{staff} UNION ALL SELECT 1, {course.removeprefix('SELECT ')}",
    }


# --- entries: the JSON of a read, part by part ---------------------------------------------
#
# A read's result is a dict (its top-level keys: "enrollments" and "activityLogs", or "results"
# and "pagination", or the analytics figures). Each value is stored as the JSON bytes the
# renderer would write for it, so a hit is one Redis read and a copy into the response: no
# unpickling of rows and no rendering again (bench/RESULTS.md). Callers get the parts back as
# json_fragment()s, which the renderer splices in as they are.


def _parts_at(entry, stamp) -> dict[str, JSONFragment] | None:
    if isinstance(entry, dict) and entry.get("stamp") == stamp and "parts" in entry:
        return {name: json_fragment(body) for name, body in entry["parts"].items()}
    return None


def _compute_and_store(key: str, stamp: Stamp, compute: Callable[[], dict], ttl: int) -> dict:
    # On a replica only once it has every write up to where the stamp was read: the entry is
    # never older than its stamp.
    return _store(key, stamp.value, replicas.compute_at(stamp.position, compute), ttl)


def _store(key: str, stamp: str, data: dict, ttl: int) -> dict:
    """Keep `data` under `key` as made at `stamp`; its parts as JSON fragments."""
    parts = {name: dumps(value) for name, value in data.items()}
    if any(body is None for body in parts.values()):  # not for orjson: serve it, do not keep it
        return data
    safe_set(key, {"stamp": stamp, "parts": parts}, ttl)
    return {name: json_fragment(cast(bytes, body)) for name, body in parts.items()}


def _stamp_of(entry) -> str | None:
    """The stamp an entry was made at; None for no entry or one of another shape."""
    if isinstance(entry, dict) and "parts" in entry and isinstance(entry.get("stamp"), str):
        return entry["stamp"]
    return None


def cached_at_once(
    key: str,
    *,
    stamp: Callable[[], Stamp | None],
    compute: Callable[[], dict],
    stamp_and_compute: Callable[[], tuple[str | None, dict]],
    ttl_name: str,
) -> dict:
    """cached(), with a miss that finds no entry in one database statement instead of two.

    - An entry: `stamp()` (a small statement, cheap to plan), then the entry when it was made
      at that stamp, else compute() stored under it: as cached().
    - No entry: `stamp_and_compute()` returns the stamp and the result from one statement (so
      from one snapshot), and the result is stored under that stamp.
    A stamp of None (e.g. not enrolled) means: not cached, compute()'s answer as it is.
    Contract 3.9 holds as in cached(): an entry is served only when its stamp equals the one
    read from the database in this request. Not where replicas compute misses: there a miss
    waits for the stamp's WAL position (_compute_and_store)."""
    entry = safe_get(key)
    if _stamp_of(entry) is None:
        current, data = stamp_and_compute()
        return data if current is None else _store(key, current, data, ttl(ttl_name))
    found = stamp()
    if found is None:
        return compute()
    parts = _parts_at(entry, found.value)
    if parts is not None:
        return parts
    return _store(key, found.value, compute(), ttl(ttl_name))


def get_or_compute(key: str, stamp: Stamp, compute: Callable[[], dict], ttl: int) -> dict:
    """compute()'s result as stored under `key` if it was made at `stamp`; else compute it,
    store it and return it. Either way the values are JSON fragments for the renderer."""
    parts = _parts_at(safe_get(key), stamp.value)
    if parts is not None:
        return parts
    return _compute_and_store(key, stamp, compute, ttl)


def get_or_compute_once(key: str, stamp: Stamp, compute: Callable[[], dict], ttl: int, wait=2.0):
    """As get_or_compute, but when many requests miss at once only one computes.

    The others wait up to `wait` seconds for its result, then compute themselves. A Redis
    error on the lock (add() answers None when errors are ignored) means: just compute.
    """
    parts = _parts_at(safe_get(key), stamp.value)
    if parts is not None:
        return parts
    digest = hashlib.blake2b(stamp.value.encode(), digest_size=8).hexdigest()
    lock_key = f"{key}:computing:{digest}"
    acquired = cache.add(lock_key, 1, timeout=max(int(wait * 5), 5))
    if acquired is False:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            parts = _parts_at(safe_get(key), stamp.value)
            if parts is not None:
                return parts
    result = _compute_and_store(key, stamp, compute, ttl)
    if acquired:
        cache.delete(lock_key)
    return result


def cached(key: str, stamp: Stamp, compute: Callable[[], dict], *, ttl_name: str, once=False):
    """The one cached read: compute()'s result as stored under `key` while it was made at
    `stamp`, else computed, stored and returned; `ttl_name` names the CACHE_TTL_* setting.
    With `once`, concurrent misses compute it once (get_or_compute_once: the heavy reads)."""
    fetch = get_or_compute_once if once else get_or_compute
    return fetch(key, stamp, compute, ttl(ttl_name))


def as_data(parts: dict) -> dict:
    """A read's result as Python data again (for pages that show it rather than send it)."""
    return {
        name: json.loads(value.body) if isinstance(value, JSONFragment) else value
        for name, value in parts.items()
    }


def ttl(name: str) -> int:
    return getattr(settings, f"CACHE_TTL_{name}")
