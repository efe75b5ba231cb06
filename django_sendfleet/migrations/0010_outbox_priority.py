# Queued sending by priority (docs/queued.md, "Priorities"): each send log row gets a priority
# rank (10 high, 20 low: the lower is sent first) and whether the backend that queued it was
# BULK, and the outbox gets an index for the worker's claim (pending rows by rank, then id).
# Both columns have database defaults, so that code of the previous release, still writing
# rows during a deploy, does not fail on them.
#
# Rows already in the outbox keep their order (the claim takes the older row first within a
# rank) and get their mailer's default priority as configured now: low for a BULK mailer or one
# whose PRIORITY is "low", high for every other. The settings are read here, not through the
# app's conf module, so that this migration does not change when that module does.

from typing import Any

from django.conf import settings
from django.db import migrations, models

HIGH, LOW = 10, 20


def _mailer_is_low(alias: str) -> bool:
    """Whether a mailer's queued sends default to low priority, from the settings as they are."""
    project = getattr(settings, "SENDFLEET", None)
    project = project if isinstance(project, dict) else {}
    entry = (getattr(settings, "MAILERS", None) or {}).get(alias) or {}
    options = (entry.get("OPTIONS") or {}) if isinstance(entry, dict) else {}
    priority = options.get("priority", project.get("PRIORITY"))
    if priority in ("high", "low"):
        return priority == "low"
    return options.get("bulk", project.get("BULK")) is True


def pending_rows_get_their_mailers_priority(apps: Any, schema_editor: Any) -> None:
    SendLog = apps.get_model("django_sendfleet", "SendLog")
    pending = SendLog.objects.using(schema_editor.connection.alias).filter(status="pending")
    mailers = set(pending.values_list("mailer", flat=True).distinct())
    low = [mailer for mailer in mailers if _mailer_is_low(mailer)]
    if low:
        pending.filter(mailer__in=low).update(priority=LOW)


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0009_error_code_single_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="sendlog",
            name="priority",
            field=models.PositiveSmallIntegerField(
                choices=[(10, "high (transactional)"), (20, "low (bulk)")],
                default=10,
                db_default=10,
            ),
        ),
        migrations.AddField(
            model_name="sendlog",
            name="bulk",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunPython(
            pending_rows_get_their_mailers_priority, migrations.RunPython.noop, elidable=True
        ),
        migrations.AddIndex(
            model_name="sendlog",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["priority", "id"],
                name="sendfleet_log_outbox",
            ),
        ),
    ]
