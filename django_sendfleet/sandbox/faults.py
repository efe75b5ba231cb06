"""Failures the sandbox can be told to produce, so clients can test how they cope."""

from __future__ import annotations

from dataclasses import dataclass

FAULT_HELP = "500, 502, 'drop', 'malformed' or 'slow:<seconds>'"


@dataclass(frozen=True)
class Fault:
    """One queued failure.

    ``"500"`` and ``"502"`` answer with that status; ``"drop"`` closes the connection without
    answering; ``"malformed"`` answers 200 with a body that isn't JSON; ``"slow"`` answers
    normally after ``seconds``.
    """

    kind: str  # "500", "502", "drop", "malformed" or "slow"
    seconds: float = 0.0


def parse_fault(kind: int | str) -> Fault:
    """Read a fault as written in the API: ``502``, ``"drop"``, ``"slow:2.5"``..."""
    text = str(kind).strip().lower()
    if text in ("500", "502", "drop", "malformed"):
        return Fault(text)
    name, _, seconds = text.partition(":")
    if name == "slow":
        try:
            delay = float(seconds)
        except ValueError:
            delay = -1.0
        if 0 <= delay < float("inf"):
            return Fault("slow", delay)
    raise ValueError(f"Unknown fault {kind!r}: use {FAULT_HELP}.")
