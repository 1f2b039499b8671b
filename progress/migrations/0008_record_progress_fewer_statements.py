"""cp_record_progress runs fewer statements per write: the content check rides on the
enrollment's lock, and a write that leaves its row IN_PROGRESS moves the enrollment without
counting the learner's rows (such a row means not every item is COMPLETED, and it is activity).
The same rules, the same results (tests/test_record_progress_paths.py); bench/notes.md, issue
17, "the POST (third pass)". upsert_sql.install drops the installed function first."""

from django.db import migrations

from progress import upsert_sql


def install(apps, schema_editor):
    upsert_sql.install(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("progress", "0007_enrollment_progress_total"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
