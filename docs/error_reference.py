"""Write docs/errors.md from django_sendfleet.error_table, so the reference cannot drift.

python docs/error_reference.py          # rewrite docs/errors.md
python docs/error_reference.py --check  # exit 1 if it is out of date (the test suite does)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_sendfleet.error_spec import ErrorSpec
from django_sendfleet.error_table import ERROR_TABLE
from django_sendfleet.exceptions import SendFleetGatewayError

TARGET = Path(__file__).resolve().parent / "errors.md"


def _http(spec: ErrorSpec) -> str:
    if spec.http_status:
        return str(spec.http_status)
    return "other 5xx" if spec.exception is SendFleetGatewayError else "-"


def render() -> str:
    lines = [
        "# Error reference",
        "",
        "Generated from `django_sendfleet/error_table.py` by `python docs/error_reference.py`;",
        "do not edit by hand. Every exception below is importable from",
        "`django_sendfleet.exceptions` and carries `error_code`, `status_code`, `detail`,",
        "`recipient`, `email_message`, `payload`, `response`, `retryable` and `attempts`.",
        "",
        "Codes marked *(library)* are not sent by the API in its `error` field: the library",
        "names those answers (or failures found before any answer) itself. Retries are bounded",
        "by `SENDFLEET['MAX_RETRY_WAIT']` in total.",
        "",
        "| code | HTTP | exception | retried | rest of the batch | recipient status |",
        "|---|---|---|---|---|---|",
    ]
    for spec in ERROR_TABLE:
        code = f"`{spec.code}`" + ("" if spec.sent_by_api else " *(library)*")
        effect = {
            "none": "continues",
            "stop_batch": "stopped",
            "skip_domain": "same domain skipped",
        }[spec.batch_effect.value]
        lines.append(
            f"| {code} | {_http(spec)} | `{spec.exception.__name__}` | "
            f"{spec.retry_description} | {effect} | `{spec.recipient_status}` |"
        )
    lines += ["", "## What each error means and what to do", ""]
    for spec in ERROR_TABLE:
        lines += [f"### `{spec.code}`", "", spec.meaning, "", f"**Fix:** {spec.fix}", ""]
    return "\n".join(lines)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python docs/error_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
