"""Reading referral files for `reroute submit`: JSON list, NDJSON and CSV with its documented columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.cli.client import CliError
from apps.cli.referral_files import CSV_COLUMNS, csv_column, read_referrals, referrals_from_csv
from services.intake.validation import validate_referral
from shared.contracts.intake import Referral

HEADER = ("agency_referral_id,given_name,family_name,date_of_birth,gender,borough,languages,referrer_name,"
          "referrer_role,referrer_email,consent_given,consent_recorded_at,reason,indicators,availability,"
          "prior_proven_offences,preferred_mentor_gender,unsafe_areas")
GOOD = ('R1,Jordan,Testperson,2010-05-17,male,hackney,en; so,Sam Ref,YOT officer,sam@example.org,yes,'
        '2026-11-20T10:00:00+00:00,"Worried, about peers",peers_offending; weapon_carrying@2026-10-01,'
        'mon 16:00-19:00; Sat 9:30-12:00,2,female,Dalston Junction; Ridley Road')


def test_a_good_csv_row_becomes_a_valid_referral() -> None:
    (row,) = referrals_from_csv(f"{HEADER}\n{GOOD}\n")

    assert row.number == 2 and row.body is not None and not row.problems
    referral = validate_referral(row.body)
    assert isinstance(referral, Referral), referral
    assert referral.young_person.languages == ["en", "so"]
    assert referral.reason == "Worried, about peers"
    assert [(i.code, str(i.observed_at)) for i in referral.indicators] == [
        ("peers_offending", "None"), ("weapon_carrying", "2026-10-01")]
    assert [(w.day, w.start, w.end) for w in referral.availability] == [("mon", "16:00", "19:00"),
                                                                         ("sat", "09:30", "12:00")]
    assert referral.prior_proven_offences == 2 and referral.preferences.mentor_gender == "female"
    assert referral.unsafe_areas == ["Dalston Junction", "Ridley Road"]


@pytest.mark.parametrize(("change", "field", "message"), [
    (("prior_proven_offences", ",2,female", ",two,female"), "prior_proven_offences", "'two' is not a whole number"),
    (("consent_given", "yes", "maybe"), "consent_given", "true or false"),
    (("availability", "mon 16:00-19:00; Sat 9:30-12:00", "evenings"), "availability", "'evenings' is not a window"),
])
def test_a_row_that_cannot_be_converted_carries_its_row_number_and_reason_and_no_body(
    change: tuple[str, str, str], field: str, message: str
) -> None:
    _, old, new = change
    rows = referrals_from_csv(f"{HEADER}\n{GOOD}\n{GOOD.replace(old, new, 1).replace('R1', 'R2', 1)}\n{GOOD}\n")

    assert [r.number for r in rows] == [2, 3, 4]
    bad = rows[1]
    assert bad.body is None and bad.agency_referral_id == "R2"
    assert any(p["field"] == field and message in p["message"] for p in bad.problems), bad.problems
    assert rows[0].body is not None and rows[2].body is not None, "the rows around it are still sent"


def test_a_row_reports_every_problem_at_once_by_column() -> None:
    """A row that cannot be converted also gets what the contract says of its other cells, so the person fixes
    the row once, not once per problem."""
    bad = GOOD.replace(",2,female", ",two,female").replace("hackney", "Atlantis").replace("2010-05-17", "17/05/2010")
    (row,) = referrals_from_csv(f"{HEADER}\n{bad}\n")

    assert row.body is None
    fields = [p["field"] for p in row.problems]
    assert fields[0] == "prior_proven_offences" and {"borough", "date_of_birth"} <= set(fields), row.problems
    assert not [f for f in fields if "." in f or "[" in f], "columns, not JSON paths"


@pytest.mark.parametrize(("field", "column"), [
    ("young_person.borough", "borough"), ("young_person.languages[1]", "languages"), ("indicators[2].code", "indicators"),
    ("consent.given", "consent_given"), ("availability[0]", "availability"), ("referrer", "referrer_email or referrer_phone"),
    ("equality_monitoring.religion", "religion"), ("", ""), ("body", "body"),
])
def test_intakes_field_paths_map_back_to_the_csv_columns(field: str, column: str) -> None:
    assert csv_column(field) == column


def test_a_row_with_too_many_cells_is_not_sent() -> None:
    (row,) = referrals_from_csv(f"{HEADER}\n{GOOD},extra\n")
    assert row.body is None and "more cells" in row.problems[0]["message"]


def test_empty_cells_are_left_out_so_intake_names_what_is_missing() -> None:
    (row,) = referrals_from_csv(f"{HEADER}\n{GOOD.replace('Jordan', '', 1)}\n")
    assert row.body is not None
    errors = validate_referral(row.body)
    assert isinstance(errors, list) and errors[0].field == "young_person.given_name"


@pytest.mark.parametrize(("header", "message"), [
    (HEADER + ",ethnicity_code", "unknown column(s) ethnicity_code"),
    (HEADER.replace("given_name,", ""), "missing column(s) given_name"),
    (HEADER.replace("referrer_email,", ""), "referrer_email or referrer_phone"),
    ("", "empty CSV"),
])
def test_a_wrong_header_stops_before_anything_is_sent(header: str, message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        referrals_from_csv(f"{header}\n")


def test_every_documented_column_is_known() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for column in CSV_COLUMNS:
        assert f"`{column}`" in readme, f"README.md does not document the CSV column {column}"


def test_json_lists_and_ndjson_are_read_item_by_item(tmp_path: Path) -> None:
    listed, lines = tmp_path / "a.json", tmp_path / "b.ndjson"
    listed.write_text(json.dumps([{"agency_referral_id": "A"}, [1]]))
    lines.write_text('{"agency_referral_id": "A"}\n\n{not json\n')

    assert [(r.number, r.body) for r in read_referrals(listed)] == [(1, b'{"agency_referral_id": "A"}'), (2, b"[1]")]
    assert [(r.number, r.body) for r in read_referrals(lines)] == [(1, b'{"agency_referral_id": "A"}'),
                                                                   (2, b"{not json")]
