"""Progress rows in files: the CSV and JSON Lines shapes that export_progress writes and
import_progress reads. Field names are the API's, so an export is an import file."""

import contextlib
import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from progress.formatting import CREATED, UPDATED, iso, progress_csv_cells, progress_record

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

PROGRESS_FIELDS = (
    "userId",
    "courseId",
    "courseContentId",
    "progressStatus",
    "activityDuration",
    "progressPercent",
    "metadata",
    CREATED,
    UPDATED,
)
ENROLLMENT_FIELDS = ("enrollmentStatus", "enrollmentDate", "completionDate")
EXPORT_FIELDS = PROGRESS_FIELDS + ENROLLMENT_FIELDS
REQUIRED = ("courseId", "courseContentId", "progressStatus")

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+)")
_INTEGER_FIELDS = ("userId", "courseId", "courseContentId", "activityDuration")


class FileFormatError(ValueError):
    """The file as a whole cannot be read (no format, a CSV header without the fields)."""


def detect_format(path: str, given: str | None) -> str:
    if given:
        return given
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise FileFormatError(
            f"cannot tell the format of {path!r} from its extension; pass --format csv or jsonl"
        )
    return found


def open_input(path: str):
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


@dataclass
class Record:
    """One line (CSV: one record) of an import file."""

    line: int
    data: dict | None  # the values as the API would receive them; None when unreadable
    raw: dict | str  # what the file said, for --errors-file
    error: str | None = None


def read_records(stream, fmt: str):
    return _read_csv(stream) if fmt == "csv" else _read_jsonl(stream)


def _read_csv(stream):
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    missing = [name for name in REQUIRED if name not in header]
    if "userId" not in header and "username" not in header:
        missing.insert(0, "userId or username")
    if missing:
        raise FileFormatError(f"the CSV header lacks {', '.join(missing)} (it has {header})")
    for row in reader:
        # A quoted value may span lines; report the line the record starts on.
        spanned = sum(value.count("\n") for value in row.values() if isinstance(value, str))
        yield Record(line=reader.line_num - spanned, data=csv_values(row), raw=row)


def csv_values(row: dict) -> dict:
    """A CSV record as the JSON body the API would get: numbers as numbers, metadata parsed.

    Empty cells are absent fields. Text that is not a number stays text, so the API's
    validation reports it ("A whole number is required.").
    """
    data = {}
    for key, value in row.items():
        if key is None or value is None:  # cells beyond the header, or missing at the end
            continue
        value = value.strip()
        if value == "":
            continue
        numeric = key in _INTEGER_FIELDS or key == "progressPercent"
        if numeric and _INTEGER.fullmatch(value):
            value = int(value)
        elif key == "progressPercent" and _DECIMAL.fullmatch(value):
            value = float(value)
        elif key == "metadata":
            # Else it stays text: "A JSON object is required." (also when nested too deeply).
            with contextlib.suppress(ValueError, RecursionError):
                value = json.loads(value)
        data[key] = value
    return data


def _read_jsonl(stream):
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield Record(number, None, text.rstrip("\r\n"), f"not valid JSON ({exc})")
            continue
        except RecursionError:  # a line nested thousands deep: this line's error, not a crash
            yield Record(number, None, text.rstrip("\r\n"), "JSON nested too deeply to read")
            continue
        if not isinstance(data, dict):
            yield Record(number, None, text.rstrip("\r\n"), "a JSON object is required")
            continue
        yield Record(number, data, data)


class ErrorsFile:
    """The bad records, in the input's format, with `line` and `error` added; unknown keys are
    ignored on import, so the file can be fixed and imported again."""

    def __init__(self, path: str, fmt: str):
        self.fmt = fmt
        self.stream = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.writer = None

    def write(self, record: Record, error: str) -> None:
        if self.fmt == "jsonl":
            raw = record.raw if isinstance(record.raw, dict) else {"raw": record.raw}
            rest = {k: v for k, v in raw.items() if k not in ("line", "error")}
            line = {"line": record.line, "error": error, **rest}
            self.stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            return
        row = {k: v for k, v in record.raw.items() if k is not None}
        if self.writer is None:
            self.writer = csv.DictWriter(
                self.stream, fieldnames=["line", "error", *row], extrasaction="ignore"
            )
            self.writer.writeheader()
        self.writer.writerow({"line": record.line, "error": error, **row})

    def close(self) -> None:
        self.stream.close()


class Writer:
    """Export lines, one per row, in CSV (with header) or JSON Lines."""

    def __init__(self, stream, fmt: str):
        self.stream = stream
        self.fmt = fmt
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS, lineterminator="\n")
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        """`row`: what formatting.progress_record takes, with the learner's enrollment_status,
        enrolled_at and completed_at. CSV cells are formatting.progress_csv_cells (the admin's
        export writes the same); JSON Lines get progressPercent as a number (what the POST
        body takes, so a line is a valid import and API input)."""
        enrollment = {
            "enrollmentStatus": row["enrollment_status"],
            "enrollmentDate": iso(row["enrolled_at"]),
            "completionDate": iso(row["completed_at"]),
        }
        if self.fmt == "jsonl":
            record = progress_record(row)
            if record["progressPercent"] is not None:
                record["progressPercent"] = float(record["progressPercent"])
            self.stream.write(json.dumps({**record, **enrollment}, ensure_ascii=False) + "\n")
            return
        enrollment = {name: "" if value is None else value for name, value in enrollment.items()}
        self.csv.writerow({**progress_csv_cells(row), **enrollment})
