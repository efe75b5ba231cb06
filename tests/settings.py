"""Settings for the test suite: testproject's, with a database from DATABASE_URL."""

from testproject.settings import *  # noqa: F403

SENDFLEET = {}  # each test points the backend at its own sandbox
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
