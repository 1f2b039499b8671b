"""The change-event update triggers check for changed rows with count(*) instead of EXISTS, and
plan without nested loops (progress/event_sql.py, CHANGED_ROWS_CHECK): the same events, in time
linear in the rows a statement touches, whatever plan the connection cached before.
PostgreSQL only: SQLite's triggers are row-level and unchanged."""

from django.db import migrations

from progress import event_sql


def install_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(event_sql.PG_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("progress", "0008_record_progress_fewer_statements")]

    operations = [migrations.RunPython(install_functions, migrations.RunPython.noop)]
