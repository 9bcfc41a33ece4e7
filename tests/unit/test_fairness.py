"""The fairness audit: rates by equality-monitoring group, flags at the threshold, small counts suppressed."""

from __future__ import annotations

import pytest

from services.intake.fairness import AuditRow, OverrideKind, audit
from shared.contracts.codes import Tier

LOW, MEDIUM, HIGH, VERY_HIGH = Tier.LOW, Tier.MEDIUM, Tier.HIGH, Tier.VERY_HIGH


# ---- equality audit --------------------------------------------------------------------------------------------


def rows(n: int, group: str, *, high: int = 0, up: int = 0, down: int = 0, name: str = "ethnicity") -> list[AuditRow]:
    """n cases in one group: the first `high` at high, then `up` up-overrides and `down` down-overrides."""
    out: list[AuditRow] = []
    for i in range(n):
        override: OverrideKind | None = "up" if i < up else "down" if i < up + down else None
        out.append(AuditRow(tier=HIGH if i < high else LOW, override=override, groups={name: group}))
    return out


@pytest.mark.parametrize(
    ("a_high", "flagged", "ratio"),
    [
        (5, True, 1.25),  # 50% against 40%: exactly the threshold
        (4, False, 1.0),
        (6, True, 1.5),
    ],
)
def test_audit_flags_a_group_at_the_threshold(a_high: int, flagged: bool, ratio: float) -> None:
    report = audit(rows(10, "A", high=a_high) + rows(10, "B", high=4))
    a = next(s for s in report.groups["ethnicity"] if s.group == "A")
    assert a.size == 10 and a.comparable
    assert a.rates["high_or_very_high"].ratio == ratio
    assert a.rates["high_or_very_high"].share == a_high / 10
    assert a.flagged is flagged
    assert a.flags == (["high_or_very_high"] if flagged else [])


def test_audit_ratio_just_under_the_threshold_is_not_flagged() -> None:
    # 50% against 41/100 = 1.2195...
    report = audit(rows(10, "A", high=5) + rows(100, "B", high=41))
    a = next(s for s in report.groups["ethnicity"] if s.group == "A")
    assert a.rates["high_or_very_high"].ratio == pytest.approx(0.5 / 0.41)
    assert not a.flagged


def test_audit_flags_override_rates_too() -> None:
    report = audit(rows(20, "A", up=6, down=0) + rows(20, "B", up=2, down=5))
    a, b = report.groups["ethnicity"]
    assert (a.group, a.flags) == ("A", ["override_up"])
    assert a.rates["override_up"].ratio == 3.0
    assert (b.group, b.flags) == ("B", ["override_down"])
    assert b.rates["override_down"].ratio == float("inf")
    assert report.overrides == {"up": 8, "down": 5, "confirm": 0, "none": 27}


@pytest.mark.parametrize(
    ("sizes", "comparable"),
    [
        ({"A": 9, "B": 30}, {"A": False, "B": False}),  # B's only comparison is the 9 in A
        ({"A": 9, "B": 30, "C": 10}, {"A": False, "B": True, "C": True}),
        ({"A": 10, "B": 10}, {"A": True, "B": True}),
        ({"A": 40}, {"A": False}),  # nobody else to compare with
    ],
)
def test_audit_too_few_to_compare_is_never_flagged(sizes: dict[str, int], comparable: dict[str, bool]) -> None:
    report = audit([row for group, n in sizes.items() for row in rows(n, group, high=n if group == "A" else 1)])
    stats = {s.group: s for s in report.groups["ethnicity"]}
    assert {group: stat.comparable for group, stat in stats.items()} == comparable
    for stat in stats.values():
        if not stat.comparable:
            assert not stat.flagged
            assert all(rate.ratio is None for rate in stat.rates.values())
    assert stats["A"].flagged is comparable["A"]  # everyone in A is high: flagged whenever it can be compared


def test_audit_counts_only_those_who_answered_a_field() -> None:
    data = rows(10, "A", high=5) + rows(10, "B", high=4)
    data += [
        AuditRow(tier=VERY_HIGH, override=None),
        AuditRow(tier=HIGH, override="confirm", groups={"ethnicity": " "}),
    ]
    data += rows(12, "female", name="gender")
    report = audit(data)
    assert report.total == 34
    assert report.recorded == {"ethnicity": 20, "gender": 12}
    assert report.tiers == {LOW: 23, MEDIUM: 0, HIGH: 10, VERY_HIGH: 1}
    assert [s.group for s in report.groups["gender"]] == ["female"]
    assert not report.groups["gender"][0].comparable  # nobody else answered


def test_audit_lines_suppress_small_counts_and_name_the_flags() -> None:
    report = audit(rows(20, "Black", high=10, down=3) + rows(30, "White", high=6, down=6) + rows(3, "Mixed", high=3))
    lines = report.lines()
    assert lines[0] == (
        "Equality audit of 53 assessments (flag at 1.25× the others; groups under 10 too few to compare; "
        "counts under 5 shown as <5)"
    )
    assert lines[1] == "Tiers: low 34 (64%), medium <5, high 19 (36%), very_high <5"
    assert lines[2] == "Reviews: up <5, down 9 (17%), confirm <5, none 44 (83%)"
    assert lines[3] == "ethnicity (answered for 53):"
    assert lines[4] == (
        "  White: 30 people; high or very high 6 (20%, 0.35× the others); up-overrides <5; "
        "down-overrides 6 (20%, 1.53× the others) — FLAGGED: down-overrides"
    )
    assert lines[5] == (
        "  Black: 20 people; high or very high 10 (50%, 1.83× the others); up-overrides <5; down-overrides <5"
        " — FLAGGED: high or very high"
    )
    assert lines[6] == "  Mixed: too few to compare (<5 people)"
    assert lines[7] == (
        "2 group(s) flagged for a human review: ethnicity White (down-overrides); ethnicity Black (high or very high)"
    )


def test_audit_with_no_monitoring_data() -> None:
    report = audit([AuditRow(tier=LOW, override=None)] * 12)
    assert report.groups == {} and report.flagged == []
    assert report.lines()[-1] == "No group flagged."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"min_group_size": 0}, "min_group_size"), ({"ratio_threshold": 1.0}, "ratio_threshold must be above 1")],
)
def test_audit_refuses_settings_that_make_no_sense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        audit([], **kwargs)  # type: ignore[arg-type]


def test_audit_row_refuses_an_unknown_override() -> None:
    with pytest.raises(ValueError, match="not one of up, down, confirm"):
        AuditRow(tier=LOW, override="sideways")  # type: ignore[arg-type]
