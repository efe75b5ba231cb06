# A message's content is stored once (MessageContent) and its recipients' send log rows refer
# to it, instead of a copy of the whole request per row (issue 13). Rows written before this
# keep their own copy (payload, text_body...) and still work: nothing to move.
#
# The index on the new column is partial (only rows that have content: the outbox, and logs
# with LOG_CONTENT), so it stays small on a large log; building it reads the table once.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_sendfleet", "0005_webhook_event_robustness")]

    operations = [
        migrations.CreateModel(
            name="MessageContent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("from_email", models.CharField(max_length=320)),
                ("from_name", models.CharField(blank=True, max_length=156)),
                ("subject", models.CharField(blank=True, max_length=256)),
                ("reply_to", models.CharField(blank=True, max_length=320)),
                ("text", models.TextField()),
                ("html", models.TextField(blank=True)),
            ],
            options={
                "verbose_name": "message content",
                "verbose_name_plural": "message contents",
            },
        ),
        migrations.AddField(
            model_name="sendlog",
            name="content",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="send_logs",
                to="django_sendfleet.messagecontent",
            ),
        ),
        migrations.AddIndex(
            model_name="sendlog",
            index=models.Index(
                condition=models.Q(("content__isnull", False)),
                fields=["content"],
                name="sendfleet_log_content",
            ),
        ),
    ]
