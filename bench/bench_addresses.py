"""Cost of checking hostile, long address values against a normal address (issue 10).

Each value goes through ``parse_address`` without its cache, as a first sight of the value
would. Values are timed (CPU time of the process) in interleaved rounds in one process, so
machine noise hits all alike; the figure is each value's median time per check and its ratio to
the median for a normal ``Name <addr>`` value.

With ``--before REV``, the parser of ``django_sendfleet/message.py`` at that git revision (the
code before issue 10: ``ef9a075``) is timed too on the values of at most
``--before-max-length`` characters: in the same rounds when a check is cheap, else by three
single checks after the rounds.

    python bench/bench_addresses.py [--rounds 15] [--repeat 20] [--before ef9a075]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

BASELINE = "Ann Example <ann@example.com>"
VALUES = {
    "normal: Ann Example <ann@example.com> (baseline)": BASELINE,
    'normal, quoted: "Example, Ann" <ann@example.com>': '"Example, Ann" <ann@example.com>',
    'spaces + "<", 1,000 chars': " " * 1000 + "<",
    'spaces + "<", 3,000 chars (22 s before)': " " * 3000 + "<",
    'spaces + "<", 100,000 chars': " " * 100_000 + "<",
    '"Ann" + 40,000 spaces + <addr> (quadratic before)': "Ann" + " " * 40_000 + "<ann@example.com>",
    "100,000-char local part": "a" * 100_000 + "@example.com",
    # Within the bounds (998 characters, 64 parts) the email package's parser runs: the worst
    # cases a random search found, and the quote run that cost 0.1 s before the part bound.
    "998 double quotes (refused: too many parts)": '"' * 998,
    'comments "(." x 32 + atom, 998 chars (parsed)': "(." * 32 + "b" * 934,
    'encoded words "=?utf-8?q?a?=." x 32 (parsed)': "=?utf-8?q?a?=." * 32,
    "double quotes x 64 + atom, 998 chars (parsed)": '"' * 64 + "b" * 934,
    'spaces + "<", 998 chars (parsed)': " " * 997 + "<",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=20, help="checks per value per round")
    parser.add_argument("--before", metavar="REV", help="also time message.py at this revision")
    parser.add_argument("--before-max-length", type=int, default=1001)
    args = parser.parse_args()

    import django

    django.setup()
    from django_sendfleet.exceptions import SendFleetInvalidMessage
    from django_sendfleet.message import addresses

    ours = addresses._parse_text.__wrapped__  # uncached: every check parses
    names = list(VALUES)
    # (name, parser) pairs timed in the rounds; the old parser only where a check is cheap.
    contenders = [(name, "ours") for name in names]
    before_parser = _old_parser(args.before) if args.before else None
    slow_before: list[str] = []
    if before_parser is not None:
        for name in names:
            if len(VALUES[name]) > args.before_max_length:
                continue
            if _timed(before_parser, VALUES[name], 1, SendFleetInvalidMessage) < 0.01:
                contenders.append((name, "before"))
            else:
                slow_before.append(name)
    parsers = {"ours": ours, "before": before_parser}

    times: dict[tuple[str, str], list[float]] = {contender: [] for contender in contenders}
    for round_number in range(args.rounds):
        order = contenders if round_number % 2 == 0 else contenders[::-1]
        for name, which in order:
            checks = _timed(parsers[which], VALUES[name], args.repeat, SendFleetInvalidMessage)
            times[name, which].append(checks)
    for name in slow_before:  # seconds a check: three single checks
        times[name, "before"] = [
            _timed(before_parser, VALUES[name], 1, SendFleetInvalidMessage) for _ in range(3)
        ]

    baseline = statistics.median(times[names[0], "ours"])
    print(f"Python {sys.version.split()[0]}, Django {django.get_version()}, {args.rounds} rounds")
    print("| value | length | median per check (us) | ratio to a normal address | before (us) |")
    print("|---|---|---|---|---|")
    for name in names:
        median = statistics.median(times[name, "ours"])
        before = times.get((name, "before"))
        old = f"{statistics.median(before) * 1e6:,.1f}" if before else ""
        print(
            f"| {name} | {len(VALUES[name]):,} | {median * 1e6:.1f} | {median / baseline:.2f} "
            f"| {old} |"
        )
    return 0


def _timed(check, text: str, repeat: int, refused: type[Exception]) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds per check of ``text``."""
    started = time.process_time()
    for _ in range(repeat):
        with contextlib.suppress(refused):
            check(text, "to")
    return (time.process_time() - started) / repeat


def _old_parser(revision: str):  # type: ignore[no-untyped-def]
    """The uncached address parser of message.py at ``revision``, loaded into the package."""
    source = subprocess.run(
        ["git", "show", f"{revision}:django_sendfleet/message.py"],
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "message_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("django_sendfleet._message_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module._parse_address_text.__wrapped__


if __name__ == "__main__":
    sys.exit(main())
