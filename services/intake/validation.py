"""Turn a submitted body into a `Referral`, or into one specific `FieldError` per problem. Pure.

`validate_referral` checks the body's size and then the body against the contract; `date_problems` then checks the
dates against when the referral was received, which the caller passes in (no clock here). A rejection is itself
bounded (at most `MAX_ERRORS` entries, never a long echo of what was sent), so it can always be published.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shared.contracts.common import FieldError
from shared.contracts.intake import Referral

LONDON = ZoneInfo("Europe/London")
YOUNGEST, OLDEST = 8, 25  # whole years on the referral date, both included
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours an agency's clock may be when it records consent
MAX_ERRORS = 20
"""A rejection lists at most this many problems (the last entry says how many more there were)."""
_MAX_ECHO = 200  # characters of a field path or message in a rejection: a body's own text is never echoed at length

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field: not part of the referral contract",
    "date_from_datetime_parsing": "not a date in YYYY-MM-DD form",
    "date_parsing": "not a date in YYYY-MM-DD form",
    "date_from_datetime_inexact": "not a date in YYYY-MM-DD form",
    "timezone_aware": "give the time with its offset, e.g. 2026-05-01T10:00:00+01:00",
}


class NotJson(ValueError):
    """A body that is not JSON we will read; the message says why without echoing it."""


def load_json(data: bytes) -> Any:
    """Parse a body from outside. Refuses, with a clear reason, what would otherwise escape as an unexpected
    error: nesting deep enough to exhaust the parser's recursion, numbers too long to convert, bad UTF-8."""
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise NotJson("body is not valid JSON: it is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise NotJson(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise NotJson("body is not valid JSON: it nests arrays or objects too deeply") from exc
    except ValueError as exc:  # an integer longer than Python converts
        raise NotJson("body is not valid JSON: a number has too many digits") from exc


def too_large(size: int, max_bytes: int) -> FieldError:
    """The rejection of a body over the size limit: the same limit, and the same words, on both doors."""
    return FieldError(field="", message=(
        f"body is {size} bytes, over the limit of {max_bytes} bytes (REROUTE_INTAKE_MAX_BODY_BYTES): send referrals "
        "one at a time, within the contract's limits"))


def validate_referral(data: bytes, *, max_bytes: int | None = None) -> Referral | list[FieldError]:
    """The referral in `data`, or what is wrong with it; a body over `max_bytes` is refused before it is read."""
    if max_bytes is not None and len(data) > max_bytes:
        return [too_large(len(data), max_bytes)]
    try:
        body = load_json(data)
    except NotJson as exc:
        return [FieldError(field="", message=str(exc))]
    if not isinstance(body, dict):
        return [FieldError(field="", message=f"body must be a JSON object, not {type(body).__name__}")]
    try:
        return Referral.model_validate(body)
    except ValidationError as exc:
        return _at_most(MAX_ERRORS, [_field_error(err) for err in exc.errors()])


def _at_most(limit: int, errors: list[FieldError]) -> list[FieldError]:
    if len(errors) <= limit:
        return errors
    more = len(errors) - (limit - 1)
    rest = FieldError(field="", message=f"and {more} more problems, not listed: fix these first")
    return [*errors[: limit - 1], rest]


def date_problems(referral: Referral, *, referred_at: datetime, now: datetime) -> list[FieldError]:
    """Dates that cannot be true: an age out of range, an indicator seen before birth or in the future, consent
    recorded in the future. `referred_at` is when the referral was first received (its referral date, on which the
    age is taken); `now` is when this submission was received. The messages name the rule, never the date given."""
    born = referral.young_person.date_of_birth
    problems: list[FieldError] = []
    if not YOUNGEST <= age_on(born, london_date(referred_at)) <= OLDEST:
        problems.append(FieldError(field="young_person.date_of_birth", message=(
            f"the young person must be aged {YOUNGEST} to {OLDEST} on the referral date")))
    tomorrow = london_date(now) + timedelta(days=1)  # an agency a time zone ahead may already be on the next day
    for i, indicator in enumerate(referral.indicators):
        field = f"indicators[{i}].observed_at"
        if indicator.observed_at is None:
            continue  # the referral date, filled in on acceptance
        if indicator.observed_at < born:
            problems.append(FieldError(field=field, message="cannot be before the young person's date of birth"))
        elif indicator.observed_at > tomorrow:
            problems.append(FieldError(field=field, message=(
                "cannot be in the future: at the latest the day after the referral is received")))
    if referral.consent.recorded_at > now + CLOCK_SKEW:
        problems.append(FieldError(field="consent.recorded_at", message=(
            f"cannot be in the future: at the latest {CLOCK_SKEW.seconds // 60} minutes after the referral is "
            "received")))
    return problems


def age_on(born: date, on: date) -> int:
    """Age in whole years on a day (a 29 February birthday counts from 1 March in other years)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def london_date(moment: datetime) -> date:
    return moment.astimezone(LONDON).date()


def readable_agency_referral_id(data: bytes) -> str | None:
    """The agency's id from a body we could not accept, when it can be read, for the rejection event."""
    try:
        value = load_json(data).get("agency_referral_id")
    except (NotJson, AttributeError):
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
        message = f"{err['msg'].replace('Input should be', 'must be')}; got {_clip(repr(err['input']), 40)}"
    elif err["type"] == "too_long" and err.get("ctx", {}).get("field_type") == "List":
        message = f"too many: at most {err['ctx']['max_length']} items, not {err['ctx']['actual_length']}"
    elif err["type"] == "string_too_long":
        message = f"too long: at most {err['ctx']['max_length']} characters"
    return FieldError(field=_clip(path, _MAX_ECHO), message=_clip(message, _MAX_ECHO))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
