"""The levels a bounce or complaint rate is at: unknown, healthy, warning, danger.

Where the thresholds between them come from, and the floors below which a rate says little:
``conf/thresholds.py`` (``SENDFLEET["REPUTATION"]``).
"""

from __future__ import annotations

from ..models.reputation_level import DANGER, HEALTHY, LEVELS, UNKNOWN, WARNING

__all__ = ["DANGER", "HEALTHY", "LEVELS", "UNKNOWN", "WARNING", "level_for", "rank", "worst"]


def level_for(value: float, thresholds: tuple[float, float], events: int, min_events: int) -> str:
    """The level of a rate of ``events`` events; danger takes ``min_events`` of them."""
    warning, danger = thresholds
    if value >= danger and events >= min_events:
        return DANGER
    return WARNING if value >= warning else HEALTHY


def worst(*levels: str) -> str:
    return max(levels, key=LEVELS.index)


def rank(level: str) -> int:
    return LEVELS.index(level)
