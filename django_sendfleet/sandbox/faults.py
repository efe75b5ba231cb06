"""Answers a test scripts for the next sends: every documented error, throttles, outages.

A fault takes the place of the next answer that would have been an acceptance (the request is
still authenticated, validated and checked first, so a scripted error never hides a real one).
A faulted message is neither queued nor counted against the quota, except ``slow`` and
``timeout``: those are accepted, and only their answer is late or lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import answers
from .answers import Context, Response

FAULT_HELP = (
    "500, 502, 'drop', 'malformed', 'slow:<seconds>', 'timeout', 'refused', 'connect_timeout', "
    "'rate_limited[:<seconds>|:none]' or a documented error code such as 'domain_not_verified'"
)
# Failures of the connection itself, before the request reaches the sandbox: a socket server
# has already accepted the connection, so only the in-process transport can produce them.
CONNECTION_FAULTS = ("refused", "connect_timeout")
_TRANSPORT_FAULTS = ("drop", "malformed", "slow", "timeout", *CONNECTION_FAULTS)
_ALIASES = {"500": "server_error", "502": "queue_error", "throttled": "rate_limited"}


@dataclass(frozen=True)
class Fault:
    """One scripted answer.

    ``kind`` is an error code from ``answers.DOCUMENTED_ERRORS``, ``"rate_limited"`` (DRF's
    throttle, with ``Retry-After: <seconds>`` unless ``retry_after`` is False), or a failure of
    the transport: ``"drop"`` closes the connection without answering, ``"malformed"`` answers
    200 with a body that isn't JSON, ``"slow"`` answers normally after ``seconds``,
    ``"timeout"`` never answers (the client's read timeout ends it), ``"refused"`` and
    ``"connect_timeout"`` fail to connect (in process only).
    """

    kind: str
    seconds: float = 0.0
    retry_after: bool = True

    @property
    def accepts(self) -> bool:
        """The message is queued; only its answer is late or lost."""
        return self.kind in ("slow", "timeout")

    def response(self, context: Context) -> Response:
        if self.kind == "rate_limited":
            return answers.throttled(self.seconds, retry_after=self.retry_after)
        if self.kind == "drop":
            return Response(0, {}, drop=True)
        if self.kind == "malformed":
            return answers.malformed()
        return answers.DOCUMENTED_ERRORS[self.kind](context)


def parse_fault(kind: int | str) -> Fault:
    """Read a fault as written in the API: ``502``, ``"drop"``, ``"slow:2.5"``,
    ``"rate_limited:none"``, ``"dkim_not_verified"``..."""
    text = str(kind).strip().lower()
    name, colon, argument = text.partition(":")
    name = _ALIASES.get(name, name)
    if not colon and (name in _TRANSPORT_FAULTS or name in answers.DOCUMENTED_ERRORS):
        if name == "slow":
            raise ValueError(f"Give the delay: 'slow:<seconds>'. Faults: {FAULT_HELP}.")
        return Fault(name)
    if name == "rate_limited":
        if not colon:
            return Fault(name, 1.0)
        if argument == "none":
            return Fault(name, 1.0, retry_after=False)
        return Fault(name, _seconds(argument, kind))
    if name == "slow" and colon:
        return Fault(name, _seconds(argument, kind))
    raise ValueError(f"Unknown fault {kind!r}: use {FAULT_HELP}.")


def _seconds(text: str, kind: int | str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(f"Unknown fault {kind!r}: the seconds must be a number >= 0.")
    return value
