# The reputation guard (issue 15): the last level seen for each account mode and mailer, so
# that a change is announced once across processes (django_sendfleet/reputation_state.py).

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_sendfleet", "0007_send_rollups")]

    operations = [
        migrations.CreateModel(
            name="ReputationLevel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("mode", models.CharField(max_length=8)),
                ("mailer", models.CharField(blank=True, max_length=100)),
                ("level", models.CharField(default="unknown", max_length=8)),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "released_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="An operator released the sends held at this danger.",
                        null=True,
                    ),
                ),
            ],
            options={
                "verbose_name": "reputation level",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("mode", "mailer"), name="sendfleet_reputation_scope"
                    )
                ],
            },
        ),
    ]
