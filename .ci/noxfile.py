"""The Django/Python/database matrix, run by .ci/run: ``nox -f .ci/noxfile.py``.

PostgreSQL sessions need ``POSTGRES_URL`` (``.ci/services.sh`` starts a server and sets it).
"""

import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

# (Python, Django, database): every supported Django on SQLite; the oldest and newest on
# PostgreSQL too. Django 6.1 on SQLite with Python 3.13 is not here: .ci/run runs the README's
# Quick start test command first, which is exactly that (the newest Django on python3).
MATRIX = [
    ("3.11", "5.2", "sqlite"),
    ("3.12", "6.0", "sqlite"),
    ("3.11", "5.2", "postgres"),
    ("3.13", "6.1", "postgres"),
]


@nox.session
@nox.parametrize(
    ("python", "django", "database"), MATRIX, ids=[f"django{d}-{db}" for _, d, db in MATRIX]
)
def tests(session: nox.Session, django: str, database: str) -> None:
    session.chdir(ROOT)
    # Worker processes run where PostgreSQL is the database: there, the RQ and Celery engines too.
    extras = "test,postgres,engines" if database == "postgres" else "test"
    session.install("-q", "-e", f".[{extras}]", f"django~={django}.0")
    env = {}
    if database == "postgres":
        env["DATABASE_URL"] = os.environ["POSTGRES_URL"]
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    session.run("pytest", "-q", *session.posargs, env=env)


@nox.session(python="3.13")
def limiter_redis5(session: nox.Session) -> None:
    """The rate limiter's tests (a frozen Redis included) on the oldest redis-py we allow
    (``redis>=5``); the matrix runs them on the newest."""
    session.chdir(ROOT)
    session.install("-q", "-e", ".[test]", "redis==5.0.*")
    session.run("python", "-c", "import redis; print('redis-py', redis.__version__)")
    session.run("pytest", "-q", "tests/test_ratelimit.py", *session.posargs)


# Django's own email-backend tests (tests/mail/ of the installed Django's sdist, downloaded from
# PyPI by the test module and cached) against our backend: docs/django-mail-tests.md.
DJANGO_MAIL = [("3.11", "5.2"), ("3.13", "6.1")]


@nox.session
@nox.parametrize(("python", "django"), DJANGO_MAIL, ids=[f"django{d}" for _, d in DJANGO_MAIL])
def django_mail(session: nox.Session, django: str) -> None:
    session.chdir(ROOT)
    session.install("-q", "-e", ".[test]", f"django~={django}.0")
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    session.run(
        "pytest", "-q", "tests/django_mail", *session.posargs, env={"DJANGO_MAIL_TESTS": "1"}
    )
