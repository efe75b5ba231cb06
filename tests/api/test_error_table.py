"""The error table: each answer maps to its row, class and retry schedule.

Unit tests: answers are built in memory (the behaviour tests use the sandbox over HTTP).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from django_sendfleet import error_table
from django_sendfleet import exceptions as exc
from django_sendfleet.api import answers


def answer(status, body=None, headers=None, text=None):
    response = requests.Response()
    response.status_code = status
    response._content = (text if text is not None else json.dumps(body or {})).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "body", "exception", "retryable"),
    [
        (400, {"to": ["Enter a valid email address."]}, exc.SendFleetValidationError, False),
        (401, {"detail": "Invalid API key."}, exc.SendFleetAuthenticationError, False),
        (403, {"error": "unauthorized"}, exc.SendFleetAccountNotAuthorized, False),
        (403, {"error": "domain_not_registered"}, exc.SendFleetDomainNotRegistered, False),
        (403, {"error": "domain_not_verified"}, exc.SendFleetDomainNotVerified, False),
        (403, {"error": "dkim_not_verified"}, exc.SendFleetDKIMNotVerified, False),
        (403, {"error": "domain_mode_mismatch"}, exc.SendFleetDomainModeMismatch, False),
        (403, {"error": "sending_suspended"}, exc.SendFleetSendingSuspended, False),
        (403, {"detail": "IP blocked"}, exc.SendFleetForbidden, False),
        (422, {"error": "recipient_suppressed"}, exc.SendFleetRecipientSuppressed, False),
        (429, {"error": "usage_limit_exceeded"}, exc.SendFleetUsageLimitExceeded, False),
        (429, {"detail": "Request was throttled."}, exc.SendFleetRateLimited, True),
        (500, {"error": "anything"}, exc.SendFleetServerError, True),
        (502, {"error": "queue_error"}, exc.SendFleetQueueError, True),
        (503, {"error": "byoc_not_configured"}, exc.SendFleetBYOCNotConfigured, False),
        (504, {}, exc.SendFleetGatewayError, False),
        (404, {"detail": "Not found."}, exc.SendFleetAPIError, False),
    ],
)
def test_each_answer_maps_to_its_exception_and_retry_rule(status, body, exception, retryable):
    error = answers.error_for_response(answer(status, body))
    assert type(error) is exception
    assert error.retryable is retryable
    assert error.status_code == status


def test_a_code_sent_with_the_wrong_status_is_not_trusted():
    # A 429 with an unknown "error" is still the throttle (retryable), never a quota stop.
    error = answers.error_for_response(answer(429, {"error": "domain_not_verified"}))
    assert type(error) is exc.SendFleetRateLimited


def test_validation_error_keeps_the_field_errors_and_describes_them():
    error = answers.error_for_response(answer(400, {"message": ["This field may not be blank."]}))
    assert error.field_errors == {"message": ["This field may not be blank."]}
    assert error.detail == "message: This field may not be blank."


def test_non_json_error_body_still_maps_by_status():
    error = answers.error_for_response(answer(502, text="<html>Bad Gateway</html>"))
    assert type(error) is exc.SendFleetGatewayError and not error.retryable
    assert isinstance(error, exc.SendFleetServerError)


@pytest.mark.parametrize(
    ("code", "waits"),
    [("queue_error", [1, 2, 4, None]), ("connection_failed", [1, 2, 4, None])],
)
def test_backoff_schedules(code, waits):
    spec = error_table.SPECS_BY_CODE[code]
    error = spec.exception("x")
    assert error.retryable
    assert [error_table.retry_wait(error, n) for n in range(1, 5)] == waits


def test_server_error_is_retried_once_after_two_to_five_seconds():
    error = exc.SendFleetServerError("x", retryable=True)
    assert 2 <= error_table.retry_wait(error, 1) <= 5
    assert error_table.retry_wait(error, 2) is None


def test_throttle_honours_retry_after_else_backs_off_exponentially():
    with_header = answers.error_for_response(answer(429, {}, {"Retry-After": "7"}))
    assert error_table.retry_wait(with_header, 1) == 7
    without = answers.error_for_response(answer(429, {}))
    assert [error_table.retry_wait(without, n) for n in range(1, 7)] == [1, 2, 4, 8, 16, None]


def test_retry_after_as_an_http_date():
    # fixed date: RFC 9110's example, in the past on any clock: no wait
    assert answers.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert answers.parse_retry_after("soon") is None


def test_maybe_sent_network_error_is_never_retried():
    error = exc.SendFleetNetworkError("x")
    assert error.may_have_been_sent and error.error_code == "network_error"
    assert error_table.retry_wait(error, 1) is None


def test_every_exception_class_has_a_row():
    classes = {spec.exception for spec in error_table.ERROR_TABLE}
    abstract = {exc.SendFleetError, exc.SendFleetDomainError, exc.SendFleetWebhookValidationError}
    concrete = {
        cls
        for cls in vars(exc).values()
        if isinstance(cls, type) and issubclass(cls, exc.SendFleetError) and cls not in abstract
    }
    assert concrete <= classes, concrete - classes


# The contract between the table and the exception classes.


@pytest.mark.parametrize("spec", error_table.ERROR_TABLE, ids=lambda spec: spec.code)
def test_each_row_gives_its_own_class_its_code_and_retryability(spec):
    assert spec.exception.error_code == spec.code
    assert spec.exception.retryable_by_default is spec.retryable
    required = {"rate_limit_wait": {"retry_after": 1.0}, "key_refused": {"refused_until": None}}
    error = spec.exception("x", **required.get(spec.code, {}))
    assert error.error_code == spec.code and error.retryable is spec.retryable
    assert error_table.spec_for_error(error) is spec


def test_no_two_rows_share_a_class():
    assert len(error_table.SPECS_BY_EXCEPTION) == len(error_table.ERROR_TABLE)


def test_the_exceptions_module_states_no_code_of_the_table():
    """The codes live in the table alone: a class attribute there could silently disagree."""
    source = (Path(exc.__file__)).read_text()
    for spec in error_table.ERROR_TABLE:
        assert f'"{spec.code}"' not in source, spec.code


def test_an_error_outside_the_table_is_a_loud_error_not_a_silent_fallback():
    class Stray(exc.SendFleetError):
        pass

    with pytest.raises(LookupError):
        error_table.spec_for_error(Stray("x"))

    # A subclass of a row's class takes that row.
    class MyQueueError(exc.SendFleetQueueError):
        pass

    assert error_table.spec_for_error(MyQueueError("x")).code == "queue_error"


def test_answers_without_a_code_map_by_status_to_the_librarys_rows():
    by_status = {
        status: error_table.spec_for_answer(status, None).code for status in (400, 401, 403, 429)
    }
    assert by_status == {
        400: "validation_error",
        401: "authentication_failed",
        403: "forbidden",
        429: "rate_limited",
    }
    assert error_table.spec_for_answer(500, None).code == "server_error"
    assert error_table.spec_for_answer(504, None).code == "gateway_error"
    assert error_table.spec_for_answer(404, None).code == "api_error"


@pytest.mark.parametrize("spec", error_table.ERROR_TABLE, ids=lambda spec: spec.code)
def test_the_docs_and_the_admin_describe_retries_in_the_same_words(spec, admin_client):
    from django.urls import reverse

    from django_sendfleet.models import SendLog

    docs = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()
    assert spec.retry_description in docs
    row = SendLog.objects.create(
        recipient="a@example.com", from_email="shop@example.com", error_code=spec.code
    )
    page = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert spec.retry_description in page.text


def test_error_reference_docs_are_generated_from_the_table():
    script = Path(__file__).resolve().parents[2] / "docs" / "error_reference.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize(  # fixed date: in the past on any clock
    "header", ["0", "-5", "0.0", "nan", "-inf", "inf", "1e99", "Wed, 21 Oct 2015 07:28:00 GMT", ""]
)
def test_a_throttle_is_never_retried_sooner_than_one_second(header):
    """SendFleet: wait at least 1 s after a throttle, whatever Retry-After says (or if absent)."""
    error = answers.error_for_response(answer(429, {}, {"Retry-After": header}))
    for attempt in range(1, 6):
        wait = error_table.retry_wait(error, attempt)
        assert wait is not None and 1.0 <= wait < 1e9, (header, attempt, wait)
    assert error_table.retry_wait(error, 1) == 1.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 12 ", 12.0), ("nan", None), ("inf", None), ("1e3", None), ("-1", None)],
)
def test_retry_after_is_delta_seconds_digits_only(header, seconds):
    assert answers.parse_retry_after(header) == seconds


def test_retry_after_too_long_to_be_real_is_ignored_not_overflowed():
    assert answers.parse_retry_after("9" * 20) is None
    assert answers.parse_retry_after("1" * 100_000) is None


def test_rows_without_backoff_are_not_described_as_retries():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs"))
    try:
        import error_reference
    finally:
        sys.path.pop(0)
    text = error_reference.render()
    assert "up to 0 retries" not in text and "after  s" not in text
    [row] = [line for line in text.splitlines() if line.startswith("| `rate_limit_wait`")]
    assert "nothing was sent" in row
    [row] = [line for line in text.splitlines() if line.startswith("| `rate_limited`")]
    assert "after Retry-After, if the answer has one; at least 1 s" in row
    assert "up to 0" not in error_reference.render() and "1 attempts" not in text


def test_the_quota_text_says_when_it_resets_and_that_paid_byoc_has_no_cap():
    meaning = error_table.SPECS_BY_CODE["usage_limit_exceeded"].meaning
    assert "00:00 UTC on the 1st" in meaning
    assert "paid BYOC plan has no SendFleet cap" in meaning
