"""Every API key the sandbox knows by default, each answering its own way."""

from django_sendfleet.sandbox import (
    BYOC_BROKEN_API_KEY,
    EXPIRED_API_KEY,
    QUOTA_API_KEY,
    REVOKED_API_KEY,
    SANDBOX_API_KEY,
    SUSPENDED_API_KEY,
    UNAPPROVED_API_KEY,
)

DEFAULT_KEYS = [
    SANDBOX_API_KEY,
    REVOKED_API_KEY,
    EXPIRED_API_KEY,
    UNAPPROVED_API_KEY,
    SUSPENDED_API_KEY,
    BYOC_BROKEN_API_KEY,
    QUOTA_API_KEY,
]
