from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_sendfleet.models import SendLog, Suppression

pytestmark = pytest.mark.django_db


def make_row(days_old, status="queued"):
    return SendLog.objects.create(
        created_at=timezone.now() - timedelta(days=days_old),
        recipient=f"r{days_old}-{status}@example.com",
        from_email="shop@example.com",
        status=status,
    )


def test_prune_deletes_old_rows_in_batches_and_keeps_pending_and_suppressions():
    old = [make_row(40 + n) for n in range(5)]
    old_pending = make_row(50, status="pending")
    recent = make_row(3)
    Suppression.objects.create(
        email="gone@example.com", created_at=timezone.now() - timedelta(days=400)
    )
    out = StringIO()
    call_command("sendfleet_prune", days=30, batch_size=2, stdout=out)
    remaining = set(SendLog.objects.values_list("id", flat=True))
    assert remaining == {old_pending.id, recent.id}
    assert not remaining & {row.id for row in old}
    assert Suppression.objects.count() == 1
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["deleted 2 rows so far", "deleted 4 rows so far", "deleted 5 rows so far"]
    assert "Deleted 5 send log rows" in lines[-1]


def test_dry_run_deletes_nothing():
    make_row(40)
    out = StringIO()
    call_command("sendfleet_prune", days=30, dry_run=True, stdout=out)
    assert SendLog.objects.count() == 1 and "1 rows" in out.getvalue()


def test_days_must_be_positive():
    with pytest.raises(CommandError):
        call_command("sendfleet_prune", days=0)
