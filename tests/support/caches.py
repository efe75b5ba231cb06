"""Django cache settings the rate limiter's tests share: the alias its cache lives under, and
a Redis cache's settings."""

from __future__ import annotations

from typing import Any

#: The cache alias the limiter's tests put its state under (``RATE_LIMIT_CACHE``).
ALIAS = "ratelimit"


def redis_cache(url: str) -> dict[str, Any]:
    """Django's RedisCache on ``url``."""
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
