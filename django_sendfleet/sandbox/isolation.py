"""What django-sendfleet remembers between sends, and how a test starts and ends without it.

The sandbox's helpers (``use_sendfleet_sandbox``, the pytest plugin's fixtures) call
``reset_process_state()`` when a test's sandbox starts and again when it stops, so that nothing
one test did changes what the next one sees. What it resets, which is every piece of state
django-sendfleet keeps outside the database:

- the API key pauses after a 401 (``key_guard``): in this process's memory and in the caches;
- the rate limiter's windows (``ratelimit``): in the caches, and in memory for ``DummyCache``;
- the caches this process leaves alone after they failed (``shared_cache``);
- this process's reputation figures (``reputation_state``);
- the webhook events this process stored and has not applied yet, and the times it last
  looked for due retries and unknown sends (``event_drain``).

What it leaves, because it changes no outcome: caches of pure computations (parsed addresses,
SQL text per model, the HMAC of each secret key), pooled Redis connections, the SQLite write
turns, signal receivers (your own), and in-process transports (each sandbox removes its own
when it stops).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from ..ratelimit import key_guard, shared_cache
from ..ratelimit import limiter as ratelimit
from ..reputation import state as reputation_state
from ..webhooks import drain as event_drain


def reset_process_state(api_keys: Iterable[str] = ()) -> None:
    """Forget everything django-sendfleet keeps between sends outside the database, in this
    process and in every configured cache; ``api_keys``: keys whose pauses to lift in the
    caches even if another process recorded them (a sandbox's keys)."""
    shared_cache.forget_failures()  # first: a cache left alone would not be cleared
    aliases = list(settings.CACHES)
    key_guard.forget_refusals(api_keys, aliases)
    ratelimit.forget_windows()
    reputation_state.forget()
    event_drain.forget_waiting()
