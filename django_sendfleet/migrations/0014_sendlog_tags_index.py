# The admin's tag filter on a big send log (issue 22): on PostgreSQL, a GIN index of the tags
# (jsonb_path_ops: it serves "tags @> '["welcome"]'", the filter's query). Other databases
# have no such index; there the filter walks the changelist's own index (admin/tags.py).

from typing import Any

from django.db import migrations

INDEX = "sendfleet_log_tags"


def create_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("django_sendfleet", "SendLog")._meta.db_table
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON {schema_editor.quote_name(table)} "
        "USING gin (tags jsonb_path_ops)"
    )


def drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0013_webhook_event_mailers"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
