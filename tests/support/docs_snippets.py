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
