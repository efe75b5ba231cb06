# The send log's error_code loses its own index: sendfleet_log_error (error_code, -created_at)
# serves the same lookups, and each index costs every row the send path writes.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0008_reputation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sendlog",
            name="error_code",
            field=models.CharField(blank=True, max_length=40),
        ),
    ]
