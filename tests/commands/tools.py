"""Running a manage.py command as an operator would, and reading what it reports."""

import csv
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from courseprogress.models import Course, CourseContent, CourseStaff
from progress import services
from progress.models import ContentProgress, Enrollment

User = get_user_model()
COMMANDS = [
    "seed_demo",
    "backfill_enrollment_status",
    "import_progress",
    "export_progress",
    "expire_enrollments",
]
SUMMARY = re.compile(
    r"Summary: read (\d+), (?:would change|changed) (\d+), skipped (\d+), failed (\d+)"
)


def run(name, *args, expect_failure=False):
    """(stdout, stderr) of a command; with expect_failure it must exit non-zero."""
    out, err = io.StringIO(), io.StringIO()
    if expect_failure:
        with pytest.raises(CommandError) as failure:
            call_command(name, *args, stdout=out, stderr=err)
        err.write(f"CommandError: {failure.value}\n")
    else:
        call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def summary(text: str) -> dict:
    found = SUMMARY.search(text)
    assert found, f"no summary in {text!r}"
    return dict(
        zip(("read", "changed", "skipped", "failed"), map(int, found.groups()), strict=True)
    )


def snapshot() -> dict:
    """Every row a command could write, every column: equal snapshots = nothing changed."""
    models = [User, Group, Token, Course, CourseContent, CourseStaff, Enrollment, ContentProgress]
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


def enrollment(user, course) -> Enrollment:
    return Enrollment.objects.get(user=user, course=course)


def read_progress(client_for, user, course) -> dict:
    response = client_for(user).get(f"/user-progress/{course.pk}/{user.pk}")
    assert response.status_code == 200
    return response.json()["results"]


def write_file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_text(rows: list[dict], fields=None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def progress(user, course, content, status, **kwargs):
    return services.record_progress(
        user_id=user.pk, course_id=course.pk, content_id=content.pk, status=status, **kwargs
    )
