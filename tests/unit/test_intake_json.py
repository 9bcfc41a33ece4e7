"""Bodies that would escape json.loads as an unexpected error are refused with a reason, never echoed."""

from __future__ import annotations

import re

import pytest

from services.intake.validation import NotJson, load_json, validate_referral


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" * 5000 + b"]" * 5000, "nests arrays or objects too deeply"),
    (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "nests arrays or objects too deeply"),
    (b'{"prior_proven_offences": ' + b"9" * 5000 + b"}", "a number has too many digits"),
    (b"\xff\xfe\x00", "not valid JSON: it is not UTF-8 text"),
    (b"{not json", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b'{"reason": "unfinished', "not valid JSON: Unterminated string starting at line 1 column 12$"),
    (b'{"reason": "a\x01"}', "not valid JSON: Invalid control character at line 1 column 14$"),
    # json.loads reads these as numbers; JSON has no such literals (RFC 8259), and no schema-checking agency sends them
    (b'{"prior_proven_offences": NaN}', "not valid JSON: NaN and Infinity are not JSON numbers$"),
    (b'{"prior_proven_offences": Infinity}', "not valid JSON: NaN and Infinity are not JSON numbers$"),
    (b'{"age_at_first_proven_offence": -Infinity}', "not valid JSON: NaN and Infinity are not JSON numbers$"),
])
def test_a_body_that_is_not_json_we_read_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(NotJson, match=reason):
        load_json(body)
    errors = validate_referral(body)
    assert isinstance(errors, list) and re.search(reason, errors[0].message)
    assert " at at " not in errors[0].message
    assert "999" not in errors[0].message, "the rejected value is never echoed"


def test_ordinary_json_still_parses() -> None:
    assert load_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
