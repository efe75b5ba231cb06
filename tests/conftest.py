import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.mail import EmailMessage
from django.urls import reverse

pytest_plugins = ["django_sendfleet.sandbox.pytest_plugin"]

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE. "full" (the default: the README's test
# command, and CI's Quick start run) runs every property test at its full count; "ci" (the
# other CI cells and the libfaketime runs) a tenth of it: a cell whose axis (Django, Python,
# database, clock) changes a property's result still tries it on fresh examples, and the full
# count runs once per CI run. Nothing is derandomized that was random. The deadline is 1 s, not
# 200 ms: a test's first example pays imports and the sandbox's start, and CI runs two lanes
# on 2 cores.
FULL_EXAMPLES = 100  # Hypothesis's default max_examples


def pytest_configure(config: pytest.Config) -> None:
    # Imported here, not at the top: worker processes import this module, and Hypothesis
    # takes about a second to import.
    from hypothesis import settings

    for name, max_examples in (("full", FULL_EXAMPLES), ("ci", FULL_EXAMPLES // 10)):
        settings.register_profile(name, max_examples=max_examples, deadline=timedelta(seconds=1))
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "full"))


def examples(full: int) -> int:
    """``max_examples`` for a property test that needs ``full`` examples under the full
    profile: scaled with the profile loaded, so a smaller profile runs fewer (never under 2)."""
    from hypothesis import settings

    return max(2, round(full * settings.default.max_examples / FULL_EXAMPLES))


# The test tag ``db``, in the style of anymail's tags, so that a PostgreSQL cell of CI can
# leave out a test whose result the database cannot change (the rule: .ci/noxfile.py). Set
# here on every test that uses the test database in its process: pytest-django's django_db
# mark, a database fixture, or a Django TestCase's ``databases`` (pytest-django refuses the
# database to any other test). Set by hand on a module whose tests read the database's
# settings without opening it. Registered in pyproject.toml.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        test_case = getattr(item, "cls", None)  # Django's TestCase: its databases attribute
        if (
            item.get_closest_marker("django_db")
            or fixtures & DATABASE_FIXTURES
            or getattr(test_case, "databases", None)
        ):
            item.add_marker(pytest.mark.db)


# Helpers the test modules share: ``from .conftest import SENDER, message``.
SENDER = "Shop <shop@example.com>"
BACKEND = "django_sendfleet.backends.EmailBackend"
QUEUED_BACKEND = "django_sendfleet.backends.QueuedEmailBackend"


def message(to=("ann@example.com",), sender=SENDER, subject="Hello", **kwargs) -> EmailMessage:
    """A plain message from the shop, to Ann unless told otherwise."""
    return EmailMessage(subject, "Plain body", sender, list(to), **kwargs)


def post_webhook(client, body: bytes, secret: str | None = None, **headers):
    """POST a body to the webhook endpoint through Django's test client, signed with
    ``secret`` when one is given (headers may carry a signature of their own)."""
    # Imported here: importing the view loads models, and worker processes spawned by tests
    # import this module before Django is set up.
    from django_sendfleet.webhooks.view import sign

    if secret is not None:
        headers.setdefault("HTTP_X_SENDFLEET_SIGNATURE", sign(body, secret))
    return client.post(
        reverse("sendfleet-webhook"), data=body, content_type="application/json", **headers
    )


@pytest.fixture
def sandbox(sendfleet_sandbox):
    return sendfleet_sandbox


@pytest.fixture
def sendfleet_settings(sendfleet_backend):
    """The plugin's fixture, with a short timeout so a broken test fails fast."""
    sendfleet_backend["TIMEOUT"] = 5
    return sendfleet_backend


@pytest.fixture
def retry_waits(sendfleet_retry_waits):
    """Record the backend's waits between retries instead of sleeping through them."""
    return sendfleet_retry_waits


def _redis_answers(url: str, timeout: float) -> bool:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            return bool(redis.Redis.from_url(url).ping())
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    pytest.importorskip("redis", reason="pip install redis to test the limiter on Redis")
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("No REDIS_URL and no redis-server to start")
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        command = [server, "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            if not _redis_answers(url, timeout=5):
                pytest.skip("redis-server did not start")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def _forget_api_key_refusals():
    """A 401 pauses its key for minutes, in this process and the cache: not past one test."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from django_sendfleet.ratelimit import key_guard
    from django_sendfleet.reputation import state as reputation_state

    yield
    key_guard._refused_here.clear()
    reputation_state.forget()  # this process's reputation figures: not past one test
    for alias in caches:
        if isinstance(caches[alias], LocMemCache):
            caches[alias].clear()
