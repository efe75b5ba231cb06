"""``sendfleet_check``'s "error reports" line: may Django's error reports show a secret?"""

from __future__ import annotations

from django.conf import settings

from ..reporting import FILTER_PATH, filter_in_use, secret_mailer_options
from .check_result import OK, WARNING, CheckResult

ERROR_REPORTS_FIX = (
    f"Set DEFAULT_EXCEPTION_REPORTER_FILTER = {FILTER_PATH!r} (docs/configuration.md, 'Secrets "
    "in Django's error reports'), or move the secrets out of OPTIONS (SENDFLEET['API_KEY'] or "
    "the SENDFLEET_API_KEY environment variable)."
)


def check_error_reports() -> CheckResult:
    """Whether Django's error reports may show a secret from a mailer's OPTIONS."""
    if filter_in_use():
        message = (
            "DEFAULT_EXCEPTION_REPORTER_FILTER is SecretsReporterFilter: secrets cleansed "
            "from every frame"
        )
        return CheckResult("error reports", OK, message, data={"filter": FILTER_PATH})
    exposed = secret_mailer_options()
    data = {"filter": settings.DEFAULT_EXCEPTION_REPORTER_FILTER, "secret_options": exposed}
    if exposed:
        where = "; ".join(f"MAILERS[{a!r}] OPTIONS {', '.join(n)}" for a, n in exposed.items())
        message = (
            f"{where}: Django's error reports (the DEBUG 500 page, the admins' error mail) show "
            "these in Django's own frames, e.g. when an option is misspelt"
        )
        return CheckResult("error reports", WARNING, message, ERROR_REPORTS_FIX, data)
    message = (
        "no mailer keeps a secret in its OPTIONS; DEFAULT_EXCEPTION_REPORTER_FILTER = "
        f"{FILTER_PATH!r} is recommended all the same"
    )
    return CheckResult("error reports", OK, message, data=data)
