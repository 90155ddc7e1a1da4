"""Backtest statistics for a margin model: coverage tests and the Basel traffic light.

- Kupiec's proportion-of-failures test (1995): is the exception rate p = 1 - alpha?
  LR_pof = -2 ln[(1-p)^(N-x) p^x] + 2 ln[(1-x/N)^(N-x) (x/N)^x], chi-square(1).
- Christoffersen's independence test (1998): does an exception make the next one more
  likely? LR_ind compares a two-state Markov chain of exceptions with independent draws,
  chi-square(1); LR_cc = LR_pof + LR_ind, chi-square(2). Consecutive h-day losses overlap by
  h - 1 days and are dependent by construction, so these run on non-overlapping windows.
- Basel traffic light (BCBS 1996, for 99% over 250 days): green while the number of
  exceptions is one that a correct model exceeds with probability above 5%, red from 0.01%:
  green 0-4, yellow 5-9, red 10+ for 250 observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

BoolArray = npt.NDArray[np.bool_]


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0.0 else x * math.log(y)


@dataclass(frozen=True)
class Kupiec:
    """Kupiec's proportion-of-failures test."""

    statistic: float
    """LR_pof."""
    p_value: float
    """P(chi-square(1) > LR_pof)."""


def kupiec(observations: int, exceptions: int, probability: float) -> Kupiec:
    """Kupiec POF for `exceptions` out of `observations` at exception probability `probability`."""
    n, x = float(observations), float(exceptions)
    if observations == 0:
        return Kupiec(statistic=0.0, p_value=1.0)
    observed = x / n
    null = _xlogy(n - x, 1.0 - probability) + _xlogy(x, probability)
    alternative = _xlogy(n - x, 1.0 - observed) + _xlogy(x, observed)
    statistic = max(0.0, -2.0 * (null - alternative))
    return Kupiec(statistic=statistic, p_value=float(scipy_stats.chi2.sf(statistic, 1)))


@dataclass(frozen=True)
class Christoffersen:
    """Christoffersen's independence and conditional-coverage tests."""

    observations: int
    """Non-overlapping windows tested."""
    exceptions: int
    """Exceptions among them."""
    independence: float
    """LR_ind."""
    independence_p_value: float
    """P(chi-square(1) > LR_ind)."""
    conditional_coverage: float
    """LR_cc = LR_pof + LR_ind."""
    conditional_coverage_p_value: float
    """P(chi-square(2) > LR_cc)."""


def christoffersen(sequences: Sequence[BoolArray], probability: float) -> Christoffersen:
    """Both tests on exception sequences (one per account), transitions counted within each."""
    n00 = n01 = n10 = n11 = 0
    total = hits = 0
    for sequence in sequences:
        values = np.asarray(sequence, dtype=bool)
        total += int(values.size)
        hits += int(values.sum())
        before, after = values[:-1], values[1:]
        n00 += int(np.sum(~before & ~after))
        n01 += int(np.sum(~before & after))
        n10 += int(np.sum(before & ~after))
        n11 += int(np.sum(before & after))
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11) if n00 + n01 + n10 + n11 else 0.0
    null = _xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
    alternative = _xlogy(n00, 1.0 - pi0) + _xlogy(n01, pi0) + _xlogy(n10, 1.0 - pi1) + _xlogy(n11, pi1)
    independence = max(0.0, -2.0 * (null - alternative))
    coverage = kupiec(total, hits, probability).statistic + independence
    return Christoffersen(
        observations=total,
        exceptions=hits,
        independence=independence,
        independence_p_value=float(scipy_stats.chi2.sf(independence, 1)),
        conditional_coverage=coverage,
        conditional_coverage_p_value=float(scipy_stats.chi2.sf(coverage, 2)),
    )


def traffic_light_zone(exceptions: int, observations: int, probability: float) -> str:
    """"green", "yellow" or "red" for `exceptions` in a window of `observations`."""
    cumulative = float(scipy_stats.binom.cdf(exceptions, observations, probability))
    if cumulative < 0.95:
        return "green"
    if cumulative < 0.9999:
        return "yellow"
    return "red"


@dataclass(frozen=True)
class DieboldMariano:
    """Diebold-Mariano test of equal predictive accuracy."""

    statistic: float
    """mean(d) / sqrt(long-run variance of d / n), d = loss of the benchmark - loss of the model:
    positive when the model's losses are smaller."""
    p_value: float
    """Two-sided, against the standard normal."""
    lags: int
    """Newey-West (Bartlett) lags used for the long-run variance."""


def diebold_mariano(benchmark_loss: npt.NDArray[np.float64], model_loss: npt.NDArray[np.float64], horizon: int) -> DieboldMariano:
    """DM test of two loss series on the same days (Diebold and Mariano 1995).

    Forecasts of h-day variance made on consecutive days overlap by h - 1 days, and volatility
    losses are persistent besides, so the long-run variance is Newey-West's with Bartlett
    weights and max(h - 1, floor(4 (n / 100)^(2/9))) lags, not the h - 1 rectangular lags of
    the original test (which understates the variance of persistent losses and over-rejects).
    """
    d = np.asarray(benchmark_loss, dtype=np.float64) - np.asarray(model_loss, dtype=np.float64)
    n = int(d.size)
    if n < 2:
        return DieboldMariano(statistic=0.0, p_value=1.0, lags=0)
    lags = max(horizon - 1, int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))))
    lags = min(lags, n - 1)
    centred = d - d.mean()
    variance = float(np.dot(centred, centred)) / n
    for lag in range(1, lags + 1):
        weight = 1.0 - lag / (lags + 1.0)
        variance += 2.0 * weight * float(np.dot(centred[lag:], centred[:-lag])) / n
    if not variance > 0.0:
        return DieboldMariano(statistic=0.0, p_value=1.0, lags=lags)
    statistic = float(d.mean()) / math.sqrt(variance / n)
    return DieboldMariano(statistic=statistic, p_value=float(2.0 * scipy_stats.norm.sf(abs(statistic))), lags=lags)


def qlike(realised: npt.NDArray[np.float64], forecast: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """QLIKE loss per day, in Patton's (2011) form ln F + RV / F: robust to a noisy proxy of the
    variance, defined when RV = 0, and equal to RV/F - ln(RV/F) - 1 up to a term in RV alone
    (so differences between forecasters, and DM tests on them, are the same)."""
    loss: npt.NDArray[np.float64] = np.log(forecast) + realised / forecast
    return loss
