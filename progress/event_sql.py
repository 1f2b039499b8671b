"""The SQL that records change events (contract section 6), read by migration 0004_events.

Events are written by the database, in the writing transaction, so every writer records them:
the API, the admin, commands, `Model.save()`, `QuerySet.update()/.delete()`, `bulk_create`,
COPY and plain SQL; a rolled-back change records nothing.

- PostgreSQL: one statement-level AFTER trigger per table and operation, reading the
  statement's transition tables (`REFERENCING NEW TABLE / OLD TABLE`; a trigger with transition
  tables may have only one event). Before a transaction numbers its first event it holds the
  feed's horizon back (progress_events_hold_horizon; see progress.events for why that makes
  the feed exactly-once).
- SQLite: row-level triggers that insert the same events. SQLite has one writer at a time, so
  events are numbered in commit order and the horizon is simply everything committed.

`progress.changed` fires on insert, and on an update that changes the status, the percent or the
duration (not for a metadata-only update, nor for a retry that changes nothing). TRUNCATE
records nothing.

Everything about events is in this module, so that it can later be folded into the cache-stamp
triggers of the same tables.
"""

EVENTS_TABLE = "progress_events"
# The identity sequence of progress_events.sequence (PostgreSQL names it <table>_<column>_seq).
# CACHE 1 (the default, set again in the migration): last_value is the last number handed out
# by any session, which the horizon relies on.
EVENTS_SEQUENCE = "progress_events_sequence_seq"

# Advisory lock keys of the horizon: HORIZON_LOCK_BASE + the sequence's last value. The top 16
# bits ("CE") keep them apart from any other advisory lock; pg_locks shows a bigint key's high
# half in classid (so classid >> 16 == HORIZON_LOCK_TAG) and its low half in objid, objsubid 1.
HORIZON_LOCK_TAG = 0x4345
HORIZON_LOCK_BASE = HORIZON_LOCK_TAG << 48
# A transaction-local setting that says "this transaction already holds its horizon lock"; it
# reverts with a rolled-back savepoint, exactly as the lock taken inside it is released.
HORIZON_HELD_SETTING = "progress.events_horizon_held"

# --- PostgreSQL ------------------------------------------------------------------------------

# CHANGED_ROWS_CHECK. The update triggers join the statement's new and old rows to find what
# changed. Planned as a nested loop, that compares every new row with every old one: 22 s for
# 10,000 enrollments, a bulk import touching 10,000 learners 17 s. PostgreSQL chose one twice:
# EXISTS is planned for its first row (and a statement that changes no status has none), and
# PL/pgSQL keeps a statement's plan for the session, so a plan made for a one-row POST was used
# for the next bulk statement on that connection. Hence the check as count(*) (planned for all
# rows) and `SET enable_nestloop = off` on these two functions: a hash join whatever the first
# statement was, 0.3 s and 0.9 s; one-row statements cost the same (bench/notes.md, issue 17).
# Migration 0009_events_linear_checks installs the functions again.

PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION progress_events_hold_horizon() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Once per transaction, before its first event is numbered: a shared advisory lock keyed
    -- by the sequence's last value L. Every event this transaction records gets a number > L,
    -- and while it runs the feed lists nothing past L (progress_events_horizon).
    IF current_setting('{HORIZON_HELD_SETTING}', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_advisory_xact_lock_shared(
            {HORIZON_LOCK_BASE} + coalesce(pg_sequence_last_value('{EVENTS_SEQUENCE}'), 0)
        );
        PERFORM set_config('{HORIZON_HELD_SETTING}', 'on', true);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION progress_events_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last_numbered bigint;
    oldest_running bigint;
BEGIN
    -- First the last number handed out, then the horizon locks still held (by other sessions:
    -- the caller sees its own writes anyway). Any event numbered <= last_numbered belongs to a
    -- transaction that took its lock before numbering it; if that transaction is still running
    -- its lock is listed here, and its key is below the event's number.
    last_numbered := coalesce(pg_sequence_last_value('{EVENTS_SEQUENCE}'), 0);
    SELECT min(((l.classid::bigint << 32) | l.objid::bigint) - {HORIZON_LOCK_BASE})
      INTO oldest_running
      FROM pg_locks l
     WHERE l.locktype = 'advisory'
       AND l.objsubid = 1
       AND (l.classid::bigint >> 16) = {HORIZON_LOCK_TAG}
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.pid IS DISTINCT FROM pg_backend_pid();  -- a prepared transaction has no pid
    RETURN least(last_numbered, coalesce(oldest_running, last_numbered));
END $$;

CREATE OR REPLACE FUNCTION progress_events_enrollment_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'enrollment.created', statement_timestamp(), n.courseid, n.userid,
               jsonb_build_object('enrollmentId', n.enrollmentid,
                                  'enrollmentStatus', n.enrollmentstatus)
          FROM new_rows n ORDER BY n.enrollmentid;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION progress_events_enrollment_updated() RETURNS trigger
LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
    -- count(*), not EXISTS: see CHANGED_ROWS_CHECK in progress/event_sql.py.
    IF (SELECT count(*) FROM new_rows n JOIN old_rows o ON o.enrollmentid = n.enrollmentid
         WHERE n.enrollmentstatus IS DISTINCT FROM o.enrollmentstatus) > 0 THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'enrollment.status_changed', statement_timestamp(), n.courseid, n.userid,
               jsonb_build_object('enrollmentId', n.enrollmentid,
                                  'from', o.enrollmentstatus, 'to', n.enrollmentstatus)
          FROM new_rows n JOIN old_rows o ON o.enrollmentid = n.enrollmentid
         WHERE n.enrollmentstatus IS DISTINCT FROM o.enrollmentstatus
         ORDER BY n.enrollmentid;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION progress_events_enrollment_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows) THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'enrollment.deleted', statement_timestamp(), o.courseid, o.userid,
               jsonb_build_object('enrollmentId', o.enrollmentid,
                                  'enrollmentStatus', o.enrollmentstatus)
          FROM old_rows o ORDER BY o.enrollmentid;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION progress_events_progress_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'progress.changed', statement_timestamp(), n.courseid, n.userid,
               jsonb_build_object('progressId', n.progressid,
                                  'courseContentId', n.coursecontentid,
                                  'progressStatus', n.progressstatus,
                                  'progressPercent', n.progresspercent::text,
                                  'activityDuration', n.activityduration,
                                  'previous', NULL)
          FROM new_rows n ORDER BY n.progressid;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION progress_events_progress_updated() RETURNS trigger
LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
    -- count(*), not EXISTS: see CHANGED_ROWS_CHECK in progress/event_sql.py.
    IF (SELECT count(*) FROM new_rows n JOIN old_rows o ON o.progressid = n.progressid
         WHERE (n.progressstatus, n.progresspercent, n.activityduration)
               IS DISTINCT FROM (o.progressstatus, o.progresspercent, o.activityduration)) > 0
    THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'progress.changed', statement_timestamp(), n.courseid, n.userid,
               jsonb_build_object('progressId', n.progressid,
                                  'courseContentId', n.coursecontentid,
                                  'progressStatus', n.progressstatus,
                                  'progressPercent', n.progresspercent::text,
                                  'activityDuration', n.activityduration,
                                  'previous', jsonb_build_object(
                                      'progressStatus', o.progressstatus,
                                      'progressPercent', o.progresspercent::text,
                                      'activityDuration', o.activityduration))
          FROM new_rows n JOIN old_rows o ON o.progressid = n.progressid
         WHERE (n.progressstatus, n.progresspercent, n.activityduration)
               IS DISTINCT FROM (o.progressstatus, o.progresspercent, o.activityduration)
         ORDER BY n.progressid;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION progress_events_progress_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows) THEN
        PERFORM progress_events_hold_horizon();
        INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data)
        SELECT 'progress.deleted', statement_timestamp(), o.courseid, o.userid,
               jsonb_build_object('progressId', o.progressid,
                                  'courseContentId', o.coursecontentid)
          FROM old_rows o ORDER BY o.progressid;
    END IF;
    RETURN NULL;
END $$;
"""

# (trigger, table, operation, transition tables, function)
PG_TRIGGERS = [
    (
        "progress_events_enrollment_insert",
        "enrollments",
        "INSERT",
        "NEW TABLE AS new_rows",
        "progress_events_enrollment_inserted",
    ),
    (
        "progress_events_enrollment_update",
        "enrollments",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "progress_events_enrollment_updated",
    ),
    (
        "progress_events_enrollment_delete",
        "enrollments",
        "DELETE",
        "OLD TABLE AS old_rows",
        "progress_events_enrollment_deleted",
    ),
    (
        "progress_events_progress_insert",
        "user_course_content_progress",
        "INSERT",
        "NEW TABLE AS new_rows",
        "progress_events_progress_inserted",
    ),
    (
        "progress_events_progress_update",
        "user_course_content_progress",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "progress_events_progress_updated",
    ),
    (
        "progress_events_progress_delete",
        "user_course_content_progress",
        "DELETE",
        "OLD TABLE AS old_rows",
        "progress_events_progress_deleted",
    ),
]

PG_FUNCTION_NAMES = [
    "progress_events_hold_horizon()",
    "progress_events_horizon()",
    *(f"{function}()" for *_, function in PG_TRIGGERS),
]


def pg_install() -> list[str]:
    statements = [
        f"ALTER TABLE {EVENTS_TABLE} ALTER COLUMN sequence SET CACHE 1",
        PG_FUNCTIONS,
    ]
    for name, table, operation, transitions, function in PG_TRIGGERS:
        statements.append(
            f"CREATE TRIGGER {name} AFTER {operation} ON {table} REFERENCING {transitions} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return statements


def pg_uninstall() -> list[str]:
    statements = [f"DROP TRIGGER IF EXISTS {name} ON {table}" for name, table, *_ in PG_TRIGGERS]
    statements += [f"DROP FUNCTION IF EXISTS {name}" for name in PG_FUNCTION_NAMES]
    return statements


# --- SQLite ----------------------------------------------------------------------------------

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
_SQLITE_INSERT = f"INSERT INTO {EVENTS_TABLE} (type, occurred_at, course_id, user_id, data) VALUES "
_SQLITE_PROGRESS_CHANGED = """json_object(
    'progressId', NEW.progressid, 'courseContentId', NEW.coursecontentid,
    'progressStatus', NEW.progressstatus,
    'progressPercent', printf('%.2f', NEW.progresspercent),
    'activityDuration', NEW.activityduration, 'previous', {previous})"""

_SQLITE_PROGRESS_INSERTED = _SQLITE_PROGRESS_CHANGED.format(previous="NULL")
_SQLITE_PROGRESS_UPDATED = _SQLITE_PROGRESS_CHANGED.format(
    previous="""json_object('progressStatus', OLD.progressstatus,
        'progressPercent', printf('%.2f', OLD.progresspercent),
        'activityDuration', OLD.activityduration)"""
)

SQLITE_TRIGGERS = {
    "progress_events_enrollment_insert": f"""
CREATE TRIGGER progress_events_enrollment_insert AFTER INSERT ON enrollments BEGIN
    {_SQLITE_INSERT} ('enrollment.created', {_SQLITE_NOW}, NEW.courseid, NEW.userid,
        json_object('enrollmentId', NEW.enrollmentid, 'enrollmentStatus', NEW.enrollmentstatus));
END""",
    "progress_events_enrollment_update": f"""
CREATE TRIGGER progress_events_enrollment_update AFTER UPDATE ON enrollments
WHEN NEW.enrollmentstatus IS NOT OLD.enrollmentstatus BEGIN
    {_SQLITE_INSERT} ('enrollment.status_changed', {_SQLITE_NOW}, NEW.courseid, NEW.userid,
        json_object('enrollmentId', NEW.enrollmentid,
                    'from', OLD.enrollmentstatus, 'to', NEW.enrollmentstatus));
END""",
    "progress_events_enrollment_delete": f"""
CREATE TRIGGER progress_events_enrollment_delete AFTER DELETE ON enrollments BEGIN
    {_SQLITE_INSERT} ('enrollment.deleted', {_SQLITE_NOW}, OLD.courseid, OLD.userid,
        json_object('enrollmentId', OLD.enrollmentid, 'enrollmentStatus', OLD.enrollmentstatus));
END""",
    "progress_events_progress_insert": f"""
CREATE TRIGGER progress_events_progress_insert AFTER INSERT ON user_course_content_progress BEGIN
    {_SQLITE_INSERT} ('progress.changed', {_SQLITE_NOW}, NEW.courseid, NEW.userid,
        {_SQLITE_PROGRESS_INSERTED});
END""",
    "progress_events_progress_update": f"""
CREATE TRIGGER progress_events_progress_update AFTER UPDATE ON user_course_content_progress
WHEN NEW.progressstatus IS NOT OLD.progressstatus
  OR NEW.progresspercent IS NOT OLD.progresspercent
  OR NEW.activityduration IS NOT OLD.activityduration BEGIN
    {_SQLITE_INSERT} ('progress.changed', {_SQLITE_NOW}, NEW.courseid, NEW.userid,
        {_SQLITE_PROGRESS_UPDATED});
END""",
    "progress_events_progress_delete": f"""
CREATE TRIGGER progress_events_progress_delete AFTER DELETE ON user_course_content_progress BEGIN
    {_SQLITE_INSERT} ('progress.deleted', {_SQLITE_NOW}, OLD.courseid, OLD.userid,
        json_object('progressId', OLD.progressid, 'courseContentId', OLD.coursecontentid));
END""",
}


def sqlite_install() -> list[str]:
    return list(SQLITE_TRIGGERS.values())


def sqlite_uninstall() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]


def install(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": pg_install, "sqlite": sqlite_install}.get(vendor, list)()
    for statement in statements:
        schema_editor.execute(statement, params=None)


def uninstall(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": pg_uninstall, "sqlite": sqlite_uninstall}.get(vendor, list)()
    for statement in statements:
        schema_editor.execute(statement, params=None)
