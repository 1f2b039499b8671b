import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import CommandError
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q

from progress.formatting import PROGRESS_VALUES
from progress.management.base import BatchCommand, Summary, course_must_exist
from progress.management.progress_files import (
    EXTENSIONS,
    FORMATS,
    Writer,
)
from progress.models import ContentProgress, Enrollment


class Command(BatchCommand):
    help = """\
Export a course's enrollments and progress rows as CSV or JSON Lines.

One line per progress row, with the API's field names: userId, courseId, courseContentId,
progressStatus, activityDuration, progressPercent, metadata,
user_course_content_progress_created_at, user_course_content_progress_updated_at, and the
learner's enrollmentStatus, enrollmentDate and completionDate. Rows come by learner and in
course order; enrollments without any progress follow, one line each with the progress fields
empty. Timestamps are UTC ISO 8601 as in the API; in CSV, metadata is JSON text and
progressPercent is "50.00"; in JSON Lines progressPercent is a number, as the POST body takes
it. The output imports as it is with import_progress.

Rows are streamed from the database, never loaded whole. With --output the file is written
beside its final name and moved into place when complete, so a failed export leaves no
partial file. The summary goes to stderr when the data goes to stdout.

Examples:
  manage.py export_progress --course 12 > course-12.csv
  manage.py export_progress --course 12 --output course-12.jsonl
"""
    writes = False
    resume_hint = "Nothing was written to --output; run the command again."
    default_batch_size = 2000
    batch_help = "Rows fetched from the database at a time. Default: %(default)s."

    def add_arguments(self, parser):
        parser.add_argument(
            "--course", type=int, required=True, metavar="ID", help="The course to export."
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="csv or jsonl. Default: from --output's extension, else csv.",
        )
        parser.add_argument(
            "--output",
            metavar="FILE",
            help="Write to this file instead of stdout (replaced only when complete).",
        )
        super().add_arguments(parser)

    def handle(self, *args, **options):
        course_id = options["course"]
        course_must_exist(course_id)
        output = options["output"]
        fmt = options["format"] or EXTENSIONS.get(Path(output or "").suffix.lower(), "csv")
        summary = Summary()
        progress = self.progress(options, "export_progress")
        if output is None:
            stream = _Raw(self.stdout)
            try:
                self._export(
                    Writer(stream, fmt), course_id, summary, progress, options["batch_size"]
                )
            except BrokenPipeError:  # `export_progress ... | head`: the reader has had enough
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # no second error when Python exits
                return
            progress.finish()
            self.finish(summary, options, stream=self.stderr)
            return
        target = Path(output)
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            raise CommandError(f"Cannot write {target}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
                self._export(
                    Writer(stream, fmt), course_id, summary, progress, options["batch_size"]
                )
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        progress.finish()
        if options["verbosity"] >= 1:
            self.stdout.write(f"Wrote {summary.read} lines to {target}.")
        self.finish(summary, options)

    def _export(self, writer: Writer, course_id: int, summary: Summary, progress, chunk: int):
        # The learner's enrollment in this course, joined once (at most one: user and course
        # are unique together).
        enrollment = FilteredRelation(
            "user__enrollments", condition=Q(user__enrollments__course_id=course_id)
        )
        rows = (
            ContentProgress.objects.filter(course_id=course_id)
            .annotate(
                enrollment=enrollment,
                enrollment_status=F("enrollment__status"),
                enrolled_at=F("enrollment__enrolled_at"),
                completed_at=F("enrollment__completed_at"),
            )
            .order_by("user_id", "content__position", "content_id")
            .values(*PROGRESS_VALUES, "enrollment_status", "enrolled_at", "completed_at")
        )
        for row in rows.iterator(chunk_size=chunk):
            writer.write(row)
            summary.read += 1
            progress.advance()
        has_rows = ContentProgress.objects.filter(user_id=OuterRef("user_id"), course_id=course_id)
        alone = (
            Enrollment.objects.filter(course_id=course_id)
            .filter(~Exists(has_rows))
            .order_by("user_id")
            .values("user_id", "enrolled_at", "completed_at", enrollment_status=F("status"))
        )
        for row in alone.iterator(chunk_size=chunk):
            writer.write({**row, "course_id": course_id})
            summary.read += 1
            progress.advance()


class _Raw:
    """Django's stdout wrapper, written to as a plain stream (no line endings added)."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")
