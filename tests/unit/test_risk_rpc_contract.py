"""Risk's countersign and refuse requests as documented and as taken: the lowering seen, and the assessment read
with it, are required by the schema (so the AsyncAPI document says so), while a request naming none still parses,
to be refused by risk saying what to do (an older console or CLI)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from shared.contracts.codes import Tier
from shared.contracts.risk_rpc import CountersignRequest, RefuseOverrideRequest, SeenLowering


@pytest.mark.parametrize(("model", "field", "kind"), [
    (CountersignRequest, "lowering", {"$ref": "#/$defs/SeenLowering"}),
    (RefuseOverrideRequest, "lowering", {"$ref": "#/$defs/SeenLowering"}),
    (SeenLowering, "assessment_number", {"type": "integer"}),
], ids=["countersign", "refuse", "seen"])
def test_the_schema_requires_what_risk_requires(model: type[BaseModel], field: str, kind: dict[str, str]) -> None:
    schema = model.model_json_schema()
    assert field in schema["required"]
    documented = schema["properties"][field]
    assert kind.items() <= documented.items() and "default" not in documented and "anyOf" not in documented
    assert documented["description"]


def test_a_request_naming_none_still_parses_for_risk_to_refuse_it_saying_why() -> None:
    assert CountersignRequest.model_validate({"referral_id": "ref_1"}).lowering is None
    assert RefuseOverrideRequest.model_validate({"referral_id": "ref_1", "reason": "no"}).lowering is None
    older = SeenLowering.model_validate({"tier": "low", "requested_at": datetime(2026, 12, 7, tzinfo=UTC)})
    assert older == SeenLowering(tier=Tier.LOW, requested_at=datetime(2026, 12, 7, tzinfo=UTC), assessment_number=None)
