"""Every writer is seen on the next read (contract 3.9), because the database moves the stamps.

Each test warms the four cached reads (3.1 one learner, 3.4 their activities, 3.2 the course
page, 3.5 the analytics), writes through one writer, and expects the very next read of each to
equal what the database says now (the same read with no cache at all), and the reads the write
touches to have changed. No writer deletes cache entries (progress/read_cache.py), so only the
stamps the triggers move keep the reads fresh: drop the triggers and these tests fail.
"""

import io
import json
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from courseprogress.models import Course, CourseContent
from progress import services
from progress.models import ContentProgress, Enrollment
from tests.conftest import requires_postgres

LEARNER, ACTIVITIES, PAGE, ANALYTICS = "learner", "activities", "page", "analytics"
ALL = {LEARNER, ACTIVITIES, PAGE, ANALYTICS}
ENROLLMENT_READS = {LEARNER, PAGE, ANALYTICS}  # an enrollment's status: not in the activity log
COURSE_READS = {PAGE, ANALYTICS}

ENROLLMENTS = "/admin/progress/enrollment/"
PROGRESS = "/admin/progress/contentprogress/"
CONTENTS = "/admin/courseprogress/coursecontent/"


@pytest.fixture
def world(
    client_for, make_user, learner, other_learner, instructor, course, contents, other_course
):
    for user in (learner, other_learner):
        services.enrol(user_id=user.pk, course_id=course.pk)
    record = services.record_progress
    record(user_id=learner.pk, course_id=course.pk, content_id=contents[0].pk, status="COMPLETED")
    record(
        user_id=learner.pk,
        course_id=course.pk,
        content_id=contents[1].pk,
        status="IN_PROGRESS",
        percent=40,
        duration=10,
    )
    record(
        user_id=other_learner.pk,
        course_id=course.pk,
        content_id=contents[0].pk,
        status="IN_PROGRESS",
        percent=20,
        duration=5,
    )
    mine, staff = client_for(learner), client_for(instructor)
    base = f"/user-progress/{course.pk}/{learner.pk}"
    course_base = f"/user-progress/course/{course.pk}"

    def reads():
        results = {
            LEARNER: mine.get(base),
            ACTIVITIES: mine.get(f"{base}/activities"),
            PAGE: staff.get(f"{course_base}/all"),
            ANALYTICS: staff.get(f"{course_base}/analytics"),
        }
        bodies = {}
        for name, response in results.items():
            assert response.status_code == 200, (name, response.content)
            body = response.json()
            if name == ANALYTICS:
                body["results"].pop("computedAt")
            bodies[name] = body
        return bodies

    world = SimpleNamespace(
        learner=learner,
        other_learner=other_learner,
        instructor=instructor,
        course=course,
        contents=contents,
        other_course=other_course,
        make_user=make_user,
        client_for=client_for,
        reads=reads,
    )

    def warm():
        """Read everything twice: the second read is served from the cache."""
        reads()
        world.before = reads()

    world.warm = warm
    warm()
    return world


def enrollment_of(world, user=None) -> Enrollment:
    return Enrollment.objects.get(user=user or world.learner, course=world.course)


def uncached_reads(world) -> dict:
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    ):
        return world.reads()


def admin_client(make_user) -> Client:
    root = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    return client


def run_sql(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- the writers ------------------------------------------------------------------------------


def api_update(w):
    response = w.client_for(w.learner).post(
        "/user-progress/update",
        {
            "courseId": w.course.pk,
            "courseContentId": w.contents[2].pk,
            "progressStatus": "COMPLETED",
        },
        format="json",
    )
    assert response.status_code == 200


def api_patch(w):
    response = w.client_for(w.instructor).patch(
        f"/user-progress/enrollments/{enrollment_of(w).pk}",
        {"enrollmentStatus": "DROPPED"},
        format="json",
    )
    assert response.status_code == 200


def api_enrol_a_newcomer(w):
    newcomer = w.make_user("newcomer")
    response = w.client_for(w.instructor).post(
        "/user-progress/enrollments",
        {"courseId": w.course.pk, "userId": newcomer.pk},
        format="json",
    )
    assert response.status_code == 201


def delete_and_re_enrol(w):
    """The old enrollment's cached reads must never come back for the new one."""
    services.record_progress(
        user_id=w.learner.pk,
        course_id=w.course.pk,
        content_id=w.contents[2].pk,
        status="IN_PROGRESS",
        percent=10,
    )
    w.warm()
    enrollment_of(w).delete()
    learner = w.client_for(w.learner)
    enrolled = learner.post("/user-progress/enrollments", {"courseId": w.course.pk}, format="json")
    assert enrolled.status_code == 201
    posted = learner.post(
        "/user-progress/update",
        {
            "courseId": w.course.pk,
            "courseContentId": w.contents[2].pk,
            "progressStatus": "IN_PROGRESS",
            "progressPercent": 50,
        },
        format="json",
    )
    assert posted.status_code == 200


def admin_enrollment_save(w):
    response = admin_client(w.make_user).post(
        f"{ENROLLMENTS}{enrollment_of(w).pk}/change/",
        {
            "user": w.learner.pk,
            "course": w.course.pk,
            "status": "DROPPED",
            "certificate_url": "",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302, response.content


def admin_enrollment_add(w):
    newcomer = w.make_user("newcomer")
    response = admin_client(w.make_user).post(
        f"{ENROLLMENTS}add/", {"user": newcomer.pk, "course": w.course.pk}
    )
    assert response.status_code == 302, response.content


def admin_enrollment_delete(w):
    response = admin_client(w.make_user).post(
        f"{ENROLLMENTS}{enrollment_of(w).pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Enrollment.objects.filter(user=w.learner, course=w.course).exists()


def admin_action(name, *, before=None):
    def write(w):
        if before:
            before(w)
            w.warm()
        enrollment = enrollment_of(w)
        response = admin_client(w.make_user).post(
            ENROLLMENTS, {"action": name, "_selected_action": [enrollment.pk]}, follow=True
        )
        assert response.status_code == 200
        assert enrollment_of(w).status != enrollment.status

    write.__name__ = f"admin_action_{name}"
    return write


def certify(w):
    services.record_progress(
        user_id=w.learner.pk,
        course_id=w.course.pk,
        content_id=w.contents[1].pk,
        status="COMPLETED",
    )
    services.record_progress(
        user_id=w.learner.pk,
        course_id=w.course.pk,
        content_id=w.contents[2].pk,
        status="COMPLETED",
    )
    w.warm()
    enrollment = enrollment_of(w)
    assert enrollment.status == "COMPLETED"
    response = admin_client(w.make_user).post(
        ENROLLMENTS,
        {
            "action": "certify",
            "_selected_action": [enrollment.pk],
            "apply": "yes",
            f"url_{enrollment.pk}": "https://certs.example.com/1",
        },
    )
    assert response.status_code == 302
    assert enrollment_of(w).status == "CERTIFIED"


def drop(w):
    services.move_enrollment(enrollment_of(w).pk, "DROPPED")


def set_status_behind_the_services(w):
    """A status the rows no longer agree with (what the recompute and the backfill repair)."""
    Enrollment.objects.filter(pk=enrollment_of(w).pk).update(status="ENROLLED")


def admin_content_move(w):
    """The old course's page and analytics must stop counting the moved item."""
    content = w.contents[2]
    response = admin_client(w.make_user).post(
        f"{CONTENTS}{content.pk}/change/",
        {"course": w.other_course.pk, "title": content.title, "position": content.position},
    )
    assert response.status_code == 302, response.content
    assert CourseContent.objects.get(pk=content.pk).course_id == w.other_course.pk


def admin_orphan_row_delete(w):
    """A row whose enrollment is gone still counts in the analytics until it is deleted."""
    Enrollment.objects.filter(user=w.other_learner, course=w.course).delete()
    w.warm()
    row = ContentProgress.objects.get(user=w.other_learner, course=w.course)
    response = admin_client(w.make_user).post(f"{PROGRESS}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ContentProgress.objects.filter(pk=row.pk).exists()


def admin_progress_save(w):
    row = ContentProgress.objects.get(user=w.learner, content=w.contents[1])
    response = admin_client(w.make_user).post(
        f"{PROGRESS}{row.pk}/change/",
        {"status": "IN_PROGRESS", "percent": "60", "duration": "25", "metadata": "{}"},
    )
    assert response.status_code == 302, response.content


def admin_progress_add(w):
    response = admin_client(w.make_user).post(
        f"{PROGRESS}add/",
        {
            "user": w.learner.pk,
            "course": w.course.pk,
            "content": w.contents[2].pk,
            "status": "IN_PROGRESS",
            "percent": "15",
            "duration": "3",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302, response.content


def admin_progress_delete(w):
    row = ContentProgress.objects.get(user=w.learner, content=w.contents[1])
    response = admin_client(w.make_user).post(f"{PROGRESS}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302


def command_backfill(w):
    set_status_behind_the_services(w)
    w.warm()
    call_command("backfill_enrollment_status", stdout=io.StringIO(), stderr=io.StringIO())
    assert enrollment_of(w).status == "IN_PROGRESS"


def command_import(w):
    line = {
        "userId": w.learner.pk,
        "courseId": w.course.pk,
        "courseContentId": w.contents[2].pk,
        "progressStatus": "IN_PROGRESS",
        "progressPercent": 30,
        "activityDuration": 7,
    }
    path = w.tmp_path / "rows.jsonl"
    path.write_text(json.dumps(line) + "\n")
    call_command("import_progress", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert ContentProgress.objects.filter(user=w.learner, content=w.contents[2]).exists()


def command_expire(w):
    call_command(
        "expire_enrollments",
        "--before",
        "9000-01-01",
        "--course",
        str(w.course.pk),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert enrollment_of(w).status == "EXPIRED"


def model_save_progress(w):
    row = ContentProgress.objects.get(user=w.learner, content=w.contents[1])
    row.duration = 99
    row.save()


def model_save_stale_enrollment(w):
    """A shell's instance read before another write: its save must still move the stamp."""
    stale = enrollment_of(w)
    services.record_progress(
        user_id=w.learner.pk,
        course_id=w.course.pk,
        content_id=w.contents[1].pk,
        status="IN_PROGRESS",
        percent=45,
    )
    w.warm()
    stale.status = "DROPPED"
    stale.save()


def queryset_update_progress(w):
    ContentProgress.objects.filter(user=w.learner, content=w.contents[1]).update(percent=77)


def queryset_update_enrollment(w):
    Enrollment.objects.filter(user=w.learner, course=w.course).update(status="DROPPED")


def queryset_delete_progress(w):
    ContentProgress.objects.filter(user=w.learner, content=w.contents[1]).delete()


def queryset_delete_enrollment(w):
    Enrollment.objects.filter(user=w.learner, course=w.course).delete()


def bulk_create_progress(w):
    ContentProgress.objects.bulk_create(
        [
            ContentProgress(
                user=w.learner, course=w.course, content=w.contents[2], status="IN_PROGRESS"
            )
        ]
    )


def bulk_create_enrollment(w):
    Enrollment.objects.bulk_create([Enrollment(user=w.make_user("newcomer"), course=w.course)])


def content_added(w):
    CourseContent.objects.create(course=w.course, title="Lesson 4", position=4)


def content_deleted(w):
    CourseContent.objects.filter(pk=w.contents[2].pk).delete()


def guide_insert(w):
    """The guide's own INSERT, as its Node service would send it."""
    run_sql(
        "INSERT INTO user_course_content_progress (userId, courseId, courseContentId,"
        " progressStatus, activityDuration, progressPercent) VALUES (%s, %s, %s, %s, %s, %s)",
        [w.learner.pk, w.course.pk, w.contents[2].pk, "IN_PROGRESS", 12, 35],
    )


def guide_update(w):
    run_sql(
        "UPDATE user_course_content_progress SET progressPercent = 55"
        " WHERE userId = %s AND courseId = %s AND courseContentId = %s",
        [w.learner.pk, w.course.pk, w.contents[1].pk],
    )


def guide_delete(w):
    run_sql(
        "DELETE FROM user_course_content_progress"
        " WHERE userId = %s AND courseId = %s AND courseContentId = %s",
        [w.learner.pk, w.course.pk, w.contents[1].pk],
    )


def sql_update_enrollment(w):
    run_sql(
        "UPDATE enrollments SET enrollmentStatus = 'DROPPED' WHERE userId = %s AND courseId = %s",
        [w.learner.pk, w.course.pk],
    )


WRITERS = [
    (api_update, ALL),
    (api_patch, ENROLLMENT_READS),
    (api_enrol_a_newcomer, COURSE_READS),
    (delete_and_re_enrol, ALL),
    (admin_enrollment_save, ENROLLMENT_READS),
    (admin_enrollment_add, COURSE_READS),
    (admin_enrollment_delete, ENROLLMENT_READS),
    (admin_action("complete"), ENROLLMENT_READS),
    (certify, {LEARNER, PAGE}),  # COMPLETED and CERTIFIED both count as completed
    (admin_action("drop"), ENROLLMENT_READS),
    (admin_action("expire"), ENROLLMENT_READS),
    (admin_action("reenrol", before=drop), ENROLLMENT_READS),
    (admin_action("recompute", before=set_status_behind_the_services), ENROLLMENT_READS),
    (admin_content_move, COURSE_READS),
    (admin_orphan_row_delete, {ANALYTICS}),
    (admin_progress_save, ALL),
    (admin_progress_add, ALL),
    (admin_progress_delete, ALL),
    (command_backfill, ENROLLMENT_READS),
    (command_import, ALL),
    (command_expire, ENROLLMENT_READS),
    (model_save_progress, ALL),
    (model_save_stale_enrollment, ENROLLMENT_READS),
    (queryset_update_progress, ALL),
    (queryset_update_enrollment, ENROLLMENT_READS),
    (queryset_delete_progress, ALL),
    (queryset_delete_enrollment, ENROLLMENT_READS),
    (bulk_create_progress, ALL),
    (bulk_create_enrollment, COURSE_READS),
    (content_added, COURSE_READS),
    (content_deleted, COURSE_READS),
    (guide_insert, ALL),
    (guide_update, ALL),
    (guide_delete, ALL),
    (sql_update_enrollment, ENROLLMENT_READS),
]


@pytest.mark.parametrize(("write", "touched"), WRITERS, ids=[w.__name__ for w, _ in WRITERS])
def test_the_next_read_shows_the_write(world, tmp_path, write, touched):
    world.tmp_path = tmp_path
    write(world)
    after = world.reads()
    assert after == uncached_reads(world)
    for name in touched:
        assert after[name] != world.before[name], f"{name} did not change"


def test_a_re_created_enrollment_never_meets_the_old_stamp(world):
    """Delete and make again: the learner's stamp carries the enrollment id, so the old
    entry's stamp cannot match even when the new row's version counts up to the old one."""
    from progress.read_cache import learner_version

    old = learner_version(course_id=world.course.pk, user_id=world.learner.pk)
    enrollment_of(world).delete()
    services.enrol(user_id=world.learner.pk, course_id=world.course.pk)
    new = enrollment_of(world)
    Enrollment.objects.filter(pk=new.pk).update(metadata={"n": 1})
    assert learner_version(course_id=world.course.pk, user_id=world.learner.pk) != old


@requires_postgres
def test_the_guides_own_trigger_runs_beside_ours(world):
    """The guide's status trigger, installed as the guide gives it, and its INSERT: both run,
    the enrollment moves and every read shows it."""
    run_sql(
        """
        CREATE OR REPLACE FUNCTION update_enrollment_status()
        RETURNS TRIGGER AS $$
        BEGIN
          UPDATE enrollments
          SET
            enrollmentStatus = 'IN_PROGRESS',
            enrollment_updated_at = CURRENT_TIMESTAMP
          WHERE
            userId = NEW.userId
            AND courseId = NEW.courseId
            AND enrollmentStatus = 'ENROLLED';
          RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;

        CREATE TRIGGER trg_update_enrollment_on_progress
        AFTER INSERT OR UPDATE ON user_course_content_progress
        FOR EACH ROW
        EXECUTE FUNCTION update_enrollment_status();
        """
    )
    newcomer = world.make_user("newcomer")
    services.enrol(user_id=newcomer.pk, course_id=world.course.pk)
    world.warm()
    run_sql(
        "INSERT INTO user_course_content_progress (userId, courseId, courseContentId,"
        " progressStatus, activityDuration, progressPercent) VALUES (%s, %s, %s, %s, %s, %s)",
        [newcomer.pk, world.course.pk, world.contents[0].pk, "NOT_STARTED", 0, 0],
    )
    assert enrollment_of(world, newcomer).status == "IN_PROGRESS"  # the guide's trigger
    after = world.reads()
    assert after == uncached_reads(world)
    assert after[ANALYTICS]["results"]["activeUsers"] == 3
    assert after[ANALYTICS] != world.before[ANALYTICS]


def test_a_course_row_update_moves_the_course_stamp(world):
    from progress.read_cache import course_stamp

    before = course_stamp(world.course.pk)
    Course.objects.filter(pk=world.course.pk).update(title="Python 102")
    assert course_stamp(world.course.pk) != before
