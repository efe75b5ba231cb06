"""The Django/Python matrix, run by .ci/run: ``nox -f .ci/noxfile.py``."""

from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

# (Python, Django): each supported Django on the oldest Python it is tested with.
MATRIX = [("3.11", "5.2"), ("3.12", "6.0"), ("3.13", "6.1")]


@nox.session
@nox.parametrize(("python", "django"), MATRIX, ids=[f"django{d}" for _, d in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    session.chdir(ROOT)
    session.install("-q", "-e", ".[test]", f"django~={django}.0")
    session.run("python", "-c", "import django; print('Django', django.get_version())")
    session.run("pytest", "-q", *session.posargs)


@nox.session(python="3.13")
def lint(session: nox.Session) -> None:
    session.chdir(ROOT)
    session.install("-q", "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
