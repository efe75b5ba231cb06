import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.support.examples import FULL_EXAMPLES
from tests.support.network import free_port

# The sandbox's fixtures, and the fixtures tests/support shares between test modules.
pytest_plugins = [
    "django_sendfleet.sandbox.pytest_plugin",
    "tests.support.check_command",
    "tests.support.fault_matrix",
    "tests.support.reputation",
]


def pytest_configure(config: pytest.Config) -> None:
    # Imported here, not at the top: worker processes import this module, and Hypothesis
    # takes about a second to import.
    from hypothesis import settings

    for name, max_examples in (("full", FULL_EXAMPLES), ("ci", FULL_EXAMPLES // 10)):
        settings.register_profile(name, max_examples=max_examples, deadline=timedelta(seconds=1))
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "full"))


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
