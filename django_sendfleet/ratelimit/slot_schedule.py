"""Who gets the next request of the key's rate limit: the rules ``limiter.py`` applies, in
Python (``decide``) and on Redis (``SLOT_SCRIPT``).

Why: docs/internals.md#ratelimit-who-gets-the-next-slot
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from .bounded_redis import Script

HIGH = "high"
LOW = "low"


@dataclass(frozen=True)
class Rate:
    """``limit`` admissions in any ``window``; ``grace``: how long past its expected slot a
    waiting high-priority sender is still waited for."""

    limit: int
    window: float
    grace: float

    @property
    def interval(self) -> float:
        """The least time between two low-priority admissions."""
        return self.window / self.limit


@dataclass
class SlotState:
    """What every sender of one key shares."""

    #: Times of the admissions still in the window, sorted.
    log: list[float] = field(default_factory=list)
    #: The earliest time of the next low-priority admission (0: none yet).
    next_low: float = 0.0
    #: High-priority senders waiting for a slot: their id -> until when they are waited for.
    waiting: dict[str, float] = field(default_factory=dict)


def admit(log: list[float], now: float, limit: int, window: float) -> float:
    """The sliding log alone, on a sorted list of admission times changed in place.

    Drops the entries that left the window, then admits ``now`` if fewer than ``limit`` are
    left: returns 0.0, else the time until enough of the oldest have left.
    """
    del log[: bisect.bisect_right(log, now - window)]
    if len(log) < limit:
        bisect.insort(log, now)
        return 0.0
    return max(log[len(log) - limit] + window - now, 1e-6)


def decide(
    state: SlotState,
    now: float,
    rate: Rate,
    priority: str,
    waiter: str | None = None,
    will_wait: float = math.inf,
) -> float:
    """Admit a request at ``now`` (0.0) or answer the time until it may ask again.

    ``waiter`` is the id of a high-priority sender that asks again after the answered wait if
    that is at most ``will_wait``: low-priority senders then leave it the next slot.
    """
    log, window = state.log, rate.window
    del log[: bisect.bisect_right(log, now - window)]
    for expired in [name for name, until in state.waiting.items() if until <= now]:
        del state.waiting[expired]
    count = len(log)
    wait = log[count - rate.limit] + window - now if count >= rate.limit else 0.0
    if priority == HIGH:
        if wait <= 0:
            bisect.insort(log, now)
            if waiter is not None:
                state.waiting.pop(waiter, None)
            return 0.0
        if waiter is not None:
            if wait <= will_wait:
                state.waiting[waiter] = now + wait + rate.grace
            else:  # it gives up rather than wait: no one to leave a slot for
                state.waiting.pop(waiter, None)
        return max(wait, 1e-6)
    if priority != LOW:
        raise ValueError(f"priority must be {HIGH!r} or {LOW!r}, not {priority!r}")
    if state.waiting:
        # Room first for every waiting sender, then for this one: the entries that must leave.
        leaving = count + len(state.waiting) + 1 - rate.limit
        if leaving > count:
            wait = max(wait, window)  # the waiters' own slots must leave first
        elif leaving >= 1:
            wait = max(wait, log[leaving - 1] + window - now)
    wait = max(wait, state.next_low - now)
    if wait > 0:
        return max(wait, 1e-6)
    bisect.insort(log, now)
    state.next_low = now + rate.interval
    return 0.0


def answered(log: list[float], admitted: float, now: float) -> None:
    """The request admitted at ``admitted`` was answered at ``now``: its entry in the sorted
    ``log`` (changed in place) moves to ``now``, the latest SendFleet can have counted it at.

    An entry that has already left the log (the request took longer than the window) comes
    back at ``now``: SendFleet counts it for a window from its arrival, which may be that late.
    """
    if now <= admitted:
        return
    at = bisect.bisect_left(log, admitted)
    if at < len(log) and log[at] == admitted:
        del log[at]
    bisect.insort(log, now)


# The same rules on Redis, in integer microseconds.
# KEYS[1]: the log, a sorted set of admissions scored by their time (members "<priority>:<id>").
# KEYS[2]: the next low-priority admission's earliest time. KEYS[3]: a sorted set of waiting
# high-priority senders, scored by until when they are waited for.
# ARGV: limit, window, interval, grace, a unique member id, priority, waiter id ("" for none),
# will_wait (-1 for no bound), now ("" for the Redis server's clock).
# Returns 0 when admitted, else the microseconds until the request may ask again (at least 1).
SLOT_SCRIPT = Script("""
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME, then write
local now
if ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local priority, waiter, will_wait = ARGV[6], ARGV[7], tonumber(ARGV[8])
local expire = math.ceil(window / 1000) + 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
local function until_left(n) -- until the n oldest entries have left the window
  local entry = redis.call('ZRANGE', KEYS[1], n - 1, n - 1, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end
local function take()
  redis.call('ZADD', KEYS[1], now, priority .. ':' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[1], expire)
end
local wait = 0
if count >= limit then wait = until_left(count - limit + 1) end
if priority == 'high' then
  if wait <= 0 then
    take()
    if waiter ~= '' then redis.call('ZREM', KEYS[3], waiter) end
    return 0
  end
  if waiter ~= '' then
    if will_wait < 0 or wait <= will_wait then
      redis.call('ZADD', KEYS[3], now + wait + grace, waiter)
      -- Kept as long as the waiter waited for longest: another may wait longer than this one.
      local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
      redis.call('PEXPIRE', KEYS[3], math.ceil((tonumber(last[2]) - now) / 1000) + 1000)
    else
      redis.call('ZREM', KEYS[3], waiter)
    end
  end
  return math.max(1, wait)
end
local waiting = redis.call('ZCARD', KEYS[3])
if waiting > 0 then
  local leaving = count + waiting + 1 - limit
  if leaving > count then
    wait = math.max(wait, window)
  elseif leaving >= 1 then
    wait = math.max(wait, until_left(leaving))
  end
end
wait = math.max(wait, tonumber(redis.call('GET', KEYS[2]) or '0') - now)
if wait > 0 then return math.max(1, wait) end
take()
redis.call('SET', KEYS[2], now + interval, 'PX', expire)
return 0
""")

# ``answered`` on Redis. KEYS[1]: the log. ARGV: the admission's member, the window, now (""
# for the Redis server's clock), all in microseconds but the member.
ANSWERED_SCRIPT = Script("""
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) >= now then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
return 0
""")
