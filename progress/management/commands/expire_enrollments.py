from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from progress import rules, services
from progress.formatting import iso
from progress.management.base import (
    BatchCommand,
    Summary,
    keyset_ids,
    moment_arg,
    parse_moment,
)
from progress.models import Enrollment, EnrollmentStatus

EXPIRED = EnrollmentStatus.EXPIRED
# The statuses with an allowed move to EXPIRED: ENROLLED, IN_PROGRESS, COMPLETED.
EXPIRABLE = rules.statuses_that_may_move_to(EXPIRED)


class Command(BatchCommand):
    help = f"""\
Move enrollments to EXPIRED when their time is up.

Two rules; an enrollment that meets either expires:
  - its metadata holds "expiresAt" (ISO 8601 date-time, or a date: the end of that day in
    TIME_ZONE) and that moment has passed; always applied;
  - with --before DATE: it was enrolled before DATE (a date alone is the start of that day
    in TIME_ZONE).
Only {", ".join(EXPIRABLE)} enrollments expire (the allowed moves): CERTIFIED, DROPPED and
EXPIRED ones are never touched. Each move goes through progress.services.move_enrollment, so
the enrollment's updated time, cache version and cached reads follow as for an API PATCH.
Each batch locks its enrollments and checks the rules again under the lock. An expiresAt that
cannot be read is reported and counted as failed (non-zero exit), and the others still expire.
A second run finds nothing to do. A learner re-enrols as usual (EXPIRED -> ENROLLED).

Examples:
  manage.py expire_enrollments --dry-run
  manage.py expire_enrollments --before 2025-01-01 --course 12
"""
    default_batch_size = 500
    batch_help = "Enrollments per batch; each batch is one transaction. Default: %(default)s."

    def add_arguments(self, parser):
        parser.add_argument(
            "--before",
            type=moment_arg,
            metavar="DATE",
            help="Also expire enrollments enrolled before this ISO 8601 date or date-time.",
        )
        self.add_course_option(parser)
        super().add_arguments(parser)

    def handle(self, *args, **options):
        before = options["before"]
        now = timezone.now()
        scope = self.in_course(Enrollment.objects.filter(status__in=EXPIRABLE), options["course"])
        rule = Q(metadata__has_key="expiresAt")
        if before is not None:
            rule |= Q(enrolled_at__lt=before)
        candidates = scope.filter(rule)

        summary = Summary()
        progress = self.progress(options, "expire_enrollments", unit="enrollments")
        for ids in keyset_ids(candidates, options["batch_size"]):
            self._batch(ids, before, now, summary, options)
            progress.advance(len(ids))
        progress.finish()
        self.finish(summary, options, what="enrollments")

    def _batch(self, ids, before, now, summary: Summary, options) -> None:
        dry_run = options["dry_run"]
        with transaction.atomic():
            for enrollment in (
                Enrollment.objects.select_for_update().filter(pk__in=ids).order_by("pk")
            ):
                summary.read += 1
                reason, problem = _reason(enrollment, before, now)
                if reason is None:
                    if problem:
                        summary.failed += 1
                        self.stderr.write(f"enrollment {enrollment.pk}: {problem}")
                    else:
                        summary.skipped += 1
                    continue
                if not dry_run:  # locked above, and its status checked under the lock
                    services.move_locked_enrollment(enrollment, EXPIRED)
                summary.changed += 1
                if dry_run or options["verbosity"] >= 2:
                    verb = "would expire" if dry_run else "expired"
                    self.stdout.write(
                        f"{verb} enrollment {enrollment.pk} (user {enrollment.user_id}, "
                        f"course {enrollment.course_id}, {enrollment.status}): {reason}"
                    )


def _reason(enrollment: Enrollment, before: datetime | None, now: datetime):
    """(why it expires, or None; a problem with its metadata, or None)."""
    if enrollment.status not in EXPIRABLE:
        return None, None
    if before is not None and enrollment.enrolled_at < before:
        return f"enrolled {iso(enrollment.enrolled_at)}, before {iso(before)}", None
    metadata = enrollment.metadata if isinstance(enrollment.metadata, dict) else {}
    value = metadata.get("expiresAt")
    if value is None or value == "":  # no expiry date
        return None, None
    expires = parse_moment(value, date_means="end") if isinstance(value, str) else None
    if expires is None:
        return None, f"metadata expiresAt {value!r} is not an ISO 8601 date or date-time"
    if expires <= now:
        return f"expiresAt {iso(expires)} has passed", None
    return None, None
