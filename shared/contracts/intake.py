"""What agencies send to intake, and the events intake publishes.

`Referral` is the body an agency publishes on `referrals.submitted.<agency_id>`. It holds personal
data and never leaves intake: `ReferralRecorded` (for risk and scheduling only) carries only what they need (no
names, no birth date, no contact details, no free-text reason), and `ReferralAccepted` (for the agency) only what
concerns the agency's own referral. `Withdrawal` is what an agency sends to withdraw one of its referrals, and
`ReferralWithdrawn` what intake tells the agency, and scheduling, once it has recorded that.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from shared.contracts.codes import (
    INDICATOR_CODES,
    PROTECTIVE_FACTOR_CODES,
    Gender,
    IndexOffence,
    WithdrawalReason,
    london_borough,
)
from shared.contracts.common import Contract, Event, FieldError, OneLine, PersonName, WeeklyWindow, absent

_LANGUAGE = re.compile(r"^[a-z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")

# Bounds on every list and string, so that no referral, and no event made from one, can grow without limit (an
# unbounded list once made a 1.6 MB event that NATS refused). Each is well above any realistic referral: there are
# 30 indicator codes and 7 protective factors, so a list naming each once always fits.
MAX_INDICATORS = 30
MAX_PROTECTIVE_FACTORS = 7
MAX_LANGUAGES = 10
MAX_UNSAFE_AREAS = 50
MAX_CONFLICT_GROUPS = 20
MAX_AVAILABILITY_WINDOWS = 50
MAX_ITEM_CHARS = 100
"""The longest list item (an unsafe area, a conflict group, a code) and the longest name-like string."""


def _language(code: str) -> str:
    lowered = code.strip().lower()
    if not _LANGUAGE.match(lowered):
        raise ValueError(f"'{code}' is not an ISO 639-1 language code (two letters, e.g. 'en')")
    return lowered


LanguageCode = Annotated[str, StringConstraints(max_length=20), AfterValidator(_language)]
ListItem = Annotated[str, StringConstraints(max_length=MAX_ITEM_CHARS)]


# A referral is read as JSON and must mean what the published JSON Schema says, which an agency may validate against:
# pydantic's lax mode would also take "yes", 1 or "true" for a boolean, "3" or true for an integer, and a number of
# seconds (or text of its digits) for a date. Booleans are StrictBool (only JSON true/false); the types below refuse
# the rest, each with pydantic's own error type, so that intake words it like any other (services/intake/validation.py).
def _json_integer(value: object) -> object:
    """JSON Schema's integer: a number without a fraction (3, or 3.0), never text or true/false."""
    if isinstance(value, str | bool):
        raise PydanticKnownError("int_type")
    return value


# Text of digits alone ("1262304000", "-5", "1700000000.5"): pydantic reads it as seconds (or milliseconds) since 1970,
# as it would a number, where the schema's date and date-time formats refuse it.
_SECONDS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # what pydantic reads as seconds


def _json_date_text(value: object) -> object:
    """A date is ISO 8601 text, never a number or text of digits (pydantic would read either as seconds since 1970)."""
    if isinstance(value, int | float) or (isinstance(value, str) and _SECONDS.fullmatch(value.strip())):  # bool too
        raise PydanticKnownError("date_type")
    return value


def _json_datetime_text(value: object) -> object:
    if isinstance(value, int | float) or (isinstance(value, str) and _SECONDS.fullmatch(value.strip())):
        raise PydanticKnownError("datetime_type")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""For `Annotated[int, Field(ge=..., le=...), JSON_INTEGER]`: after the bounds, or the schema loses them."""
DateText = Annotated[date, BeforeValidator(_json_date_text)]
DateTimeText = Annotated[AwareDatetime, BeforeValidator(_json_datetime_text)]


class Referrer(Contract):
    """The professional making the referral."""

    name: PersonName = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("not an email address")  # never echo the value: it would be stored and sent on
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("not a phone number (digits, spaces, +, -, brackets; 7 to 20 characters)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Referrer:
        if not self.email and not self.phone:
            raise ValueError("give the referrer's email or phone, so we can reach them")
        return self


class YoungPerson(Contract):
    """The young person referred. Personal data: stays in intake."""

    given_name: PersonName = Field(min_length=1, max_length=100)
    family_name: PersonName = Field(min_length=1, max_length=100)
    date_of_birth: DateText = Field(description="YYYY-MM-DD; the young person must be aged 8 to 25 on the referral date.")
    gender: Gender
    borough: str = Field(max_length=MAX_ITEM_CHARS, description="A London borough, matched case-insensitively.")
    languages: list[LanguageCode] = Field(
        min_length=1, max_length=MAX_LANGUAGES, description=f"ISO 639-1 codes, e.g. ['en', 'so']; 1 to {MAX_LANGUAGES}."
    )

    @field_validator("borough")
    @classmethod
    def _borough(cls, value: str) -> str:
        return london_borough(value)


class Consent(Contract):
    """The young person's (or guardian's) consent to the referral."""

    given: StrictBool = Field(description=(
        "Must be JSON true: a referral without consent is refused, and so is text or a number (\"yes\", 1)."))
    recorded_at: DateTimeText = Field(
        description="When consent was recorded, ISO 8601 with offset; not in the future (5 minutes of clock skew allowed)."
    )


class Indicator(Contract):
    """An indicator code with the date it was last observed (the referral date when not given)."""

    code: str = Field(max_length=MAX_ITEM_CHARS)
    observed_at: DateText | None = Field(
        default=None,
        description="YYYY-MM-DD, from the date of birth to the day after the referral is received; defaults to the "
        "referral date.",
    )

    @field_validator("code")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in INDICATOR_CODES:
            raise ValueError(f"unknown indicator '{value}' (see the README for the list of codes)")
        return value


class Preferences(Contract):
    """What the young person asked for in a mentor."""

    mentor_gender: Gender | Literal["any"] = "any"
    mentor_gender_required: StrictBool = Field(
        default=True, description="True: only a mentor of that gender (a request); false: preferred, scored."
    )
    language: str | None = Field(default=None, max_length=20)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else _language(value)


class EqualityMonitoring(Contract):
    """Optional equality-monitoring answers. Stored apart by intake, never sent on, never a rule input:
    used only for the fairness audit's aggregate counts."""

    ethnicity: str | None = Field(default=None, max_length=100)
    religion: str | None = Field(default=None, max_length=100)
    disability: str | None = Field(default=None, max_length=100)


AGENCY_REFERRAL_ID_PATTERN = r"^[A-Za-z0-9._:/-]+$"
"""What an agency's own id for a referral may hold: `/` included (`YOT/2026/17`)."""


def _codes_or_objects_schema(schema: dict[str, Any]) -> None:
    """The published schema of `indicators` admits what the validator admits: a bare code or an `Indicator`."""
    code = {"type": "string", "maxLength": MAX_ITEM_CHARS, "description": "An indicator code (the README lists them)."}
    schema["items"] = {"anyOf": [code, schema["items"]]}


class Referral(Contract):
    """A referral as an agency submits it (the body of `referrals.submitted.<agency_id>`)."""

    agency_referral_id: str = Field(min_length=1, max_length=100, pattern=AGENCY_REFERRAL_ID_PATTERN)
    referrer: Referrer
    young_person: YoungPerson
    consent: Consent
    reason: str = Field(min_length=1, max_length=10_000)
    index_offence: IndexOffence | None = None
    prior_proven_offences: Annotated[int, Field(ge=0, le=200), JSON_INTEGER] | None = None
    age_at_first_proven_offence: Annotated[int, Field(ge=8, le=30), JSON_INTEGER] | None = None
    indicators: list[Indicator] = Field(
        default_factory=list, max_length=MAX_INDICATORS,
        description=f"Codes, or {{code, observed_at}} objects; at most {MAX_INDICATORS} (there are {MAX_INDICATORS} "
        "codes: give each once, with the date it was last observed).",
        json_schema_extra=_codes_or_objects_schema,
    )
    protective_factors: list[ListItem] = Field(
        default_factory=list, max_length=MAX_PROTECTIVE_FACTORS,
        description=f"Codes; at most {MAX_PROTECTIVE_FACTORS} (there are {MAX_PROTECTIVE_FACTORS}).",
    )
    unsafe_areas: list[ListItem] = Field(
        default_factory=list, max_length=MAX_UNSAFE_AREAS,
        description=f"Place names (boroughs, estates, neighbourhoods, postcode districts); at most {MAX_UNSAFE_AREAS}, "
        f"each at most {MAX_ITEM_CHARS} characters.",
    )
    conflict_groups: list[ListItem] = Field(
        default_factory=list, max_length=MAX_CONFLICT_GROUPS,
        description="Groups the young person must be kept apart from (rival or exploiting groups), matched against "
        "mentors' conflict registers only; never a risk input, and never a person's name. At most "
        f"{MAX_CONFLICT_GROUPS}, each at most {MAX_ITEM_CHARS} characters.",
    )
    preferences: Preferences = Field(default_factory=Preferences)
    availability: list[WeeklyWindow] = Field(
        default_factory=list, max_length=MAX_AVAILABILITY_WINDOWS,
        description=f"Weekly windows, Europe/London; at most {MAX_AVAILABILITY_WINDOWS}.",
    )
    equality_monitoring: EqualityMonitoring | None = Field(
        default=None, description="Optional; kept apart and used only for the fairness audit."
    )

    @field_validator("indicators", mode="before")
    @classmethod
    def _codes_or_objects(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"code": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("protective_factors")
    @classmethod
    def _protective(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in PROTECTIVE_FACTOR_CODES]
        if unknown:
            raise ValueError(f"unknown protective factor(s) {', '.join(repr(c) for c in unknown)}")
        return value

    @field_validator("consent")
    @classmethod
    def _consent_given(cls, value: Consent) -> Consent:
        if not value.given:
            raise ValueError("consent has not been given; we cannot accept a referral without it")
        return value


class PersonFacts(Contract):
    """What risk and scheduling may know of the young person: no names, birth date or contact details."""

    age_years: int = Field(description="Age in whole years on the referral date.")
    age_band: str = Field(description="'10-13', '14-15', '16-17', '18-21' or '22+'.")
    gender: Gender
    borough: str = Field(description="Canonical London borough name.")
    languages: list[str]


class PreviousReferrals(Contract):
    """Earlier referrals of the same young person, by any agency (matched inside intake on name and birth date)."""

    count: int = Field(ge=1, description="How many earlier referrals of this young person intake holds.")
    last_referred_at: AwareDatetime = Field(description="When the most recent earlier referral was received.")


class ReferralRecorded(Event):
    """Intake stored a valid referral: its pseudonymous facts, for risk and scheduling only
    (`intake.recorded.<agency_id>`, a subject no agency may read: `person_id` and `previously_referred` say whether
    any agency referred the same young person before). The fields of `referrals.accepted` schema_version 1."""

    referral_id: str = Field(description="Our id for the referral.")
    agency_id: str
    agency_referral_id: str = Field(description="The agency's own id for the referral.")
    duplicate: bool = Field(default=False, description="True when this repeats an earlier accepted submission.")
    revision: int = Field(default=0, description="0 as first submitted; 1, 2, ... after each referrals.updated.")
    person_id: str | None = Field(
        default=None,
        description="Pseudonymous id of the young person: the same for every referral of the same person, by any "
        "agency. Set by intake on every event it publishes; absent only on events from before it existed.",
    )
    previously_referred: PreviousReferrals | None = Field(
        default=None, exclude_if=absent,
        description="Set when intake holds earlier referrals of the same young person, by any agency; absent (not "
        "null) on a first referral.",
    )
    person: PersonFacts
    index_offence: IndexOffence | None = None
    prior_proven_offences: int | None = None
    age_at_first_proven_offence: int | None = None
    indicators: list[Indicator] = Field(description="Each with observed_at filled in.")
    protective_factors: list[str]
    unsafe_areas: list[str]
    conflict_groups: list[str] = Field(default_factory=list)
    preferences: Preferences
    availability: list[WeeklyWindow]


ACCEPTED_SCHEMA_VERSION = 2
"""`referrals.accepted` since it carries only the agency's own referral (version 1 carried `person_id`,
`previously_referred` and the pseudonymous facts: see docs/agency-changelog.md)."""


class ReferralAccepted(Event):
    """Intake stored a valid referral (`referrals.accepted.<agency_id>`): what the agency needs to follow its own
    referral, and nothing that depends on any other agency's referrals."""

    schema_version: int = Field(default=ACCEPTED_SCHEMA_VERSION, description=(
        "Version of this event's schema: 2 (version 1 also carried person_id, previously_referred and the "
        "pseudonymous facts; see docs/agency-changelog.md)."))
    referral_id: str = Field(description="Our id for the referral: the one to quote, and to ask its status with.")
    agency_id: str = Field(description="Your agency id (the last token of the subject).")
    agency_referral_id: str = Field(description="Your own id for the referral, as you sent it.")
    duplicate: bool = Field(default=False, description=(
        "True when this repeats a submission of yours we had already accepted (the same agency_referral_id), or an "
        "update that changed nothing."))
    revision: int = Field(default=0, description="0 as first submitted; 1, 2, ... after each referrals.updated.")
    received_at: AwareDatetime = Field(description=(
        "When we first received this referral: its referral date (Europe/London) is the date ages and an "
        "indicator's default observed_at are counted from; a repeat or an update keeps it."))
    status_url: str | None = Field(default=None, exclude_if=absent, description=(
        "Where to follow the referral over HTTPS with your API key (GET): a path (/v1/referrals/...) or a full "
        "URL; absent when the service runs no HTTP API."))


class ReferralRejected(Event):
    """Intake refused a submission (`referrals.rejected.<agency_id>`); nothing was stored for it."""

    agency_id: str
    agency_referral_id: str | None = Field(default=None, description="When it could be read from the body.")
    errors: list[FieldError] = Field(description="One entry per problem.")


MAX_NOTE_CHARS = 500


class Withdrawal(Contract):
    """An agency withdraws a referral it submitted (the body of `referrals.withdraw.<agency_id>` and of
    `POST /v1/withdrawals`): its future sessions are cancelled and its case is closed, with this reason. A safeguarding
    alert already raised about the young person stays open for the safeguarding lead: withdrawing a referral does not
    withdraw a safeguarding concern. A withdrawn referral cannot be updated or sent again."""

    agency_referral_id: str = Field(min_length=1, max_length=100, pattern=AGENCY_REFERRAL_ID_PATTERN,
                                    description="Your own id for the referral, as you submitted it.")
    reason: WithdrawalReason = Field(description=(
        "Why: consent_withdrawn, referred_in_error, needs_met_elsewhere, moved_away or other (say what in `note`)."))
    note: OneLine | None = Field(default=None, min_length=1, max_length=MAX_NOTE_CHARS, description=(
        f"Optional, at most {MAX_NOTE_CHARS} characters on one line: a few words for the service's record. No names "
        "or other personal data; it is kept encrypted by intake like the referral, and never passed on."))


class ReferralWithdrawn(Event):
    """Intake recorded the withdrawal of a referral: on `referrals.withdrawn.<agency_id>` for the agency, and on
    `intake.withdrawn.<agency_id>` for scheduling, which cancels the referral's future sessions and closes its case
    (as a closure: the reason is recorded, the mentor's place freed, the case leaves the waitlist; risk then no longer
    lists it for review). An open safeguarding alert about the young person stays open for the safeguarding lead."""

    referral_id: str = Field(description="Our id for the referral.")
    agency_id: str = Field(description="The agency that withdrew it (the last token of the subject).")
    agency_referral_id: str = Field(description="The agency's own id for the referral.")
    reason: WithdrawalReason = Field(description="The reason the agency gave (the note stays with intake).")
    withdrawn_at: AwareDatetime = Field(description="When intake first recorded the withdrawal.")
    duplicate: bool = Field(default=False, description=(
        "True when the referral was already withdrawn (a repeat of the withdrawal): nothing changed, and "
        "`reason` and `withdrawn_at` are those first recorded."))


def age_band(age_years: int) -> str:
    """Coarse age band shared with downstream services instead of a birth date."""
    if age_years <= 13:
        return "10-13"
    if age_years <= 15:
        return "14-15"
    if age_years <= 17:
        return "16-17"
    if age_years <= 21:
        return "18-21"
    return "22+"


__all__ = [
    "ACCEPTED_SCHEMA_VERSION",
    "Consent",
    "EqualityMonitoring",
    "FieldError",
    "Indicator",
    "PersonFacts",
    "Preferences",
    "PreviousReferrals",
    "Referral",
    "ReferralAccepted",
    "ReferralRecorded",
    "ReferralRejected",
    "ReferralWithdrawn",
    "Referrer",
    "Withdrawal",
    "YoungPerson",
    "age_band",
]
