"""Send priorities: which sends go first when the key's rate limit is the bottleneck.

Two levels, because the rate limiter (``ratelimit.py``) tells two kinds of sender apart:

- ``"high"``: transactional mail (a password reset, a receipt). The default of every mailer
  that is not ``BULK``. Queued rows of this priority are sent before any due ``"low"`` row,
  and the limiter gives them the next free slot.
- ``"low"``: bulk mail (a newsletter). The default of a ``BULK`` mailer. Paced evenly, it
  uses the slots transactional mail leaves.

A mailer's ``PRIORITY`` option overrides its default; a message's own ``priority`` attribute
(as with django-post_office) overrides the mailer's. The send log stores the priority as a
rank (``SendLog.priority``): a lower rank is sent first, and the gap leaves room for levels
in between without rewriting rows.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import SendFleetConfigurationError, SendFleetInvalidMessage

HIGH = "high"
LOW = "low"
#: Most urgent first.
PRIORITIES = (HIGH, LOW)
#: The rank stored on a row for each priority: rows are claimed by (rank, id).
RANKS = {HIGH: 10, LOW: 20}
NAMES = {rank: name for name, rank in RANKS.items()}
#: ``SendLog.priority``'s choices.
CHOICES = [(RANKS[HIGH], "high (transactional)"), (RANKS[LOW], "low (bulk)")]

_EXPECTED = "'high' (transactional) or 'low' (bulk)"


def parse_priority(name: str, value: Any) -> str | None:
    """The ``PRIORITY`` option: "high", "low", or None for the mailer's default."""
    if value is None or value in PRIORITIES:
        return value
    raise SendFleetConfigurationError(
        f"SendFleet {name} must be {_EXPECTED}, or None (low for a BULK mailer, else high); "
        f"not {value!r}."
    )


def of_message(message: Any, default: str) -> str:
    """The priority of this message: its own ``priority`` attribute, else ``default``.

    Raises ``SendFleetInvalidMessage`` (a refusal of this message alone) for any other value.
    """
    value = getattr(message, "priority", None)
    if value is None:
        return default
    if value in PRIORITIES:
        return value
    raise SendFleetInvalidMessage(
        f"message.priority must be {_EXPECTED}, or None for the mailer's; not {value!r}.",
        email_message=message,
    )


def lenient_of_message(message: Any, default: str) -> str:
    """``of_message`` for code that records a message already refused: never raises."""
    value = getattr(message, "priority", None)
    return value if value in PRIORITIES else default


def name_of(rank: int) -> str:
    """The priority of a stored rank; a rank between two levels counts as the next lower."""
    for name in PRIORITIES:
        if rank <= RANKS[name]:
            return name
    return PRIORITIES[-1]
