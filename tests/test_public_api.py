"""Every import the docs show works, from a module that declares it public (docs/api.md).

The docs' ``from django_sendfleet... import ...`` lines and their backticked dotted paths
(``django_sendfleet.models.LogStatus``) are read from every page and the README. Each name must
be importable and listed in its module's ``__all__``: what ``mypy --strict``
(``no_implicit_reexport``) needs of a re-exported name, and what docs/api.md promises to keep.
``.ci/documented_imports.py`` writes the same imports out for ``mypy --strict``.
"""

from __future__ import annotations

import importlib

import pytest

from tests.support.docs_snippets import PUBLIC_MODULES, documented_imports


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
