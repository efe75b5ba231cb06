import os
import shutil
import socket
import subprocess
import time

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


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory):
    """A real Redis: $REDIS_URL when set (CI starts one), else a redis-server started here."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("no Redis: set REDIS_URL or install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
