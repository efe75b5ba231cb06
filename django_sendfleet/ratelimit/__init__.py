"""``SENDFLEET["RATE_LIMIT"]``: one limit held by every process and machine that sends with a key.

Import from here; the modules behind this face may move.
"""

from ..exceptions import SendFleetRateLimitWait
from .limiter import SlidingWindowLimiter, is_shared

__all__ = ["SendFleetRateLimitWait", "SlidingWindowLimiter", "is_shared"]
