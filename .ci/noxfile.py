"""The Django/Python/database matrix, run by .ci/run: ``nox -f .ci/noxfile.py``.

PostgreSQL sessions need ``POSTGRES_URL`` (``.ci/services.sh`` starts a server and sets it).
Virtualenvs are made and filled by uv when it is installed (``pip install uv``; ``.ci/run``
does).

Which tests a cell runs, and on which clock. A cell leaves out a test only where the test's
result cannot change on the axis that cell adds; no test leaves every cell of an axis it
depends on (Django 5.2, 6.0, 6.1; Python 3.11, 3.12, 3.13; SQLite, PostgreSQL; the real clock
and libfaketime's two):

- The README's test command (``.ci/run``'s Quick start: Django 6.1, Python 3.13, SQLite) runs
  every test on the real clock, Hypothesis at its full counts (profile ``full``).
- ``tests(django5.2-sqlite-ahead)`` and ``tests(django6.0-sqlite-midnight)`` run every test:
  they are the only cells of Django 5.2 with Python 3.11 on SQLite, and of Django 6.0 and
  Python 3.12. They run under libfaketime (.ci/faketime.sh), each on one of the two clocks
  issue 19 asks for: from noon 400 days ahead (every fixed date a test compares with now is
  past), and from 00:30 UTC today ("an hour ago" is yesterday). So every test that reads the
  clock runs on the real clock and on both faked ones, each on a different Django, without
  two more runs of the whole suite.
- The PostgreSQL cells add one axis, the database, to a cell that runs everything
  (``django5.2-postgres`` to ``django5.2-sqlite-ahead``, ``django6.1-postgres`` to the Quick
  start), so they run the tests tagged ``db`` (``-m db``), on the real clock: the tests that
  use the test database (tests/conftest.py tags them from pytest-django's mark and fixtures:
  pytest-django refuses the database to every other test), and by hand the modules whose
  tests read the database's settings without opening it (the system checks: the SQLite check
  looks at the engine). A test that starts processes without ``db`` gives them a database of
  its own (SQLite, in the project it builds) or none: PostgreSQL cannot change its result.
- Cells other than the Quick start run Hypothesis with the ``ci`` profile (a tenth of the
  examples, fresh ones each run; tests/conftest.py), set by ``.ci/run``.
"""

import os
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
# uv: a cell's virtualenv in seconds instead of pip's minute (the README's Quick start keeps
# pip); without uv on PATH, venv and pip.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True

# (Python, Django, database, clock): every supported Django on SQLite; the oldest and newest on
# PostgreSQL too. Django 6.1 on SQLite with Python 3.13 is not here: .ci/run runs the README's
# Quick start test command first, which is exactly that (the newest Django on python3). The
# clock: "real", or one of .ci/faketime.sh's FAKETIME_CLOCKs.
MATRIX = [
    ("3.11", "5.2", "sqlite", "ahead"),
    ("3.12", "6.0", "sqlite", "midnight"),
    ("3.11", "5.2", "postgres", "real"),
    ("3.13", "6.1", "postgres", "real"),
]


def _cell_id(django: str, database: str, clock: str) -> str:
    return f"django{django}-{database}" + ("" if clock == "real" else f"-{clock}")


def _timed(session: nox.Session, *args: str, **kwargs) -> None:
    started = time.monotonic()
    session.run(*args, **kwargs)
    session.log(f"{' '.join(args[:2])}: {time.monotonic() - started:.0f} s")


@nox.session
@nox.parametrize(
    ("python", "django", "database", "clock"),
    MATRIX,
    ids=[_cell_id(django, database, clock) for _, django, database, clock in MATRIX],
)
def tests(session: nox.Session, django: str, database: str, clock: str) -> None:
    session.chdir(ROOT)
    # Worker processes run where PostgreSQL is the database: there, the RQ and Celery engines too.
    extras = "test,postgres,engines" if database == "postgres" else "test"
    session.install("-q", "-e", f".[{extras}]", f"django~={django}.0")
    env = {}
    selection: list[str] = []
    if database == "postgres":
        env["DATABASE_URL"] = os.environ["POSTGRES_URL"]
        selection = ["-m", "db"]  # the rule: this module's docstring
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    if clock == "real":
        pytest = ["pytest", "-q", "-p", "no:cacheprovider", *selection]
        _timed(session, *pytest, *session.posargs, env=env)
        return
    # Every test (the argument replaces faketime.sh's own selection), in this cell's virtualenv.
    env |= {"FAKETIME_VENV": session.virtualenv.location, "FAKETIME_CLOCK": clock}
    faketime = ["bash", str(ROOT / ".ci" / "faketime.sh")]
    _timed(session, *faketime, *selection, *(session.posargs or ["tests"]), env=env, external=True)


@nox.session(python="3.13")
def limiter_redis5(session: nox.Session) -> None:
    """The rate limiter's tests (a frozen Redis included) on the oldest redis-py we allow
    (``redis>=5``); the matrix runs them on the newest."""
    session.chdir(ROOT)
    session.install("-q", "-e", ".[test]", "redis==5.0.*")
    session.run("python", "-c", "import redis; print('redis-py', redis.__version__)")
    _timed(
        session,
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/ratelimit/test_ratelimit.py",
        *session.posargs,
    )


# Django's own email-backend tests (tests/mail/ of the installed Django's sdist, downloaded from
# PyPI by the test module and cached) against our backend: docs/django-mail-tests.md.
DJANGO_MAIL = [("3.11", "5.2"), ("3.13", "6.1")]


@nox.session
@nox.parametrize(("python", "django"), DJANGO_MAIL, ids=[f"django{d}" for _, d in DJANGO_MAIL])
def django_mail(session: nox.Session, django: str) -> None:
    session.chdir(ROOT)
    session.install("-q", "-e", ".[test]", f"django~={django}.0")
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    _timed(
        session,
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/django_mail",
        *session.posargs,
        env={"DJANGO_MAIL_TESTS": "1"},
    )
