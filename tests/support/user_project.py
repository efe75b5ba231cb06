"""A user's Django project, written into pytester's directory, whose own test suites run in a
subprocess as a user's would (``tests/sandbox/test_user_projects.py``).

It is ``startproject``'s settings (SQLite in ``db.sqlite3``, so tests get the in-memory
database) with django-sendfleet's mailers, on the shop's own domain (``acme-shop.com``, errors
from ``ops.acme-shop.com``): on Django 6.1 "default" (with ``OPTIONS`` of its own, a key among
them: the case where a mailer's value would win over the test's), "admins" (Django's error
mail, ``fail_silently``, as docs/quickstart.md sets it), "newsletter" (queued and bulk, as
docs/reputation.md does) and "console"; before 6.1 ``EMAIL_BACKEND`` (``SHOP_EMAIL_BACKEND`` in
the environment may name the queued one) and ``SENDFLEET``. Its views are docs/testing.md's
receipt view and one that fails, for Django's error mail.
"""

from __future__ import annotations

from typing import Any

from tests.support.docs_snippets import block_containing

#: The key the project's settings read from the environment: a production key, which its
#: tests must never send (the sandbox records the part before the dot of every key it sees).
PRODUCTION_KEY = "liveprod.ProductionKeyTheTestsMustNeverUse0001"
WEBHOOK_SECRET = "shop-webhook-secret"
#: Settings, environment and command line for every run of the project's suite.
RUN_ARGS = ("--ds=shopsite.settings", "-p", "no:cacheprovider", "-p", "no:randomly")

SETTINGS = """\
import importlib.util
import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-insecure-a-users-project"
DEBUG = False
ALLOWED_HOSTS = []
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
ROOT_URLCONF = "shopsite.urls"
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
            ]
        },
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS += ["django_sendfleet", "shop"]
if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the django-tasks backport
    INSTALLED_APPS.append("django_tasks")
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

DEFAULT_FROM_EMAIL = "Shop <shop@acme-shop.com>"
SERVER_EMAIL = "errors@ops.acme-shop.com"

if django.VERSION >= (6, 1):
    ADMINS = ["ops@acme-shop.com"]
    MAILERS = {
        "default": {
            "BACKEND": "django_sendfleet.backends.EmailBackend",
            "OPTIONS": {"api_key": os.environ["SENDFLEET_API_KEY"], "timeout": 7},
        },
        "admins": {
            "BACKEND": "django_sendfleet.backends.EmailBackend",
            "OPTIONS": {"fail_silently": True},
        },
        "newsletter": {
            "BACKEND": "django_sendfleet.backends.QueuedEmailBackend",
            "OPTIONS": {"bulk": True},
        },
        "console": {"BACKEND": "django.core.mail.backends.console.EmailBackend"},
    }
    SENDFLEET = {"WEBHOOK_SECRET": os.environ["SENDFLEET_WEBHOOK_SECRET"]}
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
        "handlers": {
            "mail_admins": {
                "level": "ERROR",
                "filters": ["require_debug_false"],
                "class": "django.utils.log.AdminEmailHandler",
                "using": "admins",
            },
        },
        "loggers": {"django": {"handlers": ["mail_admins"], "level": "INFO"}},
    }
else:
    ADMINS = [("Ops", "ops@acme-shop.com")]
    EMAIL_BACKEND = os.environ.get(
        "SHOP_EMAIL_BACKEND", "django_sendfleet.backends.EmailBackend"
    )
    SENDFLEET = {
        "API_KEY": os.environ["SENDFLEET_API_KEY"],
        "TIMEOUT": 7,
        "WEBHOOK_SECRET": os.environ["SENDFLEET_WEBHOOK_SECRET"],
    }
"""

URLS = """\
from django.urls import include, path

from shop.views import fail, send_receipt

urlpatterns = [
    path("sendfleet/", include("django_sendfleet.urls")),
    path("receipt/", send_receipt, name="send-receipt"),
    path("fail/", fail, name="fail"),
]
"""

FAILING_VIEW = """

def fail(request):
    raise RuntimeError("The shop is on fire")
"""


def write_project(pytester: Any, monkeypatch: Any, ini: str = "", settings: str = "") -> None:
    """The project, its ``conftest.py`` (docs/testing.md's) and ``pytest.ini`` (with ``ini``
    lines), ``settings`` appended to its settings; and its environment."""
    monkeypatch.setenv("SENDFLEET_API_KEY", PRODUCTION_KEY)
    monkeypatch.setenv("SENDFLEET_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile(
        **{
            "shopsite/__init__": "",
            "shopsite/settings": SETTINGS + settings,
            "shopsite/urls": URLS,
            "shop/__init__": "",
            "shop/views": block_containing("docs/testing.md", "# shop/views.py") + FAILING_VIEW,
            "shop/tests/__init__": "",
            "conftest": block_containing("docs/testing.md", "# conftest.py"),
        }
    )
    pytester.makeini(f"[pytest]\npythonpath = .\n{ini}\n")


def run_suite(pytester: Any, *args: str) -> Any:
    """Run the project's tests in a subprocess, as its developer would."""
    return pytester.runpytest_subprocess(*RUN_ARGS, *args)
