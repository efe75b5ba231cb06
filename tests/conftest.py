import pytest

from django_sendfleet import client

pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]


@pytest.fixture
def sandbox(sendfleet_sandbox):
    return sendfleet_sandbox


@pytest.fixture
def sendfleet_settings(sendfleet_backend):
    """The plugin's fixture, with a short timeout so a broken test fails fast."""
    sendfleet_backend["TIMEOUT"] = 5
    return sendfleet_backend


@pytest.fixture
def retry_waits(monkeypatch):
    """Record the backend's waits between retries instead of sleeping through them."""
    waits: list[float] = []
    monkeypatch.setattr(client, "wait_before_retry", waits.append)
    return waits
