# Forgotten addresses (docs/send-log.md, "Retention and erasure"): sendfleet_forget erases what
# the tables hold about an address and keeps it suppressed by a keyed hash only (forgotten.py).
# A new, empty table: nothing else changes.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0010_outbox_priority"),
    ]

    operations = [
        migrations.CreateModel(
            name="ForgottenAddress",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("key_id", models.CharField(max_length=16)),
                ("forgotten_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "forgotten address",
                "verbose_name_plural": "forgotten addresses",
            },
        ),
    ]
