# Webhook events are never lost (issue 12): bodies that cannot be stored as JSON are kept as
# text, failed events are retried (attempts, next_attempt_at), old events are refused (signed_at)
# and pruned down to their digest (pruned_at), and an event's sender can resolve an "unknown"
# send. Events already pending or failed are due for a retry at once.

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.utils import timezone


def retry_unfinished_events(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    WebhookEvent = apps.get_model("django_sendfleet", "WebhookEvent")
    WebhookEvent.objects.filter(outcome__in=("pending", "failed")).update(
        next_attempt_at=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [("django_sendfleet", "0004_address_columns_320")]

    operations = [
        migrations.AlterField(
            model_name="webhookevent",
            name="raw",
            field=models.JSONField(
                blank=True, null=True, help_text="The event exactly as SendFleet sent it."
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="raw_body",
            field=models.TextField(
                blank=True,
                help_text="The body as received, when it could not be parsed or stored as JSON "
                "(base64 after 'base64:' when it is not UTF-8 text without NUL).",
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="sender",
            field=models.CharField(blank=True, max_length=320),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="signed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="detail",
            field=models.CharField(
                blank=True, help_text="Why it failed or was refused.", max_length=500
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="pruned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("pending", "not processed yet"),
                    ("applied", "applied to the send log"),
                    ("unknown_message", "no send log row has this message id"),
                    ("unknown_type", "event type not known"),
                    ("failed", "processing failed: retried automatically"),
                    ("unprocessable", "unprocessable: kept as received"),
                    ("too_old", "refused: signed longer ago than WEBHOOK_MAX_AGE"),
                ],
                db_index=True,
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                fields=["outcome", "next_attempt_at"], name="sendfleet_event_retry"
            ),
        ),
        migrations.RunPython(retry_unfinished_events, migrations.RunPython.noop),
    ]
