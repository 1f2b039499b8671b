"""What the courseprogress commands share: common options, batches, progress, the summary.

Progress goes to stderr, and only when stderr is a terminal or `--progress` asks for it: cron
mails, CI logs and captured test output stay clean, while an operator at a terminal sees the
work move. stdout carries the result (the summary, dry-run listings, exported data), so it can
be piped.
"""

import argparse
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description printed as written (paragraphs, lists)."""


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def parse_moment(text: str, *, date_means: str = "start") -> datetime | None:
    """An ISO 8601 date-time (naive = TIME_ZONE) or date; None when it is neither.

    A date alone is the start of that day in TIME_ZONE, or with date_means="end" the start of
    the next day (the first moment after it).
    """
    text = text.strip()
    try:
        # parse_datetime would read a date alone as its midnight: look for a date first.
        day = parse_date(text) if _DATE_ONLY.fullmatch(text) else None
        moment = None if day else parse_datetime(text)
    except ValueError:  # well formed but impossible, e.g. 2025-02-30
        return None
    if moment is not None:
        if timezone.is_naive(moment):
            return timezone.make_aware(moment)
        # In UTC: PostgreSQL refuses offsets beyond 15:59, which ISO 8601 allows (+23:59), and
        # would fail the whole batch. Near the ends of the calendar UTC may not exist.
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            return None
    if day is None:
        return None
    if date_means == "end":
        day += timedelta(days=1)
    return timezone.make_aware(datetime(day.year, day.month, day.day))


def moment_arg(text: str) -> datetime:
    moment = parse_moment(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or date-time")
    return moment


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Summary:
    """What a command did, in the four numbers every command reports."""

    read: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0

    def line(self, *, dry_run: bool = False) -> str:
        changed = "would change" if dry_run else "changed"
        text = (
            f"Summary: read {self.read}, {changed} {self.changed}, "
            f"skipped {self.skipped}, failed {self.failed}"
        )
        return text + (" (dry run: nothing was written)" if dry_run else "")


def _plain(text: str) -> str:
    return text  # progress is not an error: no red, although it goes to stderr


class Progress:
    """One line of progress on stderr: redrawn in place on a terminal, else every few seconds."""

    def __init__(self, stream, *, enabled: bool, label: str, total: int | None = None, unit="rows"):
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.tty = enabled and stream.isatty()
        self.interval = 0.1 if self.tty else 2.0
        self.started = self.last = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and time.monotonic() - self.last >= self.interval:
            self._draw()

    def _draw(self) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.started, 1e-9)
        text = f"{self.label}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {self.done / elapsed:,.0f}/s"
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K", style_func=_plain, ending="")
            self.stream.flush()
        else:
            self.stream.write(text, style_func=_plain)

    def finish(self) -> None:
        if not self.enabled:
            return
        self._draw()
        if self.tty:
            self.stream.write("", style_func=_plain)


class BatchCommand(BaseCommand):
    """Adds --batch-size, --progress and (for commands that write) --dry-run."""

    writes = True
    default_batch_size = 1000
    resume_hint = (
        "The batches committed before it are kept; run the command again to finish "
        "(what is done already is skipped)."
    )
    batch_help = "Rows per batch; each batch is one transaction. Default: %(default)s."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def execute(self, *args, **options):
        """A database failure (restart, lost connection, timeout) is a CommandError with a
        plain message and a non-zero exit, not a traceback."""
        try:
            return super().execute(*args, **options)
        except DatabaseError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"Database error: {message}. {self.resume_hint}") from exc

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=positive_int, default=self.default_batch_size, help=self.batch_help
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show progress on stderr. Default: only when stderr is a terminal.",
        )
        if self.writes:
            parser.add_argument(
                "--dry-run",
                action="store_true",
                help="Do all the checks and report what would change, but write nothing.",
            )

    @staticmethod
    def add_course_option(parser) -> None:
        parser.add_argument(
            "--course",
            type=int,
            metavar="ID",
            help="Only this course's enrollments (default: every course).",
        )

    @staticmethod
    def in_course(scope, course_id: int | None):
        """`scope` narrowed to one course (when given); CommandError if it does not exist."""
        if course_id is None:
            return scope
        course_must_exist(course_id)
        return scope.filter(course_id=course_id)

    def progress(self, options, label: str, total: int | None = None, unit="rows") -> Progress:
        enabled = options["progress"] if options["progress"] is not None else self.stderr.isatty()
        return Progress(self.stderr, enabled=enabled, label=label, total=total, unit=unit)

    def finish(self, summary: Summary, options, *, stream=None, what="rows") -> None:
        """Print the summary; a non-zero exit (CommandError) when anything failed."""
        dry_run = options.get("dry_run", False)
        if options["verbosity"] >= 1 or summary.failed:
            (stream or self.stdout).write(summary.line(dry_run=dry_run))
        if summary.failed:
            raise CommandError(f"{summary.failed} {what} failed; see the messages above.")


def course_must_exist(course_id: int) -> None:
    from courseprogress.models import Course

    if not Course.objects.filter(pk=course_id).exists():
        raise CommandError(f"Course {course_id} does not exist.")


def keyset_ids(queryset, batch_size: int):
    """The primary keys of `queryset` in order, read batch_size at a time after the last one
    read: rows that a batch changes (or that leave the queryset) never shift the next batch."""
    last = 0
    while True:
        ids = list(
            queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]
