"""cp_record_progress: a learner's progress write in one round trip on PostgreSQL.

The function's SQL is built by progress/upsert_sql.py from the rules of progress/rules.py; a
rule changed there needs a new migration that installs it again (a test compares the installed
function with the one the module builds). SQLite keeps the Python path: nothing to install.
"""

from django.db import migrations

from progress import upsert_sql


def install(apps, schema_editor):
    upsert_sql.install(schema_editor)


def uninstall(apps, schema_editor):
    upsert_sql.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("progress", "0004_events"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
