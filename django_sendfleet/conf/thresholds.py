"""``SENDFLEET["REPUTATION"]``: the thresholds between a rate's levels, and the floors under them.

SendFleet suspends a Shared SES account whose rolling 7-day bounce or complaint rate is too
high, but does not publish how high. AWS SES, which it sends through (and which judges BYOC
accounts directly), publishes its levels: a bounce rate of 5 % puts an account under review
and 10 % risks a pause; for complaints, 0.1 % and 0.5 %. The defaults here warn at half the
review level and call the review level itself danger. ``SENDFLEET["REPUTATION"]`` changes them.

Below ``MIN_SENDS`` sends in the window a rate says little (one bounce in 20 sends is 5 %), so
its level is ``unknown``, like a rate no delivery event can inform. Below ``MIN_EVENTS``
bounces (or complaints) a rate over the danger threshold is only ``warning``: one complaint in
500 sends is 0.2 %, twice SES's complaint review level, yet it is one person pressing "report
spam", and danger holds every bulk mailer. Both floors are ours, not SendFleet's or AWS's: 0
judges from the first send and the first event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import SendFleetConfigurationError

#: AWS SES's published review levels (bounce 5 %, complaint 0.1 %): warning at half of each.
DEFAULT_BOUNCE = (0.025, 0.05)
DEFAULT_COMPLAINT = (0.0005, 0.001)
DEFAULT_MIN_SENDS = 100
DEFAULT_MIN_EVENTS = 3
_KEYS = frozenset({"BOUNCE_RATE", "COMPLAINT_RATE", "MIN_SENDS", "MIN_EVENTS"})


@dataclass(frozen=True)
class Thresholds:
    """(warning, danger) fractions for each rate: 0.05 is 5 %."""

    bounce: tuple[float, float] = DEFAULT_BOUNCE
    complaint: tuple[float, float] = DEFAULT_COMPLAINT
    #: Fewer sends than this in the window: the level is unknown.
    min_sends: int = DEFAULT_MIN_SENDS
    #: Fewer events than this (bounces, or complaints): at most warning, never danger.
    min_events: int = DEFAULT_MIN_EVENTS


def parse_thresholds(name: str, value: Any) -> Thresholds:
    """``SENDFLEET["REPUTATION"]``: a dict of ``BOUNCE_RATE`` and ``COMPLAINT_RATE`` (each
    ``(warning, danger)`` fractions), ``MIN_SENDS`` and ``MIN_EVENTS``; keys left out keep their
    defaults."""
    if value is None:
        return Thresholds()
    if not isinstance(value, Mapping) or not set(value) <= _KEYS:
        raise SendFleetConfigurationError(
            f"SendFleet {name} must be a dict with any of BOUNCE_RATE, COMPLAINT_RATE (each a "
            "(warning, danger) pair of fractions, e.g. (0.025, 0.05) for 2.5 % and 5 %) and "
            "MIN_SENDS and MIN_EVENTS."
        )
    floors = {}
    for key, default in (("MIN_SENDS", DEFAULT_MIN_SENDS), ("MIN_EVENTS", DEFAULT_MIN_EVENTS)):
        floor = value.get(key, default)
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
            raise SendFleetConfigurationError(f"SendFleet {name}['{key}'] must be 0 or more.")
        floors[key] = floor
    return Thresholds(
        bounce=_pair(name, "BOUNCE_RATE", value.get("BOUNCE_RATE", DEFAULT_BOUNCE)),
        complaint=_pair(name, "COMPLAINT_RATE", value.get("COMPLAINT_RATE", DEFAULT_COMPLAINT)),
        min_sends=floors["MIN_SENDS"],
        min_events=floors["MIN_EVENTS"],
    )


def _pair(name: str, key: str, value: Any) -> tuple[float, float]:
    numbers = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not numbers or not 0 < value[0] <= value[1] <= 1:
        raise SendFleetConfigurationError(
            f"SendFleet {name}['{key}'] must be (warning, danger) fractions with "
            "0 < warning <= danger <= 1 (0.05 is 5 %)."
        )
    return float(value[0]), float(value[1])
