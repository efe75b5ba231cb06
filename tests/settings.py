"""Settings for the test suite: testproject's, with a database from DATABASE_URL."""

import importlib.util
import os
import tempfile
from pathlib import Path

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES

SENDFLEET = {}  # each test points the backend at its own sandbox
DEBUG = False  # worker processes: no autoreloader
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared in-memory database: live-server tests write from two
    # threads, and shared-cache table locks fail at once instead of waiting.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"sendfleet-tests-{os.getpid()}.sqlite3")
    }
elif os.environ.get("SENDFLEET_TEST_DB_NAME"):
    # Two test runs at once on one PostgreSQL server (.ci/run's lanes): a test database each.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["SENDFLEET_TEST_DB_NAME"]}

# A second database, "mail", for the tests of a project whose DATABASE_ROUTERS put this app's
# models there (tests/conf/test_routed_database.py turns the router on). Its test database is made
# only for the tests that ask for it.
DATABASES["mail"] = {**DATABASES["default"]}
if DATABASES["mail"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["mail"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"sendfleet-tests-mail-{os.getpid()}.sqlite3")
    }
else:
    default_test_name = DATABASES["default"].get("TEST", {}).get("NAME")
    base = default_test_name or f"test_{DATABASES['default']['NAME']}"
    DATABASES["mail"]["TEST"] = {"NAME": f"{base}_mail"}

# Queued sending: Django 6.0+ ships django.tasks; Django 5.2 uses the django-tasks backport.
# django-tasks-db (real worker processes) is used by the worker tests when installed.
INSTALLED_APPS = list(INSTALLED_APPS)  # noqa: F405
if importlib.util.find_spec("django.tasks") is None and importlib.util.find_spec("django_tasks"):
    INSTALLED_APPS.append("django_tasks")
if importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
TASKS = {"default": {"BACKEND": os.environ.get("SENDFLEET_TEST_TASK_BACKEND", "")}}
if not TASKS["default"]["BACKEND"]:
    TASKS["default"]["BACKEND"] = (
        "django.tasks.backends.immediate.ImmediateBackend"
        if importlib.util.find_spec("django.tasks")
        else "django_tasks.backends.immediate.ImmediateBackend"
    )

# Worker processes started by tests/queued/test_workers.py get their configuration from the
# environment: the sandbox to send to, the shared cache, the lease.
if os.environ.get("SENDFLEET_TEST_API_URL"):
    SENDFLEET = {
        "API_URL": os.environ["SENDFLEET_TEST_API_URL"],
        "API_KEY": os.environ["SENDFLEET_TEST_API_KEY"],
        "LEASE_SECONDS": int(os.environ.get("SENDFLEET_TEST_LEASE_SECONDS", "300")),
        "RATE_LIMIT": os.environ.get("SENDFLEET_TEST_RATE_LIMIT", "60/min"),
        "MAX_RETRY_WAIT": float(os.environ.get("SENDFLEET_TEST_MAX_RETRY_WAIT", "30")),
        "TIMEOUT": float(os.environ.get("SENDFLEET_TEST_TIMEOUT", "10")),
        "WEBHOOK_SECRET": "worker-tests-webhook-secret",  # testproject routes the webhook
        # Processes that send without a test database (tests/ratelimit/test_key_guard.py).
        "SEND_LOG": os.environ.get("SENDFLEET_TEST_SEND_LOG", "1") == "1",
        "CHECK_SUPPRESSIONS": os.environ.get("SENDFLEET_TEST_SEND_LOG", "1") == "1",
    }
if os.environ.get("SENDFLEET_TEST_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["SENDFLEET_TEST_REDIS_URL"],
        }
    }

# The task engines of tests/queued/test_engines.py and bench/bench_engines.py, for their worker
# processes: the task backend names the engine, SENDFLEET_TEST_BROKER_URL is its Redis. Set
# as docs/queued.md documents them.
broker_url = os.environ.get("SENDFLEET_TEST_BROKER_URL", "")
if TASKS["default"]["BACKEND"] == "django_tasks_rq.RQBackend":
    INSTALLED_APPS.append("django_rq")
    TASKS["default"]["QUEUES"] = ["default"]
    # RQ stops a job after DEFAULT_TIMEOUT (180 s unless set), even mid-send; a task sends up
    # to 100 rows of its own and as many more urgent ones, each within LEASE_SECONDS.
    RQ_QUEUES = {"default": {"URL": broker_url, "DEFAULT_TIMEOUT": 200 * 300}}
elif TASKS["default"]["BACKEND"] == "django_tasks_fennel.CeleryBackend":
    INSTALLED_APPS.append("django_tasks_fennel")
    CELERY_BROKER_URL = broker_url

# tests/webhooks/test_webhook_server.py runs a webhook server, on SQLite with Django's default
# options (no IMMEDIATE transactions, no WAL, the default timeout): what a project gets without
# docs.
if os.environ.get("SENDFLEET_TEST_WEBHOOK_SECRET"):
    SENDFLEET = {"WEBHOOK_SECRET": os.environ["SENDFLEET_TEST_WEBHOOK_SECRET"]}
if os.environ.get("SENDFLEET_TEST_SQLITE_DEFAULT_OPTIONS"):
    DATABASES["default"].pop("OPTIONS", None)
