"""Every import the docs show works, from a module that declares it public (docs/api.md).

The docs' ``from django_sendfleet... import ...`` lines and their backticked dotted paths
(``django_sendfleet.models.LogStatus``) are read from every page and the README. Each name must
be importable and listed in its module's ``__all__``: what ``mypy --strict``
(``no_implicit_reexport``) needs of a re-exported name, and what docs/api.md promises to keep.
``.ci/documented_imports.py`` writes the same imports out for ``mypy --strict``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

#: The modules docs/api.md declares public: every documented import comes from one of these.
PUBLIC_MODULES = {
    "django_sendfleet.backends",
    "django_sendfleet.signals",
    "django_sendfleet.exceptions",
    "django_sendfleet.models",
    "django_sendfleet.urls",
    "django_sendfleet.conf",
    "django_sendfleet.tracking",
    "django_sendfleet.outcome",
    "django_sendfleet.tasks",
    "django_sendfleet.ratelimit",
    "django_sendfleet.reputation",
    "django_sendfleet.error_table",
    "django_sendfleet.error_spec",
    "django_sendfleet.reporting",
    "django_sendfleet.sandbox",
    "django_sendfleet.sandbox.testing",
    "django_sendfleet.sandbox.pytest_plugin",
}

_FROM_IMPORT = re.compile(
    r"^\s*from (django_sendfleet(?:\.\w+)*) import (\([^)]*\)|[^\n#]+)", re.MULTILINE
)
_DOTTED = re.compile(r"`(django_sendfleet(?:\.\w+)+)(?:\(\))?`")
#: ``django_sendfleet.add_forgottenaddress``: a permission, not an import.
_PERMISSION = re.compile(r"django_sendfleet\.(add|change|delete|view)_\w+")
#: Docs pages that describe the package's insides, where internal paths are the point.
INTERNAL_PAGES = {"internals.md", "benchmarks.md"}


def documented_imports() -> set[tuple[str, str]]:
    """(module, name) for every import and every backticked dotted path the docs show."""
    found: set[tuple[str, str]] = set()
    for page in PAGES:
        if page.name in INTERNAL_PAGES:
            continue
        # api.md's table of old paths names the paths that are gone, on purpose.
        text = page.read_text().split("\n## Moved in this release")[0]
        for module, names in _FROM_IMPORT.findall(text):
            for name in names.strip("()").replace("\n", " ").split(","):
                name = name.split(" as ")[0].strip()
                if name:
                    found.add((module, name))
        for dotted in _DOTTED.findall(text):
            if _PERMISSION.fullmatch(dotted):
                continue
            module, _, name = dotted.rpartition(".")
            if dotted in PUBLIC_MODULES or not module:
                found.add((dotted, ""))
            else:
                found.add((module, name))
    return found


def _is_module(path: str) -> bool:
    try:
        importlib.import_module(path)
    except ImportError:
        return False
    return True


def test_the_docs_show_imports_at_all():
    imports = documented_imports()
    assert ("django_sendfleet.models", "SendLog") in imports
    assert ("django_sendfleet.models", "LogStatus") in imports
    assert len(imports) > 40


@pytest.mark.parametrize("module, name", sorted(documented_imports()))
def test_every_documented_import_is_public(module, name):
    if not name or _is_module(f"{module}.{name}"):
        # A module itself (``from django_sendfleet import signals``): it must be public.
        assert (f"{module}.{name}" if name else module) in PUBLIC_MODULES
        return
    assert module in PUBLIC_MODULES, f"{module} is not a public module (docs/api.md)"
    imported = importlib.import_module(module)
    if module == "django_sendfleet.sandbox.pytest_plugin":
        assert hasattr(imported, name), name  # fixtures: registered by the plugin
        return
    attribute = name.partition(".")[0]
    assert attribute in imported.__all__, f"{module}.{attribute} is not in its __all__"
    assert hasattr(imported, attribute)


def test_every_public_module_declares_its_names():
    for module in PUBLIC_MODULES - {"django_sendfleet.sandbox.pytest_plugin"}:
        imported = importlib.import_module(module)
        assert imported.__all__, module
        missing = [name for name in imported.__all__ if not hasattr(imported, name)]
        assert missing == [], module


def test_an_internal_path_in_the_docs_would_be_caught():
    assert "django_sendfleet.models.log_status" not in PUBLIC_MODULES
    assert "django_sendfleet.ratelimit.shared_cache" not in PUBLIC_MODULES
