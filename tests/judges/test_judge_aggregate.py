"""The METRICS.md section-2 aggregation and the section-1 YES/NO rule, on hand-computed distributions."""

import math

import pytest

from dynamics.judges.aggregate import aggregate_0_100, number_value, parse_yes_no


def lp(p: float) -> float:
    return math.log(p)


def test_exact_weighted_mean_above_cutoff():
    top = [("80", lp(0.5)), ("90", lp(0.3)), ("Sure", lp(0.15)), ("100", lp(0.05))]
    score, mass = aggregate_0_100(top)
    assert mass == pytest.approx(0.85)
    assert score == pytest.approx((80 * 0.5 + 90 * 0.3 + 100 * 0.05) / 0.85, rel=1e-12)


def test_none_below_quarter_mass_and_mass_still_reported():
    top = [("CODE", lp(0.8)), ("7", lp(0.1)), ("3", lp(0.1))]
    score, mass = aggregate_0_100(top)
    assert score is None
    assert mass == pytest.approx(0.2)


def test_boundary_exactly_quarter_is_scored():
    # The authors' rule is `total < 0.25 -> None`: a mass of exactly 0.25 is scored, the next float
    # below it is not. (exp(log(0.25)) is exactly 0.25 in IEEE doubles; checked by the first assert.)
    top = [("30", math.log(0.25)), ("REFUSAL", math.log(0.75))]
    score, mass = aggregate_0_100(top)
    assert mass == 0.25
    assert score == 30.0
    just_below = [("30", math.nextafter(math.log(0.25), -math.inf)), ("REFUSAL", math.log(0.75))]
    score, mass = aggregate_0_100(just_below)
    assert mass < 0.25 and mass == pytest.approx(0.25) and score is None


def test_min_mass_is_configurable():
    top = [("10", lp(0.1))]
    assert aggregate_0_100(top)[0] is None
    assert aggregate_0_100(top, min_mass=0.05)[0] == pytest.approx(10.0)


def test_tokens_outside_range_or_not_integers_are_ignored():
    top = [
        ("50", lp(0.4)),
        ("101", lp(0.1)),
        ("-5", lp(0.1)),
        ("7.5", lp(0.1)),
        ("fifty", lp(0.1)),
        ("", lp(0.05)),
        ("1e2", lp(0.05)),
    ]
    score, mass = aggregate_0_100(top)
    assert mass == pytest.approx(0.4)
    assert score == pytest.approx(50.0)


def test_int_rule_of_the_authors_whitespace_and_leading_zeros():
    # `int(token)`: surrounding whitespace stripped, leading zeros and a sign accepted.
    assert number_value(" 7") == 7
    assert number_value("07") == 7
    assert number_value("7\n") == 7
    assert number_value("+7") == 7
    assert number_value("-0") == 0
    assert number_value("0") == 0 and number_value("100") == 100
    assert number_value("101") is None and number_value("-1") is None
    top = [(" 60", lp(0.5)), ("070", lp(0.5))]
    assert aggregate_0_100(top) == (pytest.approx(65.0), pytest.approx(1.0))


def test_zero_score_is_a_score_not_missing():
    score, mass = aggregate_0_100([("0", lp(0.99))])
    assert score == 0.0 and mass == pytest.approx(0.99)


def test_empty_and_nan_inputs():
    assert aggregate_0_100([]) == (None, 0.0)
    score, mass = aggregate_0_100([("40", float("nan")), ("60", lp(0.5))])
    assert score == pytest.approx(60.0) and mass == pytest.approx(0.5)
    assert aggregate_0_100([("40", float("-inf"))], min_mass=0.0) == (None, 0.0)


@pytest.mark.parametrize(
    "text, expected",
    [("YES", "YES"), ("NO", "NO"), (" YES\n", "YES"), ("yes", None), ("Yes", None), ("YES.", None),
     ("YES, because", None), ("NO NO", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_yes_no_exact(text, expected):
    assert parse_yes_no(text) == expected
