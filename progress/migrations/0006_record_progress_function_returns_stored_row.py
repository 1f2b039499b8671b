"""cp_record_progress returns the row as stored, without the old metadata it used to return
for the response (the service answers with the stored row now). Its result columns change, so
upsert_sql.install drops the installed function before creating it again."""

from django.db import migrations

from progress import upsert_sql


def install(apps, schema_editor):
    upsert_sql.install(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("progress", "0005_record_progress_function"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
