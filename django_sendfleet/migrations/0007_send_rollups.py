# Per-day rollups of the send log (issue 13), counted here from the rows already logged; from
# now on every write to the log keeps them current (django_sendfleet/rollups.py). Rows written
# by code still running the previous release while this migrates are not counted: run
# `manage.py sendfleet_rollups --rebuild` once the new release is live.

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone


def count_logged_rows(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    SendLog = apps.get_model("django_sendfleet", "SendLog")
    SendRollup = apps.get_model("django_sendfleet", "SendRollup")
    database = schema_editor.connection.alias
    day = TruncDate("created_at", tzinfo=timezone.get_default_timezone())
    grouped = (
        SendLog.objects.using(database)
        .annotate(day=day)
        .values_list("day", "mailer", "mode", "status", "error_code")
        .annotate(sends=Count("pk"))
        .order_by()
    )
    SendRollup.objects.using(database).bulk_create(
        (
            SendRollup(day=d, mailer=mailer, mode=mode, status=status, error_code=code, sends=n)
            for d, mailer, mode, status, code, n in grouped.iterator()
        ),
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [("django_sendfleet", "0006_message_content")]

    operations = [
        migrations.CreateModel(
            name="SendRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "day",
                    models.DateField(help_text="The rows' creation date in settings.TIME_ZONE."),
                ),
                ("mailer", models.CharField(blank=True, max_length=100)),
                ("mode", models.CharField(blank=True, max_length=8)),
                ("status", models.CharField(max_length=16)),
                ("error_code", models.CharField(blank=True, max_length=40)),
                (
                    "sends",
                    models.BigIntegerField(default=0, help_text="Send log rows with this key."),
                ),
            ],
            options={
                "verbose_name": "send log rollup",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "mailer", "mode", "status", "error_code"),
                        name="sendfleet_rollup_key",
                    )
                ],
            },
        ),
        migrations.RunPython(count_logged_rows, migrations.RunPython.noop),
    ]
