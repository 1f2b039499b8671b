"""Cache stamps kept by the database, so that every writer moves them (contract 3.9).

Whoever writes — the API, the admin, a command, `QuerySet.update()`, `bulk_create()`, or plain
SQL from another service — these triggers move the stamps that cached reads are checked
against (progress/read_cache.py), in the writing transaction:

- `enrollments.cache_version` rises by one on every update of the row, whatever value the
  writer sent (a stale `Model.save()` cannot set it back), and on every insert, update or delete
  of the learner's progress rows in that course. The learner's stamp is (enrollment id,
  cache_version): an enrollment deleted and made again has a new id, so its old entries never
  match.
- `courseprogress_course.cache_version` rises on every update of the course row, and whenever a
  course-wide read changes in a way the enrollments' versions do not show: content inserted,
  updated or deleted (both courses of a move), an enrollment deleted or moved to another
  learner or course, a progress row written or deleted that has no enrollment (such rows still
  count in the analytics). The course stamp is (course version, number of enrollments, sum of
  their versions): between two course bumps enrollments are only added or bumped, so the pair
  only grows and never repeats.

PostgreSQL: statement-level triggers with transition tables for the row sets (one round of
set-based SQL per statement, so a COPY of a million rows costs one aggregate, not a million
calls), and row-level BEFORE UPDATE triggers for the versions themselves. SQLite (the embedded
default): row-level triggers with the same effect (SQLite runs without recursive triggers, so a
trigger's own UPDATE does not fire it again).
"""

from django.db import migrations

POSTGRES = """
CREATE FUNCTION cp_bump_own_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.cache_version := OLD.cache_version + 1;
    RETURN NEW;
END $$;

CREATE FUNCTION cp_bump_courses(course_ids integer[]) RETURNS void LANGUAGE sql AS $$
    UPDATE courseprogress_course SET cache_version = cache_version + 1
    WHERE id = ANY(course_ids)
$$;

-- The learners whose progress rows changed: bump their enrollments; for the rows that have no
-- enrollment, bump the course.
CREATE FUNCTION cp_touch_learners(user_ids integer[], course_ids integer[])
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

CREATE FUNCTION cp_progress_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION cp_enrollments_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cp_bump_courses(ARRAY(SELECT DISTINCT courseid FROM old_rows));
    RETURN NULL;
END $$;

-- An enrollment moved to another learner or course: its old course lost it.
CREATE FUNCTION cp_enrollment_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cp_bump_courses(ARRAY[OLD.courseid]);
    RETURN NULL;
END $$;

CREATE FUNCTION cp_content_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM cp_bump_courses(ARRAY(SELECT DISTINCT course_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM cp_bump_courses(ARRAY(SELECT DISTINCT course_id FROM old_rows));
    ELSE
        PERFORM cp_bump_courses(ARRAY(
            SELECT course_id FROM new_rows UNION SELECT course_id FROM old_rows
        ));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cp_enrollments_version BEFORE UPDATE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION cp_bump_own_version();
CREATE TRIGGER cp_course_version BEFORE UPDATE ON courseprogress_course
    FOR EACH ROW EXECUTE FUNCTION cp_bump_own_version();

CREATE TRIGGER cp_progress_inserted AFTER INSERT ON user_course_content_progress
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_progress_changed();
CREATE TRIGGER cp_progress_updated AFTER UPDATE ON user_course_content_progress
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_progress_changed();
CREATE TRIGGER cp_progress_deleted AFTER DELETE ON user_course_content_progress
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_progress_changed();

CREATE TRIGGER cp_enrollments_deleted AFTER DELETE ON enrollments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_enrollments_deleted();
-- Row-level with a WHEN: the condition is checked without calling a function, so the hot
-- path's version bumps pay nothing for it.
CREATE TRIGGER cp_enrollments_moved AFTER UPDATE OF userid, courseid ON enrollments
    FOR EACH ROW WHEN (OLD.courseid <> NEW.courseid OR OLD.userid <> NEW.userid)
    EXECUTE FUNCTION cp_enrollment_moved();

CREATE TRIGGER cp_content_inserted AFTER INSERT ON courseprogress_coursecontent
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_content_changed();
CREATE TRIGGER cp_content_updated AFTER UPDATE ON courseprogress_coursecontent
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_content_changed();
CREATE TRIGGER cp_content_deleted AFTER DELETE ON courseprogress_coursecontent
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cp_content_changed();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS cp_enrollments_version ON enrollments;
DROP TRIGGER IF EXISTS cp_course_version ON courseprogress_course;
DROP TRIGGER IF EXISTS cp_progress_inserted ON user_course_content_progress;
DROP TRIGGER IF EXISTS cp_progress_updated ON user_course_content_progress;
DROP TRIGGER IF EXISTS cp_progress_deleted ON user_course_content_progress;
DROP TRIGGER IF EXISTS cp_enrollments_deleted ON enrollments;
DROP TRIGGER IF EXISTS cp_enrollments_moved ON enrollments;
DROP TRIGGER IF EXISTS cp_content_inserted ON courseprogress_coursecontent;
DROP TRIGGER IF EXISTS cp_content_updated ON courseprogress_coursecontent;
DROP TRIGGER IF EXISTS cp_content_deleted ON courseprogress_coursecontent;
DROP FUNCTION IF EXISTS cp_progress_changed();
DROP FUNCTION IF EXISTS cp_enrollments_deleted();
DROP FUNCTION IF EXISTS cp_enrollment_moved();
DROP FUNCTION IF EXISTS cp_content_changed();
DROP FUNCTION IF EXISTS cp_touch_learners(integer[], integer[]);
DROP FUNCTION IF EXISTS cp_bump_courses(integer[]);
DROP FUNCTION IF EXISTS cp_bump_own_version();
"""


def _touch_learner(row: str) -> str:
    """SQLite: the statements that stamp one (user, course) pair of a changed progress row."""
    return f"""
    UPDATE enrollments SET cache_version = cache_version + 1
    WHERE userid = {row}.userid AND courseid = {row}.courseid;
    UPDATE courseprogress_course SET cache_version = cache_version + 1
    WHERE id = {row}.courseid AND NOT EXISTS (
        SELECT 1 FROM enrollments WHERE userid = {row}.userid AND courseid = {row}.courseid
    );"""


SQLITE = [
    """CREATE TRIGGER cp_enrollments_version AFTER UPDATE ON enrollments BEGIN
    UPDATE enrollments SET cache_version = OLD.cache_version + 1
    WHERE enrollmentid = NEW.enrollmentid;
    END""",
    """CREATE TRIGGER cp_course_version AFTER UPDATE ON courseprogress_course BEGIN
    UPDATE courseprogress_course SET cache_version = OLD.cache_version + 1 WHERE id = NEW.id;
    END""",
    f"""CREATE TRIGGER cp_progress_inserted AFTER INSERT ON user_course_content_progress BEGIN
    {_touch_learner("NEW")}
    END""",
    f"""CREATE TRIGGER cp_progress_updated AFTER UPDATE ON user_course_content_progress BEGIN
    {_touch_learner("NEW")}
    {_touch_learner("OLD")}
    END""",
    f"""CREATE TRIGGER cp_progress_deleted AFTER DELETE ON user_course_content_progress BEGIN
    {_touch_learner("OLD")}
    END""",
    """CREATE TRIGGER cp_enrollments_deleted AFTER DELETE ON enrollments BEGIN
    UPDATE courseprogress_course SET cache_version = cache_version + 1 WHERE id = OLD.courseid;
    END""",
    """CREATE TRIGGER cp_enrollments_moved AFTER UPDATE OF userid, courseid ON enrollments
    WHEN OLD.courseid <> NEW.courseid OR OLD.userid <> NEW.userid BEGIN
    UPDATE courseprogress_course SET cache_version = cache_version + 1 WHERE id = OLD.courseid;
    END""",
    """CREATE TRIGGER cp_content_inserted AFTER INSERT ON courseprogress_coursecontent BEGIN
    UPDATE courseprogress_course SET cache_version = cache_version + 1 WHERE id = NEW.course_id;
    END""",
    """CREATE TRIGGER cp_content_updated AFTER UPDATE ON courseprogress_coursecontent BEGIN
    UPDATE courseprogress_course SET cache_version = cache_version + 1
    WHERE id IN (NEW.course_id, OLD.course_id);
    END""",
    """CREATE TRIGGER cp_content_deleted AFTER DELETE ON courseprogress_coursecontent BEGIN
    UPDATE courseprogress_course SET cache_version = cache_version + 1 WHERE id = OLD.course_id;
    END""",
]

SQLITE_TRIGGERS = [
    "cp_enrollments_version",
    "cp_course_version",
    "cp_progress_inserted",
    "cp_progress_updated",
    "cp_progress_deleted",
    "cp_enrollments_deleted",
    "cp_enrollments_moved",
    "cp_content_inserted",
    "cp_content_updated",
    "cp_content_deleted",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)
    else:  # pragma: no cover - the service runs on these two
        raise NotImplementedError(f"No freshness triggers for {vendor}.")


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE)
    else:
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("progress", "0002_metadata_validator"),
        ("courseprogress", "0002_course_cache_version"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
