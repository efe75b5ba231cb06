# Addresses up to 320 characters are valid and sent (issue 10): every column that holds one is
# widened from 254, so that the log, the suppression list and webhook events keep the whole
# address. Suppressed addresses with an international domain are stored as they are now sent,
# in IDNA form.

from typing import Any

from django.db import migrations, models


def _ascii_domain(address: str) -> str:
    local_part, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local_part}@{domain.encode('idna').decode('ascii')}".lower()
    except UnicodeError:
        return address


def suppressions_by_address_as_sent(apps: Any, schema_editor: Any) -> None:
    Suppression = apps.get_model("django_sendfleet", "Suppression")
    non_ascii = [
        (pk, email)
        for pk, email in Suppression.objects.values_list("pk", "email").iterator()
        if not email.isascii()
    ]
    for pk, old_email in non_ascii:
        email = _ascii_domain(old_email)
        if email == old_email:
            continue
        if Suppression.objects.filter(email=email).exists():
            Suppression.objects.filter(pk=pk).delete()  # already listed in its IDNA form
        else:
            Suppression.objects.filter(pk=pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [
        ("django_sendfleet", "0003_queued_sending"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sendlog",
            name="from_email",
            field=models.CharField(max_length=320),
        ),
        migrations.AlterField(
            model_name="sendlog",
            name="recipient",
            field=models.CharField(db_index=True, max_length=320),
        ),
        migrations.AlterField(
            model_name="sendlog",
            name="reply_to",
            field=models.CharField(blank=True, max_length=320),
        ),
        migrations.AlterField(
            model_name="suppression",
            name="email",
            field=models.CharField(help_text="Stored in lower case.", max_length=320, unique=True),
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="recipient",
            field=models.CharField(blank=True, max_length=320),
        ),
        migrations.RunPython(suppressions_by_address_as_sent, migrations.RunPython.noop),
    ]
