"""Turn a submitted body into a `Referral`, or into one specific `FieldError` per problem. Pure."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.contracts.common import FieldError
from shared.contracts.intake import Referral

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field: not part of the referral contract",
    "date_from_datetime_parsing": "not a date in YYYY-MM-DD form",
    "date_parsing": "not a date in YYYY-MM-DD form",
    "date_from_datetime_inexact": "not a date in YYYY-MM-DD form",
    "timezone_aware": "give the time with its offset, e.g. 2026-05-01T10:00:00+01:00",
}


def validate_referral(data: bytes) -> Referral | list[FieldError]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [FieldError(field="", message=f"body is not valid JSON: {exc}")]
    if not isinstance(body, dict):
        return [FieldError(field="", message=f"body must be a JSON object, not {type(body).__name__}")]
    try:
        return Referral.model_validate(body)
    except ValidationError as exc:
        return [_field_error(err) for err in exc.errors()]


def readable_agency_referral_id(data: bytes) -> str | None:
    """The agency's id from a body we could not accept, when it can be read, for the rejection event."""
    try:
        value = json.loads(data).get("agency_referral_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and 0 < len(value) <= 100 else None


def _field_error(err: Any) -> FieldError:
    loc = [str(part) for part in err["loc"] if part not in ("function-after[_reachable(), Referrer]",)]
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    message = _MESSAGES.get(err["type"], err["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if err["type"] == "literal_error":
        message = f"{err['msg'].replace('Input should be', 'must be')}; got {err['input']!r}"
    return FieldError(field=path, message=message)
