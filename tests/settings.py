"""Settings for the test suite: testproject's, with a database from DATABASE_URL."""

import os
import tempfile
from pathlib import Path

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES

SENDFLEET = {}  # each test points the backend at its own sandbox
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared in-memory database: live-server tests write from two
    # threads, and shared-cache table locks fail at once instead of waiting.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"sendfleet-tests-{os.getpid()}.sqlite3")
    }
