"""Each enrollment's progress total (`enrollments.progress_total`, hundredths of a score),
counted from the rows present, then kept by the triggers progress/total_sql.py builds (its
docstring says how and why). The column is added, filled and guarded in one transaction: the
ALTER TABLE's lock holds every writer of enrollments (and so every progress trigger) until the
triggers are in place."""

from django.db import migrations, models

from progress import total_sql

# Migration 0003's versions, put back when this migration is reversed.
POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS cp_progress_truncated ON user_course_content_progress;
DROP TRIGGER IF EXISTS cp_enrollments_counted ON enrollments;
DROP TRIGGER IF EXISTS cp_enrollments_version ON enrollments;
CREATE TRIGGER cp_enrollments_version BEFORE UPDATE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION cp_bump_own_version();
DROP FUNCTION IF EXISTS cp_progress_truncated();
DROP FUNCTION IF EXISTS cp_enrollment_counted();
DROP FUNCTION IF EXISTS cp_enrollment_own_columns();

CREATE OR REPLACE FUNCTION cp_touch_learners(user_ids integer[], course_ids integer[])
RETURNS void LANGUAGE sql AS $$
    WITH pairs AS (
        SELECT DISTINCT p.userid, p.courseid FROM unnest(user_ids, course_ids) AS p(userid, courseid)
    ), touched AS (
        UPDATE enrollments e SET cache_version = e.cache_version + 1
        FROM pairs p WHERE e.userid = p.userid AND e.courseid = p.courseid
        RETURNING e.userid, e.courseid
    )
    UPDATE courseprogress_course SET cache_version = cache_version + 1
    WHERE id IN (
        SELECT p.courseid FROM pairs p
        WHERE NOT EXISTS (
            SELECT 1 FROM touched t WHERE t.userid = p.userid AND t.courseid = p.courseid
        )
    )
$$;

CREATE OR REPLACE FUNCTION cp_progress_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    user_ids integer[];
    course_ids integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(userid), array_agg(courseid) INTO user_ids, course_ids
        FROM (SELECT DISTINCT userid, courseid FROM new_rows) AS changed;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(userid), array_agg(courseid) INTO user_ids, course_ids
        FROM (SELECT DISTINCT userid, courseid FROM old_rows) AS changed;
    ELSE
        SELECT array_agg(userid), array_agg(courseid) INTO user_ids, course_ids
        FROM (
            SELECT userid, courseid FROM new_rows UNION SELECT userid, courseid FROM old_rows
        ) AS changed;
    END IF;
    IF user_ids IS NOT NULL THEN
        PERFORM cp_touch_learners(user_ids, course_ids);
    END IF;
    RETURN NULL;
END $$;

DROP FUNCTION IF EXISTS cp_touch_learners(integer[], integer[], bigint[]);
"""

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS cp_enrollments_counted",
    "DROP TRIGGER IF EXISTS cp_enrollments_version",
    """CREATE TRIGGER cp_enrollments_version AFTER UPDATE ON enrollments BEGIN
    UPDATE enrollments SET cache_version = OLD.cache_version + 1
    WHERE enrollmentid = NEW.enrollmentid;
    END""",
]


# The change-event trigger on enrollments' updates (migration 0004) compares the statement's
# old and new rows for a status change; over every enrollment at once its join is quadratic
# (seconds at 10,000 enrollments), and the backfill changes no status: it is off for that one
# statement, inside this migration's transaction (which already holds the table's lock).
EVENTS_ON_UPDATE = "progress_events_enrollment_update"


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("SET LOCAL statement_timeout = 0", params=None)  # a large table
        schema_editor.execute(
            f"ALTER TABLE {total_sql.ENROLLMENTS} DISABLE TRIGGER {EVENTS_ON_UPDATE}", params=None
        )
        schema_editor.execute(total_sql.backfill_sql(), params=None)
        schema_editor.execute(
            f"ALTER TABLE {total_sql.ENROLLMENTS} ENABLE TRIGGER {EVENTS_ON_UPDATE}", params=None
        )
    else:
        schema_editor.execute(total_sql.backfill_sql(), params=None)
    if vendor == "postgresql":
        statements = total_sql.postgres_install()
    elif vendor == "sqlite":
        statements = total_sql.sqlite_install()
    else:  # pragma: no cover - the service runs on these two
        raise NotImplementedError(f"No progress total triggers for {vendor}.")
    for statement in statements:
        schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE, params=None)
    else:
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("progress", "0006_record_progress_function_returns_stored_row"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="enrollment",
                    name="progress_total",
                    field=models.BigIntegerField(db_default=0, default=0, editable=False),
                ),
            ],
            # The ALTER TABLE Django writes on PostgreSQL, on SQLite too: there AddField of a
            # NOT NULL column remakes the table, which drops every trigger on it (0003's, 0004's).
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE {total_sql.ENROLLMENTS}"
                    f" ADD COLUMN {total_sql.TOTAL} bigint DEFAULT 0 NOT NULL",
                    f"ALTER TABLE {total_sql.ENROLLMENTS} DROP COLUMN {total_sql.TOTAL}",
                ),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
