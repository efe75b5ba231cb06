import django
import pytest

from django_sendfleet import client
from django_sendfleet.sandbox import SANDBOX_API_KEY

BACKEND = "django_sendfleet.backends.EmailBackend"

pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]


@pytest.fixture
def sandbox(sendfleet_sandbox):
    return sendfleet_sandbox


@pytest.fixture
def sendfleet_settings(settings, sandbox):
    """Point the backend at this test's sandbox; the test may change the dict further."""
    settings.SENDFLEET = {"API_KEY": SANDBOX_API_KEY, "API_URL": sandbox.url, "TIMEOUT": 5}
    # Django's test environment swaps every mailer for locmem; put ours back.
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": BACKEND}}
    else:
        settings.EMAIL_BACKEND = BACKEND
    return settings.SENDFLEET


@pytest.fixture
def retry_waits(monkeypatch):
    """Record the backend's waits between retries instead of sleeping through them."""
    waits: list[float] = []
    monkeypatch.setattr(client, "wait_before_retry", waits.append)
    return waits
