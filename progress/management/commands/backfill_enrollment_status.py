from progress import status_sync
from progress.formatting import iso
from progress.management.base import BatchCommand, Summary, keyset_ids
from progress.models import Enrollment


class Command(BatchCommand):
    help = """\
Recompute each enrollment's status and completionDate from its progress rows.

Rows written by bulk paths (bulk_create, COPY, QuerySet.update(), raw SQL) send no signals,
so the enrollment sync that every API write runs never saw them. This command applies the
same rule as the API (progress.rules.automatic_target):
  - ENROLLED becomes IN_PROGRESS when the learner has a row IN_PROGRESS or COMPLETED;
  - ENROLLED or IN_PROGRESS becomes COMPLETED when every content item of the course has a
    COMPLETED row; its completionDate is the last update of those rows (not before the
    enrollment date);
  - a COMPLETED or CERTIFIED enrollment without a completionDate gets one the same way
    (or, with no COMPLETED rows, the time of its last status move).
It never moves anything backwards, never moves CERTIFIED, DROPPED or EXPIRED enrollments,
and keeps an existing completionDate. Each batch locks its enrollments (as the API's writes
do), fixes them in a few UPDATEs, bumps their cache version and drops their cached reads.
A second run finds nothing to fix.

Examples:
  manage.py backfill_enrollment_status --dry-run
  manage.py backfill_enrollment_status --course 12
"""
    default_batch_size = 1000
    batch_help = "Enrollments per batch; each batch is one transaction. Default: %(default)s."

    def add_arguments(self, parser):
        self.add_course_option(parser)
        super().add_arguments(parser)

    def handle(self, *args, **options):
        course_id = options["course"]
        dry_run = options["dry_run"]
        scope = self.in_course(Enrollment.objects.all(), course_id)

        summary = Summary(read=scope.count())
        progress = self.progress(options, "backfill", total=summary.read, unit="enrollments")
        # Only enrollments the rule can touch; keyset batches, so fixing rows never shifts them.
        candidates = scope.filter(status_sync.DRIFT_CANDIDATES)
        for batch in keyset_ids(candidates, options["batch_size"]):
            if dry_run:
                changes = status_sync.enrollment_status_drift(scope.filter(pk__in=batch))
            else:
                changes = status_sync.apply_enrollment_status_drift(batch)
            for change in changes:
                if dry_run or options["verbosity"] >= 2:
                    self.stdout.write(_describe(change, dry_run=dry_run))
            summary.changed += len(changes)
            progress.advance(len(batch))
        progress.finish()
        summary.skipped = summary.read - summary.changed
        self.finish(summary, options, what="enrollments")


def _describe(change: dict, *, dry_run: bool) -> str:
    verb = "would fix" if dry_run else "fixed"
    text = (
        f"{verb} enrollment {change['id']} (user {change['user_id']}, "
        f"course {change['course_id']}): {change['status']}"
    )
    if change["target_status"] != change["status"]:
        text += f" -> {change['target_status']}"
    if change["completed_at"] is None and change["target_completed_at"] is not None:
        text += f", completionDate {iso(change['target_completed_at'])}"
    return text
