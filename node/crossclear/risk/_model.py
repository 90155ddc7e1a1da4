"""The v2 ("fhs") methodology's data: its parameters, a price history and its results.

Positions, instruments and the market are v1's (`crossclear.margin`); v2 only adds how the
scenarios are made and how the portfolio requirement is read off them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from crossclear.margin._model import FloatArray
from crossclear.risk.forecast import ForecastSettings


@dataclass(frozen=True)
class StressScenario:
    """A named move of some underlyings, charged at a weight."""

    name: str
    """Label shown in reports."""
    returns: tuple[tuple[str, float], ...]
    """(underlying, h-day log return) pairs; underlyings not named do not move."""
    weight: float
    """The scenario's loss is multiplied by this before it is compared with ES."""


@dataclass(frozen=True)
class FhsParams:
    """Parameters of the v2 methodology; a RISK file's `params` overrides any of them."""

    fhs_lambda: float = 0.94
    """EWMA decay of the variance filter (0 < lambda < 1)."""
    fhs_confidence: float = 0.99
    """ES confidence alpha: the tail is the worst (1 - alpha) of the scenarios."""
    fhs_lookback_days: int = 1000
    """L: historical scenarios (daily returns) used; the history needs L + 1 closes."""
    fhs_mpor_days: int = 2
    """h: margin period of risk in days; daily scenarios are scaled by sqrt(h)."""
    apc_vol_floor: bool = True
    """Floor today's volatility forecast at the lookback's plain volatility."""
    stress_scenarios: tuple[StressScenario, ...] = ()
    """Extra named scenarios; the requirement is at least the worst weighted stress loss."""
    fhs_forecaster: str = "ewma"
    """Who supplies today's volatility in step 4: "ewma" (the filter itself, v2 as defined),
    "gjr_garch", "har" or "lightgbm" (crossclear.risk.forecast; the floor still applies)."""
    forecast_window_days: int = 2500
    """Returns a forecaster is fitted on (the last ones before its anchor)."""
    forecast_refit_days: int = 21
    """Days (in the node: certified daily closes) between fits of the forecaster."""

    @property
    def tail_count(self) -> int:
        """k = ceil((1 - alpha) * L), exactly.

        alpha is taken as the decimal it was written as (the shortest repr of the float), so
        1% of 1,000 scenarios is 10, not the 11 that (1 - 0.99) * 1000 = 10.000000000000009
        would give in binary floating point.
        """
        alpha = Fraction(repr(self.fhs_confidence))
        return max(1, math.ceil((1 - alpha) * self.fhs_lookback_days))

    def forecast_settings(self) -> ForecastSettings:
        """What the forecasters need from these parameters."""
        return ForecastSettings(
            horizon=self.fhs_mpor_days, ewma_lambda=self.fhs_lambda, ewma_lookback=self.fhs_lookback_days,
            window=self.forecast_window_days, refit_every=self.forecast_refit_days,
        )


#: RISK `params` keys v2 adds to v1's.
FHS_PARAM_NAMES = (
    "fhs_lambda", "fhs_confidence", "fhs_lookback_days", "fhs_mpor_days", "apc_vol_floor", "stress_scenarios",
    "fhs_forecaster", "forecast_window_days", "forecast_refit_days",
)


@dataclass(frozen=True)
class History:
    """Daily closes of some underlyings on common dates, oldest first."""

    dates: tuple[str, ...]
    """ISO dates (YYYY-MM-DD), strictly increasing."""
    names: tuple[str, ...]
    """Underlying of each column."""
    closes: FloatArray
    """days x underlyings, every value finite and positive."""

    def column(self, name: str) -> int:
        """Index of `name`'s column."""
        return self.names.index(name)


@dataclass(frozen=True)
class EsResult:
    """Per-account v2 figures; row k belongs to account k of the book."""

    es: FloatArray
    """Expected shortfall: mean of the k largest scenario losses."""
    stress: FloatArray
    """Largest weighted stress-scenario loss (0 without stress scenarios)."""
    mm: FloatArray
    """Portfolio maintenance margin: max(0, es, stress)."""
    im: FloatArray
    """Portfolio initial margin: im_multiplier x mm."""
    required: FloatArray
    """Collateral the portfolio mode requires: max(0, im - upnl)."""
    upnl: FloatArray
    """Sum of unrealised P&L over positions (as in v1)."""

    @staticmethod
    def empty(account_count: int) -> EsResult:
        """Zeroed result arrays for `account_count` accounts."""
        return EsResult(*(np.zeros(account_count) for _ in range(6)))

    def rows(self, start: int, stop: int) -> EsResult:
        """Views of rows start:stop (writing them writes this result)."""
        return EsResult(
            es=self.es[start:stop],
            stress=self.stress[start:stop],
            mm=self.mm[start:stop],
            im=self.im[start:stop],
            required=self.required[start:stop],
            upnl=self.upnl[start:stop],
        )
