"""Users, courses and tokens for the live checks, made in whatever database DATABASE_URL names.

Run as a script with the live server's environment:
- `python -m tests.live.personas seed PREFIX [CONTENTS] [LOAD_LEARNERS]` prints one JSON object:
  the course and content ids, each role's user id and API token, the enrollments, and (for the
  load test) extra learners enrolled in the course;
- `python -m tests.live.personas delete PREFIX` removes all of that again.
Every username and course title starts with PREFIX, so reruns against the same database (or
runs that share it) never collide.
"""

import json
import sys


def seed(prefix: str, contents: int = 3, load_learners: int = 0) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    from courseprogress.models import Course, CourseContent, CourseStaff
    from progress import services

    User = get_user_model()

    def user(name, *perms):
        account = User(username=f"{prefix}-{name}", email=f"{prefix}-{name}@example.com")
        account.set_unusable_password()  # the live checks authenticate with tokens only
        account.save()
        for codename in perms:
            account.user_permissions.add(Permission.objects.get(codename=codename))
        return account

    course = Course.objects.create(title=f"{prefix} course")
    items = [
        CourseContent.objects.create(course=course, title=f"Lesson {n}", position=n)
        for n in range(1, contents + 1)
    ]
    other_course = Course.objects.create(title=f"{prefix} other course")
    other_contents = [CourseContent.objects.create(course=other_course, title="Only", position=1)]

    roles = {
        "learner": user("learner"),
        "other_learner": user("other-learner"),
        "instructor": user("instructor"),
        "other_instructor": user("other-instructor"),
        "owner": user("owner"),
        "admin": user("admin", "view_all_progress"),
        "system": user("system", "update_any_progress"),
    }
    staff = [
        (course, roles["instructor"], CourseStaff.Role.INSTRUCTOR),
        (course, roles["owner"], CourseStaff.Role.OWNER),
        (other_course, roles["other_instructor"], CourseStaff.Role.INSTRUCTOR),
    ]
    for staff_course, member, role in staff:
        CourseStaff.objects.create(course=staff_course, user=member, role=role)

    enrollments = {}
    for name in ("learner", "other_learner"):
        enrollment, _ = services.enrol(user_id=roles[name].pk, course_id=course.pk)
        enrollments[name] = enrollment.pk
    services.record_progress(
        user_id=roles["learner"].pk,
        course_id=course.pk,
        content_id=items[0].pk,
        status="IN_PROGRESS",
        percent=40,
        duration=5,
    )

    load = []
    for n in range(load_learners):
        account = user(f"load-{n}")
        services.enrol(user_id=account.pk, course_id=course.pk)
        load.append({"id": account.pk, "token": Token.objects.create(user=account).key})

    return {
        "prefix": prefix,
        "course": course.pk,
        "contents": [content.pk for content in items],
        "other_course": other_course.pk,
        "other_contents": [content.pk for content in other_contents],
        "users": {name: account.pk for name, account in roles.items()},
        "tokens": {name: Token.objects.create(user=account).key for name, account in roles.items()},
        "enrollments": enrollments,
        "load_learners": load,
    }


def delete(prefix: str) -> None:
    from django.contrib.auth import get_user_model

    from courseprogress.models import Course

    # Enrollments, progress rows, staff rows and tokens go with their course or user.
    Course.objects.filter(title__startswith=f"{prefix} ").delete()
    get_user_model().objects.filter(username__startswith=f"{prefix}-").delete()


if __name__ == "__main__":
    import django

    django.setup()
    command, prefix, *counts = sys.argv[1:]
    if command == "seed":
        print(json.dumps(seed(prefix, *map(int, counts))))
    elif command == "delete":
        delete(prefix)
    else:
        raise SystemExit(f"unknown command {command!r}: seed or delete")
