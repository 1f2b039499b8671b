"""The sized data-set seeder: `manage.py seed_dataset` (what `make bench` runs through
bench/prepare.py); `seed_demo` takes the same size options for existing scripts."""

from contextlib import nullcontext

from django.db import transaction

from progress.management.base import BatchCommand, positive_int
from progress.management.dataset import DatasetSeeder, DatasetSpec

SIZE_OPTIONS = ("courses", "contents", "learners", "seed")
DEFAULT_SIZE = {"courses": 5, "contents": 10, "learners": 50, "seed": 1}


class SizedDataset:
    """The size options, the seeding and its report; shared by seed_dataset and seed_demo."""

    progress_label = "seed_dataset"

    def add_size_arguments(self, parser):
        parser.add_argument(
            "--courses", type=positive_int, metavar="N", help="Large set: number of courses."
        )
        parser.add_argument(
            "--contents",
            type=positive_int,
            metavar="N",
            help="Large set: content items per course.",
        )
        parser.add_argument(
            "--learners",
            type=positive_int,
            metavar="N",
            help="Large set: learners per course (the same learners take every course).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            metavar="N",
            help="Large set: the seed that names and shapes the data (same seed, same data).",
        )
        parser.add_argument(
            "--no-copy",
            action="store_true",
            help="Large set: insert progress rows with INSERT even on PostgreSQL (slower).",
        )

    def seed_dataset(self, options):
        size = {name: options[name] or DEFAULT_SIZE[name] for name in SIZE_OPTIONS}
        if options["seed"] is not None:
            size["seed"] = options["seed"]
        spec = DatasetSpec(**size)
        progress = self.progress(
            options, self.progress_label, total=spec.rows, unit="progress rows"
        )
        seeder = DatasetSeeder(
            spec,
            batch_size=options["batch_size"],
            use_copy=not options["no_copy"],
            progress=progress,
        )
        return seeder.run()

    def print_dataset(self, result, options):
        if options["verbosity"] < 1:
            return
        spec = result.spec
        out = self.stdout
        out.write(
            f"Large set seed {spec.seed}: {spec.courses} courses x {spec.contents} items x "
            f"{spec.learners} learners = {spec.rows} progress rows."
        )
        created = ", ".join(f"{n} {kind}" for kind, n in result.created.items())
        verb = "Would create" if options["dry_run"] else "Created"
        out.write(f"{verb}: {created}; enrollment statuses synced: {result.synced}.")
        if options["verbosity"] >= 2:
            timings = ", ".join(f"{name} {sec:.1f} s" for name, sec in result.timings.items())
            out.write(f"Timings: {timings}.")
        if options["dry_run"]:
            return
        ids = result.course_ids
        out.write(f"Course ids: {ids[0]}..{ids[-1]}" if len(ids) > 1 else f"Course id: {ids[0]}")
        out.write("Tokens (send as 'Authorization: Token <token>'):")
        for username, role, key in result.accounts:
            out.write(f"  {username:<22} {key}  ({role})")
        out.write(
            "Learners have unusable passwords; make a token with "
            f"`manage.py drf_create_token {spec.learner_name(0)}`."
        )


class Command(SizedDataset, BatchCommand):
    help = """\
Make a large deterministic data set, for benchmarks: COURSES courses of CONTENTS items each,
LEARNERS learners (unusable passwords) enrolled in every course, and one progress row per
learner and item (15 % not started, 25 % finished, the rest part-way), written with COPY on
PostgreSQL; the enrollment statuses are then synced set-based. Missing options take their
defaults (5 courses, 10 items, 50 learners, seed 1). Names come from the seed
("seed1_learner000001", "Seed 1 course 0001"), so a rerun with the same arguments creates
nothing and an interrupted run is completed. It also makes a course owner and a system account
with tokens, and prints them.

Examples:
  manage.py seed_dataset
  manage.py seed_dataset --courses 20 --contents 100 --learners 500    # one million rows
"""
    default_batch_size = 20_000
    batch_help = (
        "Progress rows per batch (whole learners); each batch is one transaction. "
        "Default: %(default)s."
    )

    def add_arguments(self, parser):
        self.add_size_arguments(parser)
        super().add_arguments(parser)

    def handle(self, *args, **options):
        # A dry run does everything in one transaction and rolls it back; a real run commits
        # batch by batch, so an interrupted run keeps its work and the next run resumes.
        with transaction.atomic() if options["dry_run"] else nullcontext():
            result = self.seed_dataset(options)
            if options["dry_run"]:
                transaction.set_rollback(True)
        self.print_dataset(result, options)
        self.finish(result.summary, options, what="objects")
