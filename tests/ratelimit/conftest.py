"""Fixtures the rate limiter's tests share."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.caches import ALIAS, redis_cache


@pytest.fixture(params=["redis", "locmem", "dummy", "file"])
def cache_alias(request: pytest.FixtureRequest, settings: Any, tmp_path: Any) -> str:
    """A cache of each kind the limiter keeps its state in differently, under ``ALIAS``."""
    backends: dict[str, dict[str, Any]] = {
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        "file": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        },
    }
    if request.param == "redis":
        backends["redis"] = redis_cache(request.getfixturevalue("redis_url"))
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        ALIAS: backends[request.param],
    }
    return ALIAS
