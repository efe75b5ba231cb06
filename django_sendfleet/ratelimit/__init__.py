"""``SENDFLEET["RATE_LIMIT"]``: one limit held by every process and machine that sends with a key.

Import from here; the modules behind this face may move.
"""

from ..exceptions import SendFleetRateLimitWait
from .limiter import SlidingWindowLimiter, is_shared
from .shared_cache import SKIP_CACHE_AFTER_FAILURE

__all__ = [
    "SKIP_CACHE_AFTER_FAILURE",
    "SendFleetRateLimitWait",
    "SlidingWindowLimiter",
    "is_shared",
]
