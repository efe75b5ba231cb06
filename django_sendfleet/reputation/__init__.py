"""Bounce and complaint rates, their levels, and the guard that holds bulk mail at danger.

Import from here: ``check_now()`` (fresh figures), ``Current``, ``Rates``, ``Rate``,
``Counts``, the levels and ``REFRESH_SECONDS``; the modules behind this face may move.
Releasing held sends is queued sending's: ``django_sendfleet.tasks.release_held_sends``.
"""

from .levels import DANGER, HEALTHY, LEVELS, UNKNOWN, WARNING
from .rates import Counts, Rate, Rates, Snapshot
from .state import REFRESH_SECONDS, Current, check_now

__all__ = [
    "DANGER",
    "HEALTHY",
    "LEVELS",
    "REFRESH_SECONDS",
    "UNKNOWN",
    "WARNING",
    "Counts",
    "Current",
    "Rate",
    "Rates",
    "Snapshot",
    "check_now",
]
