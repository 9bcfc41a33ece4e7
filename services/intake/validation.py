"""Turn a submitted body into a `Referral` (or a `Withdrawal`), or into one specific `FieldError` per problem. Pure.

`validate_referral` (`validate_withdrawal`) checks the body's size and then the body against the contract; `date_problems` then checks the
dates against when the referral was received, which the caller passes in (no clock here). A rejection is itself
bounded (at most `MAX_ERRORS` entries, never a long echo of what was sent), so it can always be published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core.core_schema import ErrorType

from shared.contracts.codes import PROTECTIVE_FACTOR_CODES
from shared.contracts.common import FieldError
from shared.contracts.intake import AGENCY_REFERRAL_ID_PATTERN, Referral, Withdrawal

LONDON = ZoneInfo("Europe/London")
YOUNGEST, OLDEST = 8, 25  # whole years on the referral date, both included
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours an agency's clock may be when it records consent
MAX_ERRORS = 20
"""A rejection lists at most this many problems (the last entry says how many more there were)."""
_MAX_ECHO = 200  # characters of a field path or message in a rejection: a body's own text is never echoed at length

_DATETIME = "not a date and time in ISO 8601 form with its offset, e.g. 2026-05-01T10:00:00+01:00"
_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field: not part of the contract",
    "date_from_datetime_parsing": "not a date in YYYY-MM-DD form",
    "date_parsing": "not a date in YYYY-MM-DD form",
    "date_from_datetime_inexact": "not a date in YYYY-MM-DD form",
    "date_type": "not a date in YYYY-MM-DD form",
    "timezone_aware": "give the time with its offset, e.g. 2026-05-01T10:00:00+01:00",
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    # The JSON type a field takes: the JSON Schema's own words, and nothing pydantic would have converted.
    "bool_type": "must be true or false (JSON true/false)",
    "int_type": "must be a whole number (a JSON number such as 3)",
    "int_parsing": "must be a whole number (a JSON number such as 3)",
    "finite_number": "must be a whole number (a JSON number such as 3): this one is too large to read",
    "int_from_float": "must be a whole number, without a fraction",
    "string_type": "must be text (a JSON string)",
    "list_type": "must be a list (a JSON array)",
    "model_type": "must be an object (JSON {...}) with its own fields",
    "model_attributes_type": "must be an object (JSON {...}) with its own fields",
    "dict_type": "must be an object (JSON {...})",
}
# A rejection names the field and the rule it breaks, never the value given: a name typed in the wrong field would
# otherwise be stored and published with `referrals.rejected`. The contract's own validators quote the value, so
# what each checks is said here instead, by the field it checks (its path without list positions).
_LANGUAGE_RULE = "not an ISO 639-1 language code (two letters, e.g. 'en')"
_TIME_RULE = "not a time of day in HH:MM (24-hour) form"
_RULES = {
    "young_person.languages": _LANGUAGE_RULE,
    "preferences.language": _LANGUAGE_RULE,
    "young_person.borough": "not a London borough (one of the 32 boroughs or the City of London)",
    "indicators.code": "unknown indicator code (see the README for the list of codes)",
    "availability.start": _TIME_RULE,
    "availability.end": _TIME_RULE,
    "availability": "the window ends before it starts",
    "referrer.email": "not an email address",
    "referrer.phone": "not a phone number (digits, spaces, +, -, brackets; 7 to 20 characters)",
}
# Errors whose message may quote the value: a validator's own words, pydantic's for a union's tag, and any custom
# error type. Pydantic's other messages say only the rule ("Input should be a valid integer").
_MAY_QUOTE = {"value_error", "assertion_error", "union_tag_invalid"}
_PYDANTIC_ERRORS = frozenset(get_args(ErrorType))
_SAYS_WHAT_WAS_SENT = {"bool_type", "int_type", "int_parsing"}  # "..., not text": the JSON type sent, never its value
_SAYS_WHY = {"datetime_parsing", "datetime_from_date_parsing"}  # pydantic's reason ("day value is outside ...")
_PATTERNS = {AGENCY_REFERRAL_ID_PATTERN: "may hold only letters (A-Z, a-z), digits (0-9) and . _ : / -, no spaces"}
_UNION_BRANCH = re.compile(r"^[a-z-]+\[.*\]$")  # "literal['any']": which type of a union pydantic tried
_AGENCY_REFERRAL_ID: TypeAdapter[str] = TypeAdapter(Annotated[str, Referral.model_fields["agency_referral_id"]])
M = TypeVar("M", bound=BaseModel)


class NotJson(ValueError):
    """A body that is not JSON we will read; the message says why without echoing it."""


def _not_a_json_number(_: str) -> Any:
    """json.loads reads NaN, Infinity and -Infinity, which JSON does not have (RFC 8259), as numbers."""
    raise NotJson("body is not valid JSON: NaN and Infinity are not JSON numbers")


def load_json(data: bytes) -> Any:
    """Parse a body from outside. Refuses, with a clear reason, what would otherwise escape as an unexpected
    error: nesting deep enough to exhaust the parser's recursion, numbers too long to convert, bad UTF-8; and NaN or
    Infinity, which json.loads reads as numbers but JSON has not."""
    try:
        return json.loads(data, parse_constant=_not_a_json_number)
    except NotJson:
        raise
    except UnicodeDecodeError as exc:
        raise NotJson("body is not valid JSON: it is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Unterminated string starting at"), to be followed by a position
        reason = exc.msg.removesuffix(" at")
        raise NotJson(f"body is not valid JSON: {reason} at line {exc.lineno} column {exc.colno}") from exc
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
    return _validate(Referral, data, max_bytes=max_bytes)


def validate_withdrawal(data: bytes, *, max_bytes: int | None = None) -> Withdrawal | list[FieldError]:
    """The withdrawal in `data`, or what is wrong with it, in the same words as a referral's problems."""
    return _validate(Withdrawal, data, max_bytes=max_bytes)


def _validate(model: type[M], data: bytes, *, max_bytes: int | None) -> M | list[FieldError]:
    if max_bytes is not None and len(data) > max_bytes:
        return [too_large(len(data), max_bytes)]
    try:
        body = load_json(data)
    except NotJson as exc:
        return [FieldError(field="", message=str(exc))]
    if not isinstance(body, dict):
        return [FieldError(field="", message=f"body must be a JSON object, not {type(body).__name__}")]
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return _at_most(MAX_ERRORS, _one_per_field([field_error(err) for err in exc.errors()]))


def _one_per_field(errors: list[FieldError]) -> list[FieldError]:
    """The problems, with those of one field that may be any of a union of values said once: "must be 'female',
    'male', 'non_binary' or 'not_stated', or 'any'"."""
    kept: list[FieldError] = []
    for e in errors:
        before = next((i for i, k in enumerate(kept) if k.field == e.field), None)
        if before is not None and kept[before].message.startswith("must be ") and e.message.startswith("must be "):
            kept[before] = FieldError(field=e.field, message=f"{kept[before].message}, or {e.message[8:]}")
        else:
            kept.append(e)
    return kept


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
    """The agency's id from a body we could not accept, for the rejection event, when it is one the contract allows
    (never whatever else was typed in its place)."""
    try:
        value = load_json(data).get("agency_referral_id")
    except (NotJson, AttributeError):
        return None
    try:
        return _AGENCY_REFERRAL_ID.validate_python(value)
    except ValidationError:
        return None


def field_error(err: Any) -> FieldError:
    """One of pydantic's errors as reroute says it: the field's dotted path, and the rule it breaks in plain words."""
    loc = [str(part) for part in err["loc"] if not _UNION_BRANCH.match(str(part))]
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    message = _MESSAGES.get(err["type"], err["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    rule = ".".join(part for part in loc if not part.isdigit())
    said_here = err["type"] == "value_error" and (rule in _RULES or rule == "protective_factors")
    if err["type"] == "value_error" and rule == "protective_factors":
        unknown = [f"[{i}]" for i, code in enumerate(err["input"]) if code not in PROTECTIVE_FACTOR_CODES]
        message = f"unknown protective factor code at {', '.join(unknown)} (see the README for the list of codes)"
    elif err["type"] == "value_error" and rule in _RULES:
        message = _RULES[rule]
    elif err["type"] == "literal_error":
        message = err["msg"].replace("Input should be", "must be")
    elif err["type"] == "too_long" and err.get("ctx", {}).get("field_type") == "List":
        message = f"too many: at most {err['ctx']['max_length']} items, not {err['ctx']['actual_length']}"
    elif err["type"] == "too_short" and err.get("ctx", {}).get("field_type") == "List":
        least = err["ctx"]["min_length"]
        message = f"too few: at least {least} item{'' if least == 1 else 's'}, not {err['ctx']['actual_length']}"
    elif err["type"] == "string_too_long":
        message = f"too long: at most {err['ctx']['max_length']} characters"
    elif err["type"] == "string_too_short":
        least = err["ctx"]["min_length"]
        message = "must not be empty" if least == 1 else f"too short: at least {least} characters"
    elif err["type"] == "greater_than_equal":
        message = f"must be at least {err['ctx']['ge']}"
    elif err["type"] == "less_than_equal":
        message = f"must be at most {err['ctx']['le']}"
    elif err["type"] == "string_pattern_mismatch":
        message = _PATTERNS.get(err.get("ctx", {}).get("pattern"), "not in the form this field takes")
    elif err["type"] in _SAYS_WHAT_WAS_SENT:
        message = f"{message}, not {_json_type(err.get('input'))}"
    elif (err["type"] in _SAYS_WHY and isinstance(why := err.get("ctx", {}).get("error"), str)
          and not _quotes(why, err.get("input"), shortest=2)):
        # pydantic's reason is one of a fixed list ("day value is outside expected range"), never the value; checked
        # all the same, as any text that could quote it is
        message = f"{message} ({why})"
    may_quote = err["type"] in _MAY_QUOTE or err["type"] not in _PYDANTIC_ERRORS
    if not said_here and may_quote and _quotes(message, err.get("input"), shortest=2):
        message = f"not valid here ({err['type'].replace('_', ' ')})"  # a rule that would quote the value given
    return FieldError(field=_clip(path, _MAX_ECHO), message=_clip(message, _MAX_ECHO))


def _json_type(value: Any) -> str:
    """What JSON type a value was sent as, in a rejection's words (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list | tuple) else "an object"


def _quotes(message: str, value: Any, *, shortest: int) -> bool:
    """Whether `message` quotes any text of `value` at least `shortest` characters long."""
    said = message.casefold()
    return any(len(text) >= shortest and text in said for text in _texts(value))


def _texts(value: Any) -> Iterator[str]:
    """The texts and numbers in a value given, casefolded, however deep in lists and objects' values."""
    if isinstance(value, str):
        yield value.strip().casefold()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
