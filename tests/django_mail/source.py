"""Django's ``tests/mail/`` for the installed Django, taken from its released sdist on PyPI.

Nothing of Django's is copied into this repository: the sdist is downloaded with pip (once per
Django version, into a cache directory), its ``tests/mail/`` and ``LICENSE`` (BSD) are extracted
next to it, and the package is imported under the name ``django_mail_tests``, unmodified.

``DJANGO_MAIL_TESTS=1`` asks for them (downloading if needed); ``DJANGO_MAIL_TESTS_CACHE``
chooses the cache directory (default: ``$XDG_CACHE_HOME/django-sendfleet``, else
``~/.cache/django-sendfleet``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

import django

PACKAGE = "django_mail_tests"
ENABLE_VARIABLE = "DJANGO_MAIL_TESTS"
CACHE_VARIABLE = "DJANGO_MAIL_TESTS_CACHE"


def requested() -> bool:
    return os.environ.get(ENABLE_VARIABLE, "").strip() not in ("", "0")


def cache_dir() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "django-sendfleet"


def mail_tests_dir(version: str | None = None) -> Path:
    """``tests/mail`` of Django ``version`` (the installed one by default), fetched if needed."""
    version = version or django.get_version()
    root = cache_dir() / f"django-{version}"
    mail_dir = root / "tests" / "mail"
    if not (mail_dir / "tests.py").is_file():
        _fetch(version, root)
    return mail_dir


def _fetch(version: str, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as download:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download]
        subprocess.run([*pip, "--no-binary", ":all:", f"django=={version}"], check=True)
        [sdist] = Path(download).glob("*.tar.gz")
        prefix = sdist.name.removesuffix(".tar.gz") + "/"
        with tarfile.open(sdist) as archive:
            wanted = [
                member
                for member in archive.getmembers()
                if member.name == prefix + "LICENSE"
                or member.name.startswith(prefix + "tests/mail/")
            ]
            if not any(m.name == prefix + "tests/mail/tests.py" for m in wanted):
                raise RuntimeError(f"{sdist.name} has no tests/mail/tests.py")
            unpacked = Path(download) / "unpacked"
            archive.extractall(unpacked, members=wanted, filter="data")
        # Renamed into place whole: an interrupted fetch leaves nothing half-extracted behind.
        (unpacked / prefix).rename(root)


def load(mail_dir: Path) -> ModuleType:
    """Import ``mail_dir`` as the package ``django_mail_tests`` (its relative imports work)."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    spec = importlib.util.spec_from_file_location(
        PACKAGE, mail_dir / "__init__.py", submodule_search_locations=[str(mail_dir)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return package


def module(name: str) -> ModuleType:
    """A module of the loaded package: ``tests``, or ``test_backends`` (Django 6.0+)."""
    return importlib.import_module(f"{PACKAGE}.{name}")
