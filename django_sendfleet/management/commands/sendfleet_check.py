"""Will email through SendFleet work? One line per check, with the fix for every problem.

Exit status: 0 when nothing is wrong (warnings allowed), 1 when a check failed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sendfleet.checks.api_probe import check_send_test
from django_sendfleet.checks.check_result import ERROR, OK, WARNING, CheckResult
from django_sendfleet.checks.config_review import Mailer, sendfleet_mailers
from django_sendfleet.checks.diagnostics import MAILER_CHECKS, PROJECT_CHECKS
from django_sendfleet.conf import SendFleetSettings
from django_sendfleet.conf.mailers import configured_mailers
from django_sendfleet.credentials.redaction import redact
from django_sendfleet.credentials.secret import Secret
from django_sendfleet.exceptions import SendFleetConfigurationError

NO_MAILER_FIX = (
    "Django 6.1: add a MAILERS entry with 'BACKEND': 'django_sendfleet.backends.EmailBackend' "
    "(a second alias, checked with --mailer, while another backend stays the default). Before "
    "6.1: EMAIL_BACKEND = 'django_sendfleet.backends.EmailBackend'."
)


@dataclass
class Section:
    title: str
    mailer: str | None
    results: list[CheckResult]


class Command(BaseCommand):
    help = (
        "Check that email through SendFleet works: settings, the API key against the API "
        "(nothing is sent), the database and webhooks; --send-test sends one real message."
    )
    # The same problems the system checks find are reported here, with their fixes, instead of
    # stopping the command before it starts.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mailer",
            dest="aliases",
            action="append",
            metavar="ALIAS",
            help="check this mailer (repeatable); default: every SendFleet mailer",
        )
        parser.add_argument(
            "--send-test", metavar="ADDRESS", help="send one real message to ADDRESS"
        )
        parser.add_argument(
            "--from",
            dest="from_email",
            metavar="ADDRESS",
            help="sender of the test message (default: DEFAULT_FROM_EMAIL)",
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print JSON for machines"
        )

    def handle(
        self,
        *args: Any,
        aliases: list[str] | None,
        send_test: str | None,
        from_email: str | None,
        as_json: bool,
        **options: Any,
    ) -> None:
        if from_email and not send_test:
            raise CommandError("--from goes with --send-test.")
        mailers = self.select(aliases)
        sections = [self.check_mailer(m, send_test, from_email, m is mailers[0]) for m in mailers]
        if not mailers:
            sections.append(Section("mailers", None, [no_mailer_result()]))
        sections.append(Section("project", None, run([check() for check in PROJECT_CHECKS])))
        counts = {level: 0 for level in (OK, WARNING, ERROR)}
        for section in sections:
            for result in section.results:
                counts[result.level] += 1
        output = self.as_json(sections, counts) if as_json else self.as_text(sections, counts)
        self.stdout.write(redact(output, key_secrets(mailers)))
        if counts[ERROR]:
            raise CommandError(f"SendFleet check: {counts[ERROR]} error(s).", returncode=1)

    def select(self, aliases: list[str] | None) -> list[Mailer]:
        """The mailers to check, the one for --send-test first."""
        ours = {m.alias: m for m in sendfleet_mailers()}
        if aliases:
            configured = configured_mailers()
            for alias in aliases:
                if alias not in configured:
                    known = ", ".join(configured) or "none"
                    raise CommandError(f"No mailer {alias!r}; configured mailers: {known}.")
                if alias not in ours:
                    backend = configured[alias].get("BACKEND")
                    raise CommandError(f"Mailer {alias!r} does not use SendFleet ({backend}).")
            return [ours[alias] for alias in dict.fromkeys(aliases)]
        return sorted(ours.values(), key=lambda m: m.alias != "default")

    def check_mailer(
        self, mailer: Mailer, send_test: str | None, from_email: str | None, first: bool
    ) -> Section:
        checks = list(MAILER_CHECKS)
        if send_test and first:
            checks.append(partial(check_send_test, to=send_test, from_email=from_email))
        title = f"mailer '{mailer.alias}' ({mailer.backend})"
        return Section(title, mailer.alias, run([check(mailer) for check in checks]))

    def as_text(self, sections: list[Section], counts: dict[str, int]) -> str:
        styles = {OK: self.style.SUCCESS, WARNING: self.style.WARNING, ERROR: self.style.ERROR}
        lines = []
        for section in sections:
            lines.append(self.style.MIGRATE_HEADING(section.title))
            for result in section.results:
                label = result.level if result.level == OK else result.level.upper()
                level = styles[result.level](f"{label:<8}")
                lines.append(f"  {level}{result.name:<20}{result.message}")
                if result.fix:
                    lines.append(f"  {'':<8}{'fix:':<20}{result.fix}")
        summary = f"{counts[OK]} ok, {counts[WARNING]} warning(s), {counts[ERROR]} error(s)"
        verdict = "email through SendFleet should work" if not counts[ERROR] else "fix the errors"
        lines.append(f"{summary}: {verdict}.")
        return "\n".join(lines)

    def as_json(self, sections: list[Section], counts: dict[str, int]) -> str:
        checks = [
            {"section": section.title, "mailer": section.mailer, **asdict(result)}
            for section in sections
            for result in section.results
        ]
        exit_status = 1 if counts[ERROR] else 0
        report = {"ok": not counts[ERROR], "exit_status": exit_status, "counts": counts}
        return json.dumps({**report, "checks": checks}, indent=2)


def run(results: list[CheckResult | None]) -> list[CheckResult]:
    return [result for result in results if result is not None]


def no_mailer_result() -> CheckResult:
    backends = ", ".join(
        f"{alias}: {config.get('BACKEND')}" for alias, config in configured_mailers().items()
    )
    message = f"no mailer sends through SendFleet ({backends or 'none configured'})"
    return CheckResult("mailers", ERROR, message, NO_MAILER_FIX)


def key_secrets(mailers: list[Mailer]) -> set[Secret[str]]:
    """Every configured key and its secret part, to keep out of the output whatever happens."""
    secrets: set[Secret[str]] = set()
    for conf in [mailer.conf for mailer in mailers] + [SendFleetSettings()]:
        try:
            key = conf.api_key
        except SendFleetConfigurationError:
            continue
        secrets.update(key.secrets)
    return secrets
