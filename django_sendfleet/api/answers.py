"""What an HTTP answer from SendFleet means: the exception its error-table row names, with the
answer's facts (field errors, ``Retry-After``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .. import exceptions as exc
from ..error_table import spec_for_answer

if TYPE_CHECKING:
    import requests


def error_for_response(response: requests.Response, **context: Any) -> exc.SendFleetAPIError:
    """Turn a non-2xx answer into the exception its row names."""
    body = _json_object(response)
    api_code = body.get("error") if isinstance(body.get("error"), str) else None
    spec = spec_for_answer(response.status_code, api_code)
    kwargs: dict[str, Any] = {"response": response, "status_code": response.status_code, **context}
    detail = body.get("detail")
    if spec.exception is exc.SendFleetValidationError:
        kwargs["field_errors"] = body
        detail = detail or _describe_field_errors(body)
    if spec.exception is exc.SendFleetRateLimited:
        kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    if not isinstance(detail, str):
        detail = response.reason or ""
    error = spec.exception(detail, **kwargs)
    assert isinstance(error, exc.SendFleetAPIError)
    return error


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110); None if neither."""
    if not value or len(value) > 64:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # 1*DIGIT only: no "nan", "inf" or "1e99" (whose wait would overflow a datetime).
        return float(value) if len(value) <= 9 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe_field_errors(errors: Mapping[str, Any]) -> str:
    described = []
    for field, messages in errors.items():
        if isinstance(messages, list):
            messages = " ".join(str(m) for m in messages)
        described.append(f"{field}: {messages}")
    return "; ".join(described)
