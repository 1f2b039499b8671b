"""A learner's progress write in one round trip on PostgreSQL: the SQL twin of
services.record_progress (contract 3.3).

The rules are those of progress/services.py and progress/rules.py; this module writes them as
one PL/pgSQL function, `cp_record_progress`, built here from the same data (rules.ACTIVE,
rules.PROGRESS_RANK, rules.MOVES_AUTOMATICALLY, rules.ACTIVITY, models.MAX_METADATA_BYTES) and
installed by the migrations (0005_record_progress_function; a test checks that the installed
function is the one this module builds, so a rule changed here without a migration fails the
suite). What each step mirrors:

| step (in this order)                    | the Python path                                  |
|-----------------------------------------|--------------------------------------------------|
| lock the enrollment, check the content  | services.record_progress (400 before 409)        |
| lock the row, merge or take as sent     | services.merged_progress_fields                  |
| write only what changes                 | services.record_progress ("a retry writes nothing") |
| the learner's counts, the automatic move | services.progress_stats, rules.automatic_target, |
| and the completion date                 | rules.entering (via services._sync_locked)       |

One shortcut the Python path does not take, with the same results: a write that leaves its row
IN_PROGRESS moves the enrollment without counting. That row is one of the course's items and is
not COMPLETED, so "every item COMPLETED" cannot hold, and it is activity, so ENROLLED moves to
IN_PROGRESS and nothing else moves (rules.automatic_target). Two of the three writes a learner
makes to an item are of that kind (bench/notes.md, issue 17, "the POST (third pass)").

Why a function and not one `INSERT ... ON CONFLICT` statement: the automatic moves count the
learner's other rows, and a statement sees the rows committed when it *started*. Two requests
completing a learner's last two items would each wait for the enrollment lock, then count
with a snapshot that misses the other's row, and neither would complete the enrollment (the
race of tests/test_concurrency.py). Inside a VOLATILE function each statement takes a fresh
snapshot, so the count runs after the lock is held and sees every committed row, exactly as
the Python path's separate statements do. The lock order stays the same as every other writer:
the enrollment row first, then the progress row (services' module docstring).

Nothing is written before every check has passed: a refusal comes back as an `outcome` with no
row, and services raises the same error as the Python path. One case goes back to Python: a
learner's metadata merge whose result might pass 16 KiB. The limit counts
`json.dumps(merged)` (ASCII-escaped), which SQL cannot reproduce byte for byte; jsonb's text
is never more than 3 times shorter (a non-ASCII character is at most 3 times longer escaped,
numbers and punctuation are no longer), so a merge whose jsonb text is within a third of the
limit is certainly allowed, and a larger one is decided by the Python path, under the same
lock, before anything is written.

SQLite (the embedded default) keeps the Python path; tests/test_record_progress_paths.py runs
random sequences of writes through both paths on PostgreSQL and asserts the same rows,
enrollments, responses and errors.
"""

from progress import rules
from progress.models import MAX_METADATA_BYTES

FUNCTION = "cp_record_progress"
SIGNATURE = (
    f"{FUNCTION}(integer, integer, integer, text, numeric, integer, jsonb, boolean, timestamptz)"
)

# A merged metadata object whose jsonb text is at most this long is certainly within the limit
# (see above); a longer one is checked by the Python path.
METADATA_SURE_BYTES = MAX_METADATA_BYTES // 3

# Outcomes other than "ok" (services maps each to the Python path's error).
NOT_IN_COURSE = "not_in_course"
INACTIVE = "inactive"
LOCKED = "locked"
CHECK_METADATA = "check_metadata"

P = rules.ProgressStatus


def _quoted(values) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))


def _rank(expression: str) -> str:
    whens = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in rules.PROGRESS_RANK.items())
    return f"(CASE {expression} {whens} END)"


def function_sql() -> str:
    """CREATE OR REPLACE FUNCTION cp_record_progress: the rules above, as PL/pgSQL."""
    # The automatic moves only go forward, to IN_PROGRESS or COMPLETED; entering COMPLETED
    # dates the completion once (rules.entering). Entering ENROLLED is never automatic.
    moves = _quoted(rules.MOVES_AUTOMATICALLY)
    shows_activity = _quoted(rules.ACTIVITY - {P.COMPLETED})
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(
    p_user integer, p_course integer, p_content integer, p_status text, p_percent numeric,
    p_duration integer, p_metadata jsonb, p_exact boolean, p_now timestamptz
) RETURNS TABLE (
    outcome text, row_id integer, row_status text, row_percent numeric, row_duration integer,
    row_metadata jsonb, row_created_at timestamptz, row_updated_at timestamptz,
    wrote boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    created boolean;
    enr record;
    old record;
    new_status text;
    new_percent numeric;
    new_duration integer;
    new_metadata jsonb;
    n_contents bigint;
    n_completed bigint;
    n_active bigint;
    target text;
BEGIN
    wrote := false;
    created := false;
    -- services.record_progress: the enrollment first (the lock order of every writer), and
    -- the content check in the same statement; a second one only when there is no enrollment.
    SELECT e.enrollmentid, e.enrollmentstatus,
           EXISTS (SELECT 1 FROM courseprogress_coursecontent c
                    WHERE c.id = p_content AND c.course_id = p_course) AS content_ok
      INTO enr
      FROM enrollments e WHERE e.userid = p_user AND e.courseid = p_course FOR UPDATE OF e;
    IF NOT FOUND THEN
        enr.content_ok := EXISTS (SELECT 1 FROM courseprogress_coursecontent c
                                   WHERE c.id = p_content AND c.course_id = p_course);
    END IF;
    IF NOT enr.content_ok THEN
        outcome := '{NOT_IN_COURSE}';
        RETURN NEXT;
        RETURN;
    END IF;
    IF enr.enrollmentid IS NULL OR enr.enrollmentstatus NOT IN ({_quoted(rules.ACTIVE)}) THEN
        outcome := '{INACTIVE}';
        RETURN NEXT;
        RETURN;
    END IF;

    -- services.merged_progress_fields. COMPLETED with no percent means 100.00.
    IF p_status = '{P.COMPLETED}' AND p_percent IS NULL THEN
        p_percent := 100.00;
    END IF;
    LOOP
        SELECT r.progressid, r.progressstatus, r.progresspercent, r.activityduration,
               r.metadata, r.user_course_content_progress_created_at AS created_at,
               r.user_course_content_progress_updated_at AS updated_at
          INTO old
          FROM user_course_content_progress r
         WHERE r.userid = p_user AND r.courseid = p_course AND r.coursecontentid = p_content
           FOR UPDATE;
        EXIT WHEN FOUND;
        -- A new row: the fields as sent, the columns' defaults for the rest.
        INSERT INTO user_course_content_progress AS r (
            userid, courseid, coursecontentid, progressstatus, progresspercent,
            activityduration, metadata, user_course_content_progress_created_at,
            user_course_content_progress_updated_at)
        VALUES (p_user, p_course, p_content, p_status, coalesce(p_percent, 0.00),
                coalesce(p_duration, 0), coalesce(p_metadata, '{{}}'::jsonb), p_now, p_now)
        ON CONFLICT (userid, courseid, coursecontentid) DO NOTHING
        RETURNING r.progressid, r.progressstatus, r.progresspercent, r.activityduration,
                  r.metadata, r.user_course_content_progress_created_at,
                  r.user_course_content_progress_updated_at
             INTO row_id, row_status, row_percent, row_duration, row_metadata,
                  row_created_at, row_updated_at;
        IF FOUND THEN
            created := true;
            EXIT;
        END IF;
        -- A writer that does not lock the enrollment inserted it meanwhile: merge with it.
    END LOOP;

    IF NOT created THEN
        IF p_exact THEN
            -- System users and admins: the fields sent, as sent.
            new_status := p_status;
            new_percent := coalesce(p_percent, old.progresspercent);
            new_duration := coalesce(p_duration, old.activityduration);
            new_metadata := coalesce(p_metadata, old.metadata);
        ELSE
            IF old.progressstatus = '{P.LOCKED}' THEN
                outcome := '{LOCKED}';
                RETURN NEXT;
                RETURN;
            END IF;
            -- A learner: the further status, the larger percent and duration, keys merged.
            new_status := CASE WHEN {_rank("p_status")} >= {_rank("old.progressstatus")}
                               THEN p_status ELSE old.progressstatus END;
            new_percent := greatest(p_percent, old.progresspercent);
            new_duration := greatest(p_duration, old.activityduration);
            new_metadata := old.metadata;
            IF p_metadata IS NOT NULL AND p_metadata <> '{{}}'::jsonb THEN
                new_metadata := old.metadata || p_metadata;
                IF octet_length(new_metadata::text) > {METADATA_SURE_BYTES} THEN
                    outcome := '{CHECK_METADATA}';
                    RETURN NEXT;
                    RETURN;
                END IF;
            END IF;
        END IF;
        outcome := 'ok';
        IF (new_status, new_percent, new_duration, new_metadata)
           IS NOT DISTINCT FROM
           (old.progressstatus, old.progresspercent, old.activityduration, old.metadata) THEN
            -- A retry that changes nothing writes nothing (and moves nothing).
            SELECT old.progressid, old.progressstatus, old.progresspercent,
                   old.activityduration, old.metadata, old.created_at, old.updated_at
              INTO row_id, row_status, row_percent, row_duration, row_metadata,
                   row_created_at, row_updated_at;
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE user_course_content_progress AS r
           SET progressstatus = new_status, progresspercent = new_percent,
               activityduration = new_duration, metadata = new_metadata,
               user_course_content_progress_updated_at = p_now
         WHERE r.progressid = old.progressid
        RETURNING r.progressid, r.progressstatus, r.progresspercent, r.activityduration,
                  r.metadata, r.user_course_content_progress_created_at,
                  r.user_course_content_progress_updated_at
             INTO row_id, row_status, row_percent, row_duration, row_metadata,
                  row_created_at, row_updated_at;
    END IF;
    outcome := 'ok';
    wrote := true;
    target := enr.enrollmentstatus;

    -- services._sync_locked: the automatic moves (rules.automatic_target), with counts that
    -- see this write and every committed one (this statement's snapshot is taken now).
    IF enr.enrollmentstatus IN ({moves}) AND row_status IN ({shows_activity}) THEN
        -- No count needed: this row is one of the course's items and is not COMPLETED, so
        -- not every item is completed, and it shows activity (rules.automatic_target).
        target := CASE WHEN enr.enrollmentstatus = '{rules.E.ENROLLED}'
                       THEN '{rules.E.IN_PROGRESS}' ELSE enr.enrollmentstatus END;
    ELSIF enr.enrollmentstatus IN ({moves}) THEN
        -- Driven by the learner's rows (the (userid, courseid) index), not by the course's
        -- items: a plan that starts from the items of a course the statistics have not seen
        -- yet scans the whole course's rows once per item.
        SELECT (SELECT count(*) FROM courseprogress_coursecontent c WHERE c.course_id = p_course),
               count(*) FILTER (WHERE r.progressstatus = '{P.COMPLETED}'),
               count(*) FILTER (WHERE r.progressstatus IN ({_quoted(rules.ACTIVITY)}))
          INTO n_contents, n_completed, n_active
          FROM user_course_content_progress r
          JOIN courseprogress_coursecontent c
            ON c.id = r.coursecontentid AND c.course_id = p_course
         WHERE r.userid = p_user AND r.courseid = p_course;
        target := CASE
            WHEN n_contents > 0 AND n_completed >= n_contents THEN '{rules.E.COMPLETED}'
            WHEN n_active > 0 AND enr.enrollmentstatus = '{rules.E.ENROLLED}'
                THEN '{rules.E.IN_PROGRESS}'
            ELSE enr.enrollmentstatus END;
    END IF;
    IF target <> enr.enrollmentstatus THEN
        -- rules.entering: COMPLETED dates the completion, once.
        UPDATE enrollments e
           SET enrollmentstatus = target,
               completiondate = CASE WHEN target = '{rules.E.COMPLETED}'
                                     THEN coalesce(e.completiondate, p_now)
                                     ELSE e.completiondate END,
               enrollment_updated_at = p_now
         WHERE e.enrollmentid = enr.enrollmentid;
    END IF;
    RETURN NEXT;
END $fn$;
"""


def install_sql() -> list[str]:
    # CREATE OR REPLACE cannot change a function's result columns: drop whatever is installed.
    return [*uninstall_sql(), function_sql()]


def uninstall_sql() -> list[str]:
    return [f"DROP FUNCTION IF EXISTS {SIGNATURE}"]


def install(schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in install_sql():
            schema_editor.execute(statement, params=None)


def uninstall(schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in uninstall_sql():
            schema_editor.execute(statement, params=None)


CALL = (
    f"SELECT outcome, row_id, row_status, row_percent, row_duration, row_metadata,"
    f" row_created_at, row_updated_at, wrote"
    f" FROM {FUNCTION}(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
