"""A small Django project that sends its email through django-sendfleet.

By default it talks to the bundled sandbox (``python -m django_sendfleet.sandbox``) on
127.0.0.1:8025 with the sandbox's key, so it runs with no SendFleet account.
"""

import os
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "testproject-insecure-key-for-local-use-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_sendfleet",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Persistent connections (the benches' servers set it): a connection per request
        # costs more than many a request's own work.
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Sends and webhook events write at the same time: let writers wait for each other
    # (IMMEDIATE) instead of failing with "database is locked", and readers not block (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    }

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django_sendfleet.backends.EmailBackend"}}
else:
    EMAIL_BACKEND = "django_sendfleet.backends.EmailBackend"
DEFAULT_FROM_EMAIL = "Example Shop <shop@example.com>"
SERVER_EMAIL = "errors@example.com"
# Django 6.1 takes plain addresses; earlier versions take (name, address) pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 1) else [("Ops", "ops@example.com")]

SENDFLEET = {
    # The sandbox's documented key; a real project reads its key from the environment.
    "API_KEY": os.environ.get("SENDFLEET_API_KEY", "sbxlive1.LiveSandboxKeyForLocalTesting001"),
    "API_URL": os.environ.get("SENDFLEET_API_URL", "http://127.0.0.1:8025/api/send/"),
    "LOG_CONTENT": os.environ.get("SENDFLEET_LOG_CONTENT") == "1",
    # Signs the webhook events the sandbox (or SendFleet) posts to /sendfleet/webhook/.
    # (This default is for local development only; a real project reads it from the environment.)
    "WEBHOOK_SECRET": os.environ.get("SENDFLEET_WEBHOOK_SECRET", "testproject-dev-webhook-secret"),
    # The reputation levels (docs/reputation.md): this project sends little, so judge its rates
    # from 8 sends in the week (the default waits for 100).
    "REPUTATION": {"MIN_SENDS": 8},
}
