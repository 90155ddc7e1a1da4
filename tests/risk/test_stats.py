"""Backtest statistics against their definitions and the Basel table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from crossclear.risk.stats import christoffersen, kupiec, traffic_light_zone


@pytest.mark.parametrize(("observations", "exceptions"), [(250, 0), (250, 2), (250, 10), (5000, 83), (1000, 1000)])
def test_kupiec_is_the_binomial_likelihood_ratio(observations: int, exceptions: int) -> None:
    observed = exceptions / observations
    expected = 2.0 * (stats.binom.logpmf(exceptions, observations, observed) - stats.binom.logpmf(exceptions, observations, 0.01))
    result = kupiec(observations, exceptions, 0.01)
    assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-9, abs=1e-12)


def test_christoffersen_counts_transitions_within_each_account() -> None:
    first = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    second = np.array([1, 0, 0, 0, 0], dtype=bool)
    result = christoffersen([first, second], 0.05)
    # Transitions: first has 00 x4, 01 x2, 10 x2, 11 x1; second has 10 x1, 00 x3 (none across accounts).
    n00, n01, n10, n11 = 7, 2, 3, 1
    pi0, pi1, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 13
    likelihood = lambda a, b, p: a * math.log(1 - p) + b * math.log(p)  # noqa: E731
    independence = -2 * (likelihood(n00 + n10, n01 + n11, pi) - likelihood(n00, n01, pi0) - likelihood(n10, n11, pi1))
    assert result.observations == 15 and result.exceptions == 4
    assert result.independence == pytest.approx(independence, rel=1e-12)
    assert result.conditional_coverage == pytest.approx(independence + kupiec(15, 4, 0.05).statistic, rel=1e-12)


def test_basel_traffic_light_for_250_days_at_99() -> None:
    zones = [traffic_light_zone(count, 250, 0.01) for count in range(13)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 3
