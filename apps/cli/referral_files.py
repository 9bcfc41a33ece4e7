"""Reading referral and mentor files for bulk commands.

Referral files are a JSON list, NDJSON (one referral per line) or CSV (`.csv`, one referral per row, with the
header documented in README.md under "CLI"). JSON items are sent as they are (intake says what is wrong with
them); a CSV row that cannot be turned into a referral is reported with its row number, with every problem the
row has (those of conversion and those the contract finds), and is not sent. Problems of CSV rows name CSV
columns, never the JSON paths they become (`csv_column`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from apps.cli.client import CliError
from shared.contracts.intake import Referral


@dataclass(frozen=True)
class ReferralRow:
    """One referral read from a file: the body to send, or why it could not be read (then it is not sent)."""

    number: int  # JSON: item/line 1, 2, ...; CSV: the spreadsheet row (the header is row 1)
    body: bytes | None
    problems: tuple[dict[str, str], ...] = ()
    agency_referral_id: str | None = None  # of a row that could not be sent, for the report


# CSV column -> where it goes in the referral body. Lists are separated by ';'.
_TEXT = {
    "agency_referral_id": ("agency_referral_id",),
    "referrer_name": ("referrer", "name"),
    "referrer_role": ("referrer", "role"),
    "referrer_email": ("referrer", "email"),
    "referrer_phone": ("referrer", "phone"),
    "given_name": ("young_person", "given_name"),
    "family_name": ("young_person", "family_name"),
    "date_of_birth": ("young_person", "date_of_birth"),
    "gender": ("young_person", "gender"),
    "borough": ("young_person", "borough"),
    "consent_recorded_at": ("consent", "recorded_at"),
    "reason": ("reason",),
    "index_offence": ("index_offence",),
    "preferred_mentor_gender": ("preferences", "mentor_gender"),
    "preferred_language": ("preferences", "language"),
    "ethnicity": ("equality_monitoring", "ethnicity"),
    "religion": ("equality_monitoring", "religion"),
    "disability": ("equality_monitoring", "disability"),
}
_LISTS = {
    "languages": ("young_person", "languages"),
    "protective_factors": ("protective_factors",),
    "unsafe_areas": ("unsafe_areas",),
    "conflict_groups": ("conflict_groups",),
}
_INTEGERS = {"prior_proven_offences": ("prior_proven_offences",),
             "age_at_first_proven_offence": ("age_at_first_proven_offence",)}
_SPECIAL = {"consent_given", "indicators", "availability"}
CSV_COLUMNS = [*_TEXT, *_LISTS, *_INTEGERS, *_SPECIAL]
CSV_REQUIRED = ["agency_referral_id", "referrer_name", "referrer_role", "given_name", "family_name", "date_of_birth",
                "gender", "borough", "languages", "consent_given", "consent_recorded_at", "reason"]
_WINDOW = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})$", re.IGNORECASE)
_YES, _NO = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}


def read_referrals(path: Path) -> list[ReferralRow]:
    """Referral bodies from a JSON list, NDJSON or CSV file."""
    text = _read(path)
    if path.suffix.lower() == ".csv":
        return referrals_from_csv(text, source=str(path))
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: not valid JSON ({exc})") from None
        return [ReferralRow(i + 1, json.dumps(item).encode()) for i, item in enumerate(items)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [ReferralRow(i + 1, line.encode()) for i, line in enumerate(lines)]


def referrals_from_csv(text: str, *, source: str = "the file") -> list[ReferralRow]:
    """One referral per row; a row that cannot be converted carries its problems instead of a body."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise CliError(f"{source}: empty CSV; the first row must name the columns (see README.md, CLI)")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise CliError(f"{source}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(CSV_COLUMNS)}")
    missing = [c for c in CSV_REQUIRED if c not in header]
    if "referrer_email" not in header and "referrer_phone" not in header:
        missing.append("referrer_email or referrer_phone")
    if missing:
        raise CliError(f"{source}: missing column(s) {', '.join(missing)}")
    reader.fieldnames = header
    rows = []
    for index, record in enumerate(reader):
        number = index + 2
        if None in record:
            problem = {"field": "", "message": f"row has more cells than the header has columns ({len(header)})"}
            rows.append(ReferralRow(number, None, (problem,)))
            continue
        body, problems = csv_row_to_referral(record)
        if problems:
            problems += _contract_problems(body, besides={p["field"] for p in problems})
        rows.append(ReferralRow(number, None if problems else json.dumps(body).encode(), tuple(problems),
                                body.get("agency_referral_id")))
    return rows


def csv_row_to_referral(row: dict[str, str | None]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The referral body of one CSV row, and what could not be converted (empty cells are left out)."""
    body: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    cells = {k: (v or "").strip() for k, v in row.items() if k is not None and (v or "").strip()}
    for column, value in cells.items():
        if column in _TEXT:
            _put(body, _TEXT[column], value)
        elif column in _LISTS:
            _put(body, _LISTS[column], _split(value))
        elif column in _INTEGERS:
            if re.fullmatch(r"-?\d+", value):
                _put(body, _INTEGERS[column], int(value))
            else:
                problems.append({"field": column, "message": f"'{value}' is not a whole number"})
        elif column == "consent_given":
            if value.lower() in _YES | _NO:
                _put(body, ("consent", "given"), value.lower() in _YES)
            else:
                problems.append({"field": column, "message": "write true or false (or yes/no)"})
        elif column == "indicators":
            body["indicators"] = [_indicator(item) for item in _split(value)]
        elif column == "availability":
            windows = []
            for item in _split(value):
                match = _WINDOW.match(item)
                if match is None:
                    problems.append({"field": column, "message": f"'{item}' is not a window like 'mon 16:00-19:00'"})
                    continue
                day, start, end = match.groups()
                windows.append({"day": day.lower(), "start": start.zfill(5), "end": end.zfill(5)})
            body["availability"] = windows
    return body, problems


_COLUMN_OF = {".".join(path): column for column, path in {**_TEXT, **_LISTS, **_INTEGERS}.items()} | {
    "consent.given": "consent_given", "indicators": "indicators", "availability": "availability",
    "referrer.email": "referrer_email or referrer_phone", "referrer": "referrer_email or referrer_phone"}


def csv_column(field: str) -> str:
    """The CSV column a referral field comes from (`young_person.languages[1]` → `languages`); a field no column
    feeds (the body as a whole, say) is returned as it is."""
    parts = [part for part in re.sub(r"\[\d+\]", "", field).split(".") if part]
    for end in range(len(parts), 0, -1):
        if (column := _COLUMN_OF.get(".".join(parts[:end]))) is not None:
            return column
    return field


def _contract_problems(body: dict[str, Any], *, besides: set[str]) -> list[dict[str, str]]:
    """What the referral contract says of a row that will not be sent anyway (its conversion failed), so the row's
    every problem is reported at once; none for a column already reported."""
    try:
        Referral.model_validate(body)
    except ValidationError as exc:
        found = {}
        for err in exc.errors():
            column = csv_column(".".join(str(part) for part in err["loc"] if not str(part).isdigit()))
            if column not in besides and column not in found:
                found[column] = {"field": column, "message": _contract_message(err)}
        return list(found.values())
    return []


def _contract_message(err: Any) -> str:
    if err["type"] == "missing":
        return "required: the cell is empty"
    return str(err["msg"]).removeprefix("Value error, ")


def _indicator(item: str) -> str | dict[str, str]:
    code, _, observed = item.partition("@")
    return {"code": code.strip(), "observed_at": observed.strip()} if observed.strip() else code.strip()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        body = body.setdefault(key, {})
    body[path[-1]] = value


def read_records(path: Path, what: str) -> list[dict[str, Any]]:
    """A YAML or JSON list of records (mentors, venues), each a mapping."""
    text = _read(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: cannot be read as {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise CliError(f"{path}: expected a list of {what}")
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text: save it as UTF-8 (CSV UTF-8 in a spreadsheet)") from None
