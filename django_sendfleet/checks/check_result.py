"""One line of ``manage.py sendfleet_check``'s report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass
class CheckResult:
    name: str
    level: str  # OK, WARNING or ERROR
    message: str
    fix: str = ""
    #: Facts for --json (message_id, prefix, counts...). Never the key.
    data: dict[str, Any] = field(default_factory=dict)
