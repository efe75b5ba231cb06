"""Stored events are applied through one entry, ``webhooks.apply.apply``: every caller (the
drain after the answer, a retry, events waiting for their row) passes only its claim."""

from __future__ import annotations

import ast
from pathlib import Path

import django_sendfleet

WEBHOOKS = Path(django_sendfleet.__file__).parent / "webhooks"


def test_only_the_one_entry_reads_and_writes_a_batch_of_events():
    callers = {}
    for path in WEBHOOKS.glob("*.py"):
        if path.name == "apply.py":
            continue
        tree = ast.parse(path.read_text())
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        found = (used | imported) & {"read_batch", "write_batch", "apply_events"}
        if found:
            callers[path.name] = sorted(found)
    assert callers == {}
