"""Seed one bench database and write the data file the wrk script reads.

Run by `python -m bench` in a subprocess whose DATABASE_URL points at the bench database (never
the developer's). Steps, all idempotent:
1. `migrate`, then `seed_dataset --courses C --contents N --learners L` (deterministic, resumable);
2. an API token for every seeded learner, made in bulk;
3. the "bench POST course": N content items, every learner enrolled, no progress rows, so that
   the update benchmark creates rows (and updates them) and its rows can be counted exactly;
4. the data file: owner token, course ids, learners (id, token), the POST course's items.

Prints one line `BENCH_PREPARED {json}` with what the orchestrator needs.
"""

import argparse
import json
import os
import sys
import time

import django


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prepare")
    parser.add_argument("--courses", type=int, required=True)
    parser.add_argument("--contents", type=int, required=True)
    parser.add_argument("--learners", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-file", required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    from django.core.management import call_command

    started = time.monotonic()
    call_command("migrate", interactive=False, verbosity=0)
    migrated = time.monotonic()
    call_command(
        "seed_dataset",
        courses=args.courses,
        contents=args.contents,
        learners=args.learners,
        seed=args.seed,
        verbosity=0,
        progress=False,
    )
    seeded = time.monotonic()
    info = fixtures(args)
    vacuum_analyze()
    info["timings_s"] = {
        "migrate": round(migrated - started, 1),
        "seed_dataset": round(seeded - migrated, 1),
        "fixtures": round(time.monotonic() - seeded, 1),
    }
    print("BENCH_PREPARED " + json.dumps(info), flush=True)


def vacuum_analyze() -> None:
    """The seeded database vacuumed and analysed, as autovacuum would leave it on a server that
    runs it (the shared server of these machines has it off): planner statistics for the
    1,000,000 rows, and no dead row versions left by the seeding's stamp updates."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # the app's request limit is not for this
        cursor.execute("VACUUM (ANALYZE)")


def fixtures(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    from courseprogress.models import Course, CourseContent, CourseStaff
    from progress.management.dataset import DatasetSpec
    from progress.models import ContentProgress, Enrollment

    User = get_user_model()
    spec = DatasetSpec(
        courses=args.courses, contents=args.contents, learners=args.learners, seed=args.seed
    )
    owner = User.objects.get(username=spec.owner_name)
    names = [spec.learner_name(k) for k in range(spec.learners)]
    learners = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    learner_ids = [learners[name] for name in names]
    titles = [spec.course_title(i) for i in range(spec.courses)]
    course_ids = list(
        Course.objects.filter(title__in=titles).order_by("pk").values_list("pk", flat=True)
    )

    with transaction.atomic():
        have = set(Token.objects.filter(user_id__in=learner_ids).values_list("user_id", flat=True))
        Token.objects.bulk_create(
            [
                Token(key=Token.generate_key(), user_id=uid)
                for uid in learner_ids
                if uid not in have
            ],
            ignore_conflicts=True,
        )
        owner_token, _ = Token.objects.get_or_create(user=owner)
    tokens = dict(Token.objects.filter(user_id__in=learner_ids).values_list("user_id", "key"))

    # The POST course: same shape as a seeded course, no rows until the benchmark posts them.
    title = f"Bench POST course (seed {spec.seed})"
    with transaction.atomic():
        post_course = Course.objects.filter(title=title).order_by("pk").first()
        if post_course is None:
            post_course = Course.objects.create(title=title, description="Written by the bench.")
        positions = set(
            CourseContent.objects.filter(course=post_course).values_list("position", flat=True)
        )
        CourseContent.objects.bulk_create(
            [
                CourseContent(course=post_course, title=f"Item {p:04d}", position=p)
                for p in range(1, spec.contents + 1)
                if p not in positions
            ]
        )
        CourseStaff.objects.get_or_create(
            course=post_course, user=owner, defaults={"role": CourseStaff.Role.OWNER}
        )
        enrolled = set(
            Enrollment.objects.filter(course=post_course).values_list("user_id", flat=True)
        )
        Enrollment.objects.bulk_create(
            [
                Enrollment(user_id=uid, course=post_course)
                for uid in learner_ids
                if uid not in enrolled
            ],
            ignore_conflicts=True,
        )
    post_contents = list(
        CourseContent.objects.filter(course=post_course)
        .order_by("position", "pk")
        .values_list("pk", flat=True)
    )

    with open(args.data_file, "w") as out:
        out.write(f"owner {owner_token.key}\n")
        for course_id in course_ids:
            out.write(f"course {course_id}\n")
        for uid in learner_ids:
            out.write(f"learner {uid} {tokens[uid]}\n")
        out.write(f"post_course {post_course.pk}\n")
        for content_id in post_contents:
            out.write(f"post_content {content_id}\n")
        out.write(f"pages {max(1, -(-spec.learners // 20))}\n")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        db_size = cursor.fetchone()[0]
    return {
        "courses": course_ids,
        "learners": len(learner_ids),
        "contents": spec.contents,
        "post_course": post_course.pk,
        "post_contents": len(post_contents),
        "progress_rows": ContentProgress.objects.count(),
        "owner_token": owner_token.key,
        "db_size": db_size,
    }


if __name__ == "__main__":
    sys.exit(main())
