"""Each enrollment's progress total, kept by the database: `enrollments.progress_total`.

The course page sorted by progress (3.2), the bulk read (3.6), the admin's lists and the
analytics' averageProgress all need each learner's score total in the course: the sum over the
learner's progress rows there of the row's score (rules.STATUS_SCORES: 100 when COMPLETED, else
the percent). Summed on every read, that was ~22 ms of the course page's database time (500
learners, 50,000 rows). The total is kept on the enrollment instead, in integer hundredths (the
percent has two decimals, so the sum is exact on both databases: no float drift), by the same
triggers that keep the cache stamps (migration 0003), in the writing transaction, whoever
writes. Like `cache_version`, Python never writes it: a stale `Model.save()` or an
`update(progress_total=...)` leaves it as it is.

PostgreSQL (migration 0007 installs what this module builds):
- the statement-level progress triggers (`cp_progress_changed`) add to each touched
  (user, course) pair the DELTA of its rows' scores, new rows' scores minus old rows', from the
  transition tables, in the UPDATE of the enrollment that already bumps its stamp
  (`cp_touch_learners`). A delta, not a recount: under READ COMMITTED an UPDATE that waits for
  another writer's lock on the enrollment re-evaluates `total + delta` on the row version that
  writer committed, while a recount's subquery would still use the statement's old snapshot and
  miss the other writer's row. A row moved to another learner or course is a negative delta for
  its old pair and a positive one for its new pair; TRUNCATE sets every total to 0.
- the enrollment's BEFORE UPDATE trigger keeps the total as it was unless the update comes
  from one of these triggers (pg_trigger_depth() > 1), and recounts it when the enrollment
  moves to another learner or course; a BEFORE INSERT trigger counts it from the rows present
  (an enrollment deleted and made again starts from the learner's rows, which outlive it).
SQLite (single writer: a recount always sees every row): the enrollment's AFTER UPDATE trigger,
which every progress write already fires through its stamp bump, recounts the total (a stale
save is recounted too), and an AFTER INSERT trigger counts it when the learner has rows.

One race is left, on PostgreSQL: an enrollment inserted (or moved to another learner or course)
while another transaction writes that learner's rows in the course. Each misses the other's
uncommitted work (the insert's count cannot see the row; the row's delta finds no enrollment),
so the total drifts. The API cannot make it (a learner's POST needs a committed active
enrollment); an import or plain SQL writing rows for a learner being enrolled at that moment
can. `manage.py recount_progress_totals` repairs it (services.recount_progress_totals: each
drifted enrollment updated under RECOUNT_SETTING, its own trigger counting once the row is
locked). Closing the race would take the totals out of the enrollment row into their own
(user, course) table kept by upserts (INSERT ... ON CONFLICT DO UPDATE waits for the other
writer), one more write per POST.

The score is written here from rules.STATUS_SCORES, the rule's one home;
tests/test_progress_total.py checks that the installed functions are the ones this module
builds, and that every writer leaves every total equal to a recount by that rule in Python.
"""

from progress import rules
from progress.models import ContentProgress, Enrollment

PROGRESS = ContentProgress._meta.db_table
ENROLLMENTS = Enrollment._meta.db_table


def _column(model, name: str) -> str:
    return model._meta.get_field(name).column


USER, COURSE = _column(ContentProgress, "user"), _column(ContentProgress, "course")
STATUS, PERCENT = _column(ContentProgress, "status"), _column(ContentProgress, "percent")
TOTAL = _column(Enrollment, "progress_total")
E_USER, E_COURSE = _column(Enrollment, "user"), _column(Enrollment, "course")
E_ID = _column(Enrollment, "id")

# A transaction-local setting under which an update of an enrollment counts its total again
# from the rows (recount_totals below): the repair for a total that a race left wrong.
RECOUNT_SETTING = "courseprogress.recount_totals"

# Functions whose bodies test_progress_total compares with what is installed.
FUNCTIONS = ("cp_progress_changed", "cp_touch_learners", "cp_enrollment_own_columns")


def score_sql(row: str) -> str:
    """A progress row's score in hundredths (an integer), on the columns of `row`: the same
    expression on PostgreSQL and SQLite (percent * 100 is whole; ROUND guards SQLite's floats)."""
    whens = " ".join(
        f"WHEN '{status}' THEN {score * 100}" for status, score in rules.STATUS_SCORES.items()
    )
    return f"(CASE {row}.{STATUS} {whens} ELSE CAST(ROUND({row}.{PERCENT} * 100) AS BIGINT) END)"


def recount_sql(enrollment: str) -> str:
    """The total of the enrollment `enrollment` counted from its learner's rows in its course."""
    return (
        f"(SELECT COALESCE(SUM({score_sql('r')}), 0) FROM {PROGRESS} r"
        f" WHERE r.{USER} = {enrollment}.{E_USER} AND r.{COURSE} = {enrollment}.{E_COURSE})"
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def _deltas(source: str, sign: str) -> str:
    return f"SELECT {USER}, {COURSE}, {sign}{score_sql('t')} AS delta FROM {source} t"


def postgres_functions() -> dict[str, str]:
    """CREATE OR REPLACE of each function of FUNCTIONS (by name), with the score rule of today."""
    return {
        "cp_touch_learners": f"""
-- The learners whose progress rows changed: add each (user, course) pair's delta to its
-- enrollment's total as the enrollment's stamp is bumped; for pairs with no enrollment, bump
-- the course (migration 0003).
CREATE OR REPLACE FUNCTION cp_touch_learners(user_ids integer[], course_ids integer[],
                                             deltas bigint[])
RETURNS void LANGUAGE sql AS $fn$
    WITH pairs AS (
        SELECT p.userid, p.courseid, sum(p.delta)::bigint AS delta
        FROM unnest(user_ids, course_ids, deltas) AS p(userid, courseid, delta)
        GROUP BY p.userid, p.courseid
    ), touched AS (
        UPDATE {ENROLLMENTS} e SET cache_version = e.cache_version + 1,
                                   {TOTAL} = e.{TOTAL} + p.delta
        FROM pairs p WHERE e.{E_USER} = p.userid AND e.{E_COURSE} = p.courseid
        RETURNING e.{E_USER} AS userid, e.{E_COURSE} AS courseid
    )
    UPDATE courseprogress_course SET cache_version = cache_version + 1
    WHERE id IN (
        SELECT p.courseid FROM pairs p
        WHERE NOT EXISTS (
            SELECT 1 FROM touched t WHERE t.userid = p.userid AND t.courseid = p.courseid
        )
    )
$fn$;""",
        "cp_progress_changed": f"""
CREATE OR REPLACE FUNCTION cp_progress_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    user_ids integer[];
    course_ids integer[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(userid), array_agg(courseid), array_agg(delta)
          INTO user_ids, course_ids, deltas
          FROM ({_deltas("new_rows", "")}) AS changed;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(userid), array_agg(courseid), array_agg(delta)
          INTO user_ids, course_ids, deltas
          FROM ({_deltas("old_rows", "-")}) AS changed;
    ELSE
        SELECT array_agg(userid), array_agg(courseid), array_agg(delta)
          INTO user_ids, course_ids, deltas
          FROM ({_deltas("new_rows", "")} UNION ALL {_deltas("old_rows", "-")}) AS changed;
    END IF;
    IF user_ids IS NOT NULL THEN
        PERFORM cp_touch_learners(user_ids, course_ids, deltas);
    END IF;
    RETURN NULL;
END $fn$;""",
        "cp_enrollment_own_columns": f"""
-- The enrollment's own columns, whatever the writer sent: the stamp rises by one; the total
-- changes only by the progress triggers' deltas (an UPDATE run from a trigger), or is counted
-- again when the enrollment moves to another learner or course, or under RECOUNT_SETTING.
-- A BEFORE trigger runs once the row is locked, and its recount takes a snapshot of its own,
-- so it counts every row whose writer already applied its delta to this enrollment.
CREATE OR REPLACE FUNCTION cp_enrollment_own_columns() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.cache_version := OLD.cache_version + 1;
    IF NEW.{E_USER} <> OLD.{E_USER} OR NEW.{E_COURSE} <> OLD.{E_COURSE}
       OR current_setting('{RECOUNT_SETTING}', true) = 'on' THEN
        NEW.{TOTAL} := {recount_sql("NEW")};
    ELSIF pg_trigger_depth() < 2 THEN
        NEW.{TOTAL} := OLD.{TOTAL};
    END IF;
    RETURN NEW;
END $fn$;""",
    }


def postgres_install() -> list[str]:
    functions = postgres_functions()
    return [
        # The 0003 two-argument version is replaced by the one that takes the deltas.
        "DROP FUNCTION IF EXISTS cp_touch_learners(integer[], integer[])",
        functions["cp_touch_learners"],
        functions["cp_progress_changed"],
        functions["cp_enrollment_own_columns"],
        f"""
CREATE OR REPLACE FUNCTION cp_enrollment_counted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.{TOTAL} := {recount_sql("NEW")};
    RETURN NEW;
END $fn$""",
        f"""
CREATE OR REPLACE FUNCTION cp_progress_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE {ENROLLMENTS} SET {TOTAL} = 0 WHERE {TOTAL} <> 0;
    RETURN NULL;
END $fn$""",
        f"DROP TRIGGER IF EXISTS cp_enrollments_version ON {ENROLLMENTS}",
        f"""CREATE TRIGGER cp_enrollments_version BEFORE UPDATE ON {ENROLLMENTS}
    FOR EACH ROW EXECUTE FUNCTION cp_enrollment_own_columns()""",
        f"""CREATE TRIGGER cp_enrollments_counted BEFORE INSERT ON {ENROLLMENTS}
    FOR EACH ROW EXECUTE FUNCTION cp_enrollment_counted()""",
        f"""CREATE TRIGGER cp_progress_truncated AFTER TRUNCATE ON {PROGRESS}
    FOR EACH STATEMENT EXECUTE FUNCTION cp_progress_truncated()""",
    ]


# --- SQLite -----------------------------------------------------------------------------------


def sqlite_install() -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS cp_enrollments_version",
        # Fired by every update of the enrollment, the progress triggers' stamp bumps included.
        f"""CREATE TRIGGER cp_enrollments_version AFTER UPDATE ON {ENROLLMENTS} BEGIN
    UPDATE {ENROLLMENTS} SET cache_version = OLD.cache_version + 1, {TOTAL} = {recount_sql("NEW")}
    WHERE {E_ID} = NEW.{E_ID};
    END""",
        f"""CREATE TRIGGER cp_enrollments_counted AFTER INSERT ON {ENROLLMENTS}
    WHEN NEW.{TOTAL} <> 0 OR EXISTS (
        SELECT 1 FROM {PROGRESS} r WHERE r.{USER} = NEW.{E_USER} AND r.{COURSE} = NEW.{E_COURSE}
    ) BEGIN
    UPDATE {ENROLLMENTS} SET {TOTAL} = {recount_sql("NEW")} WHERE {E_ID} = NEW.{E_ID};
    END""",
    ]


def backfill_sql() -> str:
    """Every enrollment's total counted from the rows (before the guarding triggers exist), in
    one pass over the rows (an aggregate, not a subquery per enrollment); enrollments whose
    learner has no row keep the column's 0 and are not rewritten."""
    return (
        f"UPDATE {ENROLLMENTS} AS e SET {TOTAL} = t.total"
        f" FROM (SELECT r.{USER} AS userid, r.{COURSE} AS courseid,"
        f" SUM({score_sql('r')}) AS total FROM {PROGRESS} r GROUP BY r.{USER}, r.{COURSE}) t"
        f" WHERE e.{E_USER} = t.userid AND e.{E_COURSE} = t.courseid AND t.total <> 0"
    )


def drifted_sql(course_ids: list[int] | None) -> tuple[str, list]:
    """The ids of the enrollments (of these courses) whose total differs from a recount."""
    where, params = "", []
    if course_ids is not None:
        where = f" AND e.{E_COURSE} IN ({', '.join(['%s'] * len(course_ids))})"
        params = list(course_ids)
    return (
        f"SELECT e.{E_ID} FROM {ENROLLMENTS} e WHERE e.{TOTAL} <> {recount_sql('e')}{where}",
        params,
    )
