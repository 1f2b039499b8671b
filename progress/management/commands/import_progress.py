import csv

from django.core.management.base import CommandError

from progress.management.base import BatchCommand, batched
from progress.management.importer import BatchFailed, Importer
from progress.management.progress_files import (
    FORMATS,
    ErrorsFile,
    FileFormatError,
    detect_format,
    open_input,
    read_records,
)


class Command(BatchCommand):
    help = """\
Import progress rows from a CSV file (with a header) or JSON Lines, through the API's rules.

Fields, named as in the API: userId or username, courseId, courseContentId, progressStatus
(required); activityDuration, progressPercent, metadata (a JSON object; in CSV, JSON text);
user_course_content_progress_created_at / _updated_at (ISO 8601). Other fields are ignored,
so a file written by export_progress imports as it is (its enrollment-only lines are skipped).

Every row is checked as POST /user-progress/update checks it: field types and ranges, the
user and the course exist, the content belongs to the course, the learner has an active
enrollment. Good rows are written with the learner merge (status, percent and minutes never
go down; metadata keys are merged); with --overwrite the fields given are stored as given, as
for system users (and LOCKED may be set). Enrollment statuses follow and cached reads are
invalidated, as for the API. Bad rows are reported on stderr with their line number and
reason (and copied to --errors-file); the exit status is then non-zero.

Timestamps are kept for rows the import creates (a migration keeps its history); a row that
exists keeps its created_at, and a change to it is written now. A row that would not change
is skipped untouched, so importing the same file twice changes nothing.

Each batch is one transaction with a savepoint per row: a refused row is rolled back alone,
while an unexpected failure (database trouble) rolls back the whole batch and stops the
import; rerun it to continue (rows already written are skipped).

Examples:
  manage.py import_progress progress.csv --dry-run
  manage.py import_progress progress.jsonl --errors-file rejected.jsonl
  some-export | manage.py import_progress - --format jsonl --overwrite
"""
    default_batch_size = 500

    def add_arguments(self, parser):
        parser.add_argument(
            "file", metavar="FILE", help="The file to read; - reads stdin (give --format)."
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="csv or jsonl. Default: from the extension (.csv; .jsonl, .ndjson, .json).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Store the fields given exactly, even lower than stored (system-user "
            "semantics); without it the learner merge applies.",
        )
        parser.add_argument(
            "--errors-file",
            metavar="FILE",
            help="Also write the bad rows here, in the input's format with `line` and `error` "
            "added; fix it and import it again.",
        )
        super().add_arguments(parser)

    def handle(self, *args, **options):
        try:
            fmt = detect_format(options["file"], options["format"])
            stream = open_input(options["file"])
        except (FileFormatError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        errors_file = ErrorsFile(options["errors_file"], fmt) if options["errors_file"] else None

        def on_error(record, message, batch=False):
            if not batch:
                self.stderr.write(f"line {record.line}: {message}")
            if errors_file:
                errors_file.write(record, message)

        importer = Importer(
            exact=options["overwrite"], dry_run=options["dry_run"], on_error=on_error
        )
        progress = self.progress(options, "import_progress")
        try:
            for batch in batched(read_records(stream, fmt), options["batch_size"]):
                importer.import_batch(batch)
                progress.advance(len(batch))
        except (FileFormatError, UnicodeDecodeError, csv.Error) as exc:  # an unusable file
            raise CommandError(f"{options['file']}: {exc}") from exc
        except BatchFailed as exc:
            # The failed batch counts as failed: finish() below reports it and exits non-zero.
            self.stderr.write(f"Stopped: {exc}. Rows before it were written; rerun to continue.")
        finally:
            progress.finish()
            stream.close()
            if errors_file:
                errors_file.close()
        self.finish(importer.summary, options)
