"""Seeded synthetic crypto price paths, calibrated to the figures in docs/risk-v2.md.

No package ships daily BTC or ETH closes, so backtests of crypto books run on paths from
this generator. Each day, for every underlying u:

    r_u,t = m_t * sigma_u,t * e_u,t  +  J_t * beta_u
    sigma_u,t^2 = omega_u + a * (sigma_u,t-1 e_u,t-1)^2 + b * sigma_u,t-1^2      (GARCH(1,1))

- e_t: unit-variance multivariate Student-t (nu degrees of freedom, correlation C): one
  chi-square draw per day shared by every underlying, so they have fat tails *together*;
- m_t: a two-state regime (calm 1, stress `stress_vol_multiplier`), a Markov chain;
- J_t: Merton jumps, common to every underlying (a crash hits all of crypto at once) and
  scaled by each underlying's beta: Poisson(intensity) jumps of Normal(mean, sd) log size,
  more often and larger in the stress regime.

The same seed gives the same path on every machine (numpy's PCG64 and only IEEE arithmetic).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from crossclear.margin._model import FloatArray
from crossclear.risk._model import History


@dataclass(frozen=True)
class Underlying:
    """One synthetic underlying."""

    name: str
    """Column name in the HISTORY file."""
    start_price: float
    """Close on the first day."""
    daily_vol: float
    """Long-run daily volatility of the diffusion part (before jumps and regimes)."""
    jump_beta: float
    """Multiplier on the common jump: how hard a crypto crash hits this underlying."""


@dataclass(frozen=True)
class CryptoModel:
    """Parameters of the generator; the defaults are the calibrated ones."""

    underlyings: tuple[Underlying, ...] = (
        Underlying("BTC", 30_000.0, 0.034, 1.0),
        Underlying("ETH", 2_000.0, 0.050, 1.25),
        Underlying("SOL", 100.0, 0.060, 1.5),
    )
    """Underlyings, in column order."""
    correlation: tuple[tuple[float, ...], ...] = ((1.0, 0.8, 0.7), (0.8, 1.0, 0.75), (0.7, 0.75, 1.0))
    """Correlation of the diffusion innovations."""
    garch_alpha: float = 0.10
    """GARCH reaction to yesterday's squared shock."""
    garch_beta: float = 0.86
    """GARCH persistence of yesterday's variance."""
    student_nu: float = 4.0
    """Degrees of freedom of the innovations (> 2)."""
    stress_enter: float = 1.0 / 400.0
    """Daily probability that a calm market turns stressed."""
    stress_leave: float = 1.0 / 25.0
    """Daily probability that a stressed market calms down."""
    stress_vol_multiplier: float = 2.0
    """Diffusion volatility is multiplied by this in the stress regime."""
    jump_intensity: tuple[float, float] = (1.0 / 200.0, 1.0 / 12.0)
    """Expected jumps per day, (calm, stress)."""
    jump_mean: tuple[float, float] = (-0.03, -0.14)
    """Mean log size of a jump for beta 1, (calm, stress)."""
    jump_sd: tuple[float, float] = (0.06, 0.12)
    """Standard deviation of a jump's log size for beta 1, (calm, stress)."""


@dataclass(frozen=True)
class CryptoPath:
    """A generated path."""

    history: History
    """Daily closes, one column per underlying."""
    stressed: np.ndarray = field(repr=False)
    """1 on days in the stress regime."""


def _calendar(days: int, first: datetime.date) -> tuple[str, ...]:
    # Crypto trades every day, so the calendar has no weekends or holidays.
    return tuple((first + datetime.timedelta(days=day)).isoformat() for day in range(days))


def generate(days: int, seed: int, model: CryptoModel = CryptoModel(), first_date: datetime.date = datetime.date(2016, 1, 1)) -> CryptoPath:
    """`days` daily closes of every underlying of `model`, from `seed`."""
    rng = np.random.default_rng(seed)
    count = len(model.underlyings)
    cholesky = np.linalg.cholesky(np.array(model.correlation))
    beta = np.array([u.jump_beta for u in model.underlyings])
    long_run = np.array([u.daily_vol for u in model.underlyings]) ** 2
    omega = long_run * (1.0 - model.garch_alpha - model.garch_beta)
    nu = model.student_nu
    # Draw everything up front (fixed order of draws: the path depends on the seed alone).
    normals = rng.standard_normal((days, count)) @ cholesky.T
    mixing = np.sqrt((nu - 2.0) / rng.chisquare(nu, days))
    regime_draws = rng.random(days)
    jump_uniform = rng.random(days)
    jump_normals = rng.standard_normal((days, 4))

    log_returns = np.zeros((days, count))
    stressed = np.zeros(days, dtype=np.uint8)
    variance = long_run.copy()
    shock = np.zeros(count)
    stress = False
    for day in range(1, days):
        stress = (regime_draws[day] >= model.stress_leave) if stress else (regime_draws[day] < model.stress_enter)
        state = 1 if stress else 0
        stressed[day] = state
        variance = omega + model.garch_alpha * shock**2 + model.garch_beta * variance
        # The GARCH recursion sees the calm-scale shock: feeding the regime's multiplier back
        # into it would make the variance explode (a * m^2 + b > 1) during a long stress spell.
        shock = np.sqrt(variance) * mixing[day] * normals[day]
        multiplier = model.stress_vol_multiplier if stress else 1.0
        # At most a few jumps a day: Poisson by inversion on one uniform, capped at 4.
        jumps = int(np.searchsorted(np.cumsum(_poisson_pmf(model.jump_intensity[state], 4)), jump_uniform[day]))
        jump = float(np.sum(model.jump_mean[state] + model.jump_sd[state] * jump_normals[day, : min(jumps, 4)]))
        log_returns[day] = multiplier * shock + jump * beta
    starts = np.array([u.start_price for u in model.underlyings])
    closes: FloatArray = starts[None, :] * np.exp(np.cumsum(log_returns, axis=0))
    names = tuple(u.name for u in model.underlyings)
    return CryptoPath(history=History(dates=_calendar(days, first_date), names=names, closes=closes), stressed=stressed)


def _poisson_pmf(intensity: float, largest: int) -> FloatArray:
    counts = np.arange(largest + 1)
    factorials = np.cumprod(np.maximum(counts, 1))
    pmf: FloatArray = np.exp(-intensity) * intensity**counts / factorials
    return pmf


@dataclass(frozen=True)
class PathStatistics:
    """What the calibration targets are stated in."""

    daily_std: dict[str, float]
    """Standard deviation of daily log returns."""
    kurtosis: dict[str, float]
    """Kurtosis (not excess) of daily log returns; 3 for a normal distribution."""
    worst_day: dict[str, float]
    """Worst simple daily return (-0.43 is a 43% fall)."""
    correlation: dict[str, float]
    """Correlation of daily log returns, per pair "A/B"."""


def statistics(history: History) -> PathStatistics:
    """The statistics the calibration targets are checked on."""
    returns = np.diff(np.log(history.closes), axis=0)
    centred = returns - returns.mean(axis=0)
    std = centred.std(axis=0)
    kurtosis = (centred**4).mean(axis=0) / std**4
    correlation = np.corrcoef(returns.T)
    names = history.names
    return PathStatistics(
        daily_std={name: float(std[i]) for i, name in enumerate(names)},
        kurtosis={name: float(kurtosis[i]) for i, name in enumerate(names)},
        worst_day={name: float(np.expm1(returns[:, i].min())) for i, name in enumerate(names)},
        correlation={f"{a}/{b}": float(correlation[i, j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j},
    )
