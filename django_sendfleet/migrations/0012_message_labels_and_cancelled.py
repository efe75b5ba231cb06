# django-anymail's tags and metadata kept on each send log row (message/tags.py), and the
# status "cancelled" for a scheduled send cancelled in the admin (issue 22). The new columns have
# database defaults: rows written by code of an earlier release (during a deploy) get [] and {}.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0011_forgotten_address"),
    ]

    operations = [
        migrations.AddField(
            model_name="sendlog",
            name="metadata",
            field=models.JSONField(blank=True, db_default={}, default=dict),
        ),
        migrations.AddField(
            model_name="sendlog",
            name="tags",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AlterField(
            model_name="sendlog",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "pending"),
                    ("sending", "sending"),
                    ("queued", "queued"),
                    ("delivered", "delivered"),
                    ("bounced", "bounced"),
                    ("complained", "complained"),
                    ("failed", "failed"),
                    ("rejected", "rejected"),
                    ("unknown", "unknown"),
                    ("cancelled", "cancelled"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
    ]
