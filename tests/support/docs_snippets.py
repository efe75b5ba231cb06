"""The code blocks of the docs, so tests can run what a reader would copy."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def python_blocks(document: str, section: str | None = None) -> list[str]:
    """The ```python blocks of ``document`` (a path from the repository root), dedented; only
    those under the ``## section`` heading when given."""
    text = (ROOT / document).read_text()
    if section is not None:
        start = text.index(f"\n## {section}\n")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else None]
    blocks = []
    for indent, body in _FENCE.findall(text):
        lines = body.splitlines()
        blocks.append("\n".join(line[len(indent) :] for line in lines) + "\n")
    return blocks


def block_containing(document: str, needle: str, section: str | None = None) -> str:
    [block] = [b for b in python_blocks(document, section) if needle in b]
    return block


def command_blocks(document: str, section: str | None = None) -> list[str]:
    """The plain ``` blocks (commands, sessions) under ``## section``, lines joined where they
    end in a backslash."""
    text = (ROOT / document).read_text()
    if section is not None:
        start = text.index(f"\n## {section}\n")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else None]
    blocks = re.findall(r"^```\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [block.replace("\\\n", " ") for block in blocks]


def shell_session(block: str) -> tuple[list[str], list[str]]:
    """A ``>>>`` session: the lines typed, and the lines printed after them."""
    typed, printed = [], []
    for line in block.splitlines():
        if line.startswith(">>> "):
            typed.append(line[4:])
        elif typed:
            printed.append(line)
    return typed, printed


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
