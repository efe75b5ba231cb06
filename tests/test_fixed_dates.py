"""No test builds a time from a fixed date that the code may compare with now.

A literal date passes when it is written and fails once the calendar overtakes it (an event
signed on 2026-11-28 became older than WEBHOOK_MAX_AGE on 2026-12-05, and the suite went red).
Tests build times from ``timezone.now()``. A literal that is never compared with the real now
(a frozen sandbox clock, a pure function given the time) is allowed by a comment on its line
or the line above: ``# fixed date: <why it is not compared with now>``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = sorted(
    path
    for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "testproject").glob("*.py")]
    if path != Path(__file__).resolve()  # its examples are dates on purpose
)
ALLOW = "# fixed date:"

_YEAR = r"(?:19|20)\d\d"
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DATE_IN_TEXT = re.compile(
    rf"(?<!\d){_YEAR}-[01]\d-[0-3]\d(?!\d)"  # ISO 8601: 2026-11-28, 2026-11-28T10:00:00Z
    rf"|(?<!\d){_YEAR}[01]\d[0-3]\dT\d"  # ISO 8601 basic: 20261128T100000Z
    rf"|\b\d\d? (?:{_MONTHS}) {_YEAR}\b"  # RFC 5322 / HTTP dates: 21 Oct 2015
)
MONTH = re.compile(rf"{_YEAR}-[01]\d")  # a whole string that is a month: "2027-03"
# Seconds since the epoch from 2017-07 to 2039-09: a timestamp written as a number.
EPOCH_SECONDS = range(1_500_000_000, 2_200_000_000)
DATE_TYPES = {"datetime", "date"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _is_fixed_date(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and _called_name(node) in DATE_TYPES and node.args:
        year = node.args[0]  # datetime(2026, 11, 28), datetime.date(2026, 11, 27)
        return isinstance(year, ast.Constant) and isinstance(year.value, int)
    if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
        return False
    if isinstance(node.value, str):
        return bool(DATE_IN_TEXT.search(node.value) or MONTH.fullmatch(node.value))
    if isinstance(node.value, int | float):
        return int(node.value) in EPOCH_SECONDS
    return False


def fixed_dates(source: str) -> list[int]:
    """The lines of ``source`` holding a fixed date without an allowing comment."""
    lines = source.splitlines()

    def allowed(node: ast.AST) -> bool:
        first = max(node.lineno - 2, 0)  # the line above, for a comment that would not fit
        return any(ALLOW in line for line in lines[first : node.end_lineno])

    tree = ast.parse(source)
    prose = {  # docstrings, and any other string that is a statement on its own
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = {
        node.lineno
        for node in ast.walk(tree)
        if id(node) not in prose and _is_fixed_date(node) and not allowed(node)
    }
    return sorted(found)


def test_no_test_compares_a_fixed_date_with_now():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in SCANNED
        for line in fixed_dates(path.read_text(encoding="utf-8"))
    ]
    assert not found, (
        "Build these times from timezone.now() (a fixed date fails once the calendar "
        f"passes it), or say why it is never compared with now: '{ALLOW} ...'\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "line",
    [
        'event(timestamp="2026-11-28T10:00:00Z")',  # the test that broke on 2026-12-05
        "created_at = datetime.datetime(2026, 11, 28, 3, 0, tzinfo=datetime.UTC)",
        "day = date(2026, 11, 27)",
        'account.used_month = "2027-03"',
        'parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")',
        'stamp = "20261128T100000Z"',
        "event(timestamp=1764324000)",
        'f"2026-11-28T{hour:02}:00:00Z"',
    ],
)
def test_the_scan_finds_a_fixed_date(line):
    assert fixed_dates(line) == [1]


@pytest.mark.parametrize(
    "source",
    [
        "signed = timezone.now() - timedelta(hours=1)",
        "first = datetime(now.year + 1, 1, 1, tzinfo=UTC)",
        "at = datetime(2027, 3, 15, tzinfo=UTC)  # fixed date: the sandbox's frozen clock",
        "# fixed date: a frozen clock\nat = datetime(2027, 3, 15, tzinfo=UTC)",
        "# A comment may say 2026-12-05.\nwait = 1e9",
        'version = "1.2.3"',
        '"""Since 2026-12-05 (a docstring)."""',
    ],
)
def test_the_scan_passes_times_built_from_now_and_allowed_dates(source):
    assert fixed_dates(source) == []
