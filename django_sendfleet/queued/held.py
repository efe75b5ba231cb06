"""Releasing the sends the reputation guard holds: an operator's decision, from the admin.

Releasing marks each account mode now at danger as released (``reputation_state.release``):
bulk mailers send again until the level next changes, when the guard looks afresh. The rows
held so far are made due and their task enqueued, so they go out now rather than at their next
look at the level.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import QuerySet, Sum
from django.utils import timezone

from ..conf import SendFleetSettings, mailer_options
from ..db.routing import atomic_for
from ..exceptions import SendFleetReputationHold
from ..models import SendLog
from ..models.log_status import LogStatus
from ..models.rollups import SendRollup
from ..reputation import state as reputation_state
from .tasks import schedule


def held_rows() -> QuerySet[SendLog]:
    """The queued rows the guard holds now."""
    return SendLog.objects.filter(
        status=LogStatus.PENDING, error_code=SendFleetReputationHold.error_code
    )


def held_count() -> int:
    """How many rows the guard holds now, from the rollups: the log is not counted."""
    held = SendRollup.objects.filter(
        status=LogStatus.PENDING, error_code=SendFleetReputationHold.error_code
    ).aggregate(rows=Sum("sends"))
    return held["rows"] or 0


@dataclass(frozen=True)
class Released:
    modes: list[str]
    rows: int


def release_held_sends() -> Released:
    """Release the danger of every account mode at danger, and send what is held now."""
    now = timezone.now()
    with atomic_for(SendLog):
        modes = reputation_state.release(now)
        rows = list(held_rows().values_list("pk", "mailer"))
        held_rows().update(not_before=now, updated_at=now)
    by_backend: dict[str, list[int]] = defaultdict(list)
    backend_of: dict[str, str] = {}
    for pk, mailer in rows:
        if mailer not in backend_of:
            backend_of[mailer] = SendFleetSettings(mailer_options(mailer)).task_backend
        by_backend[backend_of[mailer]].append(pk)
    for task_backend, ids in by_backend.items():
        schedule(ids, task_backend)  # never raises: sendfleet_requeue finds what it missed
    return Released(modes, len(rows))
