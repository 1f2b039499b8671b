from django.core.management.base import BaseCommand

from progress import services


class Command(BaseCommand):
    help = """\
Count again each enrollment's progress total (enrollments.progress_total, kept by the database)
where it differs from the learner's rows, and list what was repaired.

The triggers keep every total in every write but one race: an enrollment inserted or moved to
another learner or course while another transaction writes that learner's rows in the course
(progress/total_sql.py). Safe to run at any time, under load; a second run finds nothing.

Examples:
  manage.py recount_progress_totals --dry-run
  manage.py recount_progress_totals --course 12 --course 14
"""

    def add_arguments(self, parser):
        parser.add_argument(
            "--course", type=int, action="append", dest="courses", help="only this course"
        )
        parser.add_argument("--dry-run", action="store_true", help="list, change nothing")

    def handle(self, *args, courses=None, dry_run=False, **options):
        ids = services.recount_progress_totals(course_ids=courses, dry_run=dry_run)
        verb = "would be counted again" if dry_run else "counted again"
        listed = f": {', '.join(map(str, ids))}" if ids else ""
        self.stdout.write(f"{len(ids)} enrollment total(s) {verb}{listed}")
