"""Volatility forecasters for FHS step 4, fitted walk-forward with no look-ahead.

Every forecaster answers one question: given the daily log returns of one underlying up to
the decision day d (returns[:d], where returns[i] = ln(P_(i+1) / P_i)), what is the variance
of the next h days' return, E[r_d^2 + ... + r_(d+h-1)^2]? FHS then uses
sigma* = sqrt(forecast / h) as today's daily volatility (the anti-procyclicality floor still
applies). A forecast for day d + 1 uses data up to day d only: `fit` sees the returns up to an
anchor day a <= d, `forecast` the returns up to d, and nothing later
(tests/risk/test_forecast.py perturbs the future and checks that past forecasts stay bitwise
the same).

- `ewma`: the v2 filter itself (lambda = fhs_lambda over the last L returns, started at their
  mean square): sigma_(L+1)^2 x h. Nothing to fit.
- `gjr_garch`: GJR-GARCH(1,1) with Student-t innovations and a zero mean, fitted by maximum
  likelihood with the `arch` package on the last `forecast_window_days` returns (scaled by 100,
  as arch recommends); between refits the fitted recursion is run forward over the new returns.
  h-day variance: the sum of the 1..h-step forecasts (the asymmetry term at half weight, a
  symmetric t gives a negative shock half the time), as arch's analytic forecast computes it.
- `har`: Corsi's HAR on daily data: h-day realised variance regressed by least squares on the
  1-, 5- and 22-day average squared return.
- `lightgbm`: gradient-boosted trees (LightGBM) on lagged features, trained on the gamma
  deviance, which is QLIKE itself (the loss the evaluation ranks by), as a multiplicative
  correction of a truncated EWMA (the model's raw score is added to log(h x EWMA)). Shallow,
  heavily regularised trees, monotone non-decreasing in the realised-variance features: see
  LIGHTGBM_PARAMS for the settings and why.

Fitting is single-threaded with fixed seeds, so the same returns give the same fitted
parameters, bit for bit, in any process on the same build; `Fitted.digest` hashes them, and
the node shows the hash of every underlying's fit in its status. Single-threaded includes the
BLAS: numpy's and scipy's OpenBLAS are held to one thread while a forecaster fits or forecasts
(`single_threaded_blas`), because arch's GJR-GARCH fit gives different bits with one BLAS
thread than with two (measured: omega differs in the 5th digit on the S&P 500), so a node's
parameters would otherwise depend on its core count or on OPENBLAS_NUM_THREADS (which Dask,
for one, sets to 1 in the process that starts a local cluster).

A forecaster that cannot answer (too few returns, a failed optimiser, a forecast that is not a
positive finite number) raises `ForecastError` with one line; callers fall back to `ewma` and
count the fallback (`walk_forward` does, and so does the node).
"""

from __future__ import annotations

import hashlib
import math
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from crossclear.margin._model import FloatArray

#: Names accepted by params.fhs_forecaster, in report order (the baseline first).
FORECASTER_NAMES = ("ewma", "gjr_garch", "har", "lightgbm")


class ForecastError(ValueError):
    """A forecaster cannot answer; the message is one line saying why."""


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Every BLAS loaded in this process (numpy's, scipy's OpenBLAS) on one thread meanwhile."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class ForecastSettings:
    """What every forecaster needs besides the returns."""

    horizon: int = 2
    """h: days the variance is forecast over (fhs_mpor_days)."""
    ewma_lambda: float = 0.94
    """Decay of the EWMA (fhs_lambda)."""
    ewma_lookback: int = 1000
    """Returns the EWMA runs over (fhs_lookback_days, L)."""
    window: int = 2500
    """Returns a fit uses: the last `window` before its anchor (forecast_window_days)."""
    refit_every: int = 21
    """Days between fits (forecast_refit_days); in the node, certified daily closes."""


@dataclass(frozen=True)
class Fitted:
    """A forecaster's fitted state at an anchor; immutable and hashable into a digest."""

    name: str
    """Forecaster name."""
    anchor: int
    """Returns the fit saw: returns[:anchor] (its window is the last `window` of them)."""
    params: tuple[float, ...]
    """Fitted numbers (GARCH: omega, alpha, gamma, beta, nu, then the recursion's state)."""
    model: str = field(default="", repr=False)
    """A serialised model where numbers are not enough (LightGBM's text dump)."""
    booster: Any = field(default=None, repr=False, compare=False)
    """The live model object for predictions (not part of the digest)."""

    def digest(self) -> str:
        """sha256 of the name, anchor, parameters (IEEE bytes) and model text."""
        hasher = hashlib.sha256()
        hasher.update(self.name.encode())
        hasher.update(struct.pack("<q", self.anchor))
        hasher.update(np.asarray(self.params, dtype="<f8").tobytes())
        hasher.update(self.model.encode())
        return hasher.hexdigest()


class Forecaster(Protocol):
    """One volatility forecaster."""

    name: str
    minimum_returns: int
    """Fewest returns a fit needs."""

    def fit(self, returns: FloatArray, settings: ForecastSettings) -> Fitted:
        """Fit on returns[:len(returns)] (the anchor is len(returns)); raises ForecastError."""
        ...

    def forecast(self, fitted: Fitted, returns: FloatArray, settings: ForecastSettings) -> float:
        """The h-day variance after the last of `returns` (which extend the fit's); raises ForecastError."""
        ...


def _window(returns: FloatArray, settings: ForecastSettings, minimum: int, name: str) -> FloatArray:
    window = returns[-settings.window :]
    if window.size < minimum:
        raise ForecastError(f"{name} needs at least {minimum} daily returns to fit, the history has {window.size}")
    if not np.all(np.isfinite(window)):
        raise ForecastError(f"{name}: the returns to fit on are not all finite")
    return window


def _checked(value: float, name: str) -> float:
    if not math.isfinite(value) or value <= 0.0:
        raise ForecastError(f"{name} forecast {value!r} is not a positive finite variance")
    return value


# --- EWMA ----------------------------------------------------------------------------------------


def ewma_variance(returns: FloatArray, decay: float, lookback: int) -> float:
    """sigma_(L+1)^2 of the v2 filter over the last `lookback` returns (step 2)."""
    window = returns[-lookback:]
    if window.size == 0:
        raise ForecastError("ewma needs at least one daily return")
    variance = float(np.mean(window * window))
    for r in window.tolist():
        variance = decay * variance + (1.0 - decay) * r * r
    return variance


class Ewma:
    """The v2 filter's own forecast: nothing to fit."""

    name = "ewma"
    minimum_returns = 1

    def fit(self, returns: FloatArray, settings: ForecastSettings) -> Fitted:
        return Fitted(self.name, int(returns.size), (settings.ewma_lambda, float(settings.ewma_lookback)))

    def forecast(self, fitted: Fitted, returns: FloatArray, settings: ForecastSettings) -> float:
        return _checked(settings.horizon * ewma_variance(returns, settings.ewma_lambda, settings.ewma_lookback), self.name)


# --- GJR-GARCH(1,1)-t ----------------------------------------------------------------------------

#: arch fits better on percent returns (its own advice): variances are in %^2 inside the fit.
GARCH_SCALE = 100.0


class GjrGarch:
    """GJR-GARCH(1,1), Student-t innovations, zero mean, fitted with `arch`."""

    name = "gjr_garch"
    minimum_returns = 500

    def fit(self, returns: FloatArray, settings: ForecastSettings) -> Fitted:
        from arch import arch_model

        window = _window(returns, settings, self.minimum_returns, self.name) * GARCH_SCALE
        model = arch_model(window, mean="Zero", vol="GARCH", p=1, o=1, q=1, dist="t", rescale=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = model.fit(disp="off", show_warning=False, options={"maxiter": 500})
            except (ValueError, np.linalg.LinAlgError, RuntimeError) as error:
                raise ForecastError(f"gjr_garch: the optimiser failed: {str(error).splitlines()[0]}") from None
        if result.convergence_flag != 0:
            raise ForecastError(f"gjr_garch: the optimiser did not converge ({result.optimization_result.message})")
        omega, alpha, gamma, beta, nu = (float(v) for v in result.params.to_numpy())
        last_variance = float(result.conditional_volatility[-1]) ** 2
        last_shock = float(window[-1])
        params = (omega, alpha, gamma, beta, nu, last_variance, last_shock)
        if not all(math.isfinite(p) for p in params) or nu <= 2.0:
            raise ForecastError(f"gjr_garch: fitted parameters are not usable ({', '.join(f'{p:g}' for p in params[:5])})")
        return Fitted(self.name, int(returns.size), params)

    def forecast(self, fitted: Fitted, returns: FloatArray, settings: ForecastSettings) -> float:
        omega, alpha, gamma, beta, _, variance, shock = fitted.params
        # variance, shock: sigma^2 and epsilon of the last return the fit saw. Run the fitted
        # recursion over the returns since, then once more for the day after the last of them.
        for new in (returns[fitted.anchor :] * GARCH_SCALE).tolist():
            variance = omega + (alpha + (gamma if shock < 0.0 else 0.0)) * shock * shock + beta * variance
            shock = new
        variance = omega + (alpha + (gamma if shock < 0.0 else 0.0)) * shock * shock + beta * variance
        # variance is now E[sigma^2] of the next day; later days revert at alpha + gamma/2 + beta.
        persistence = alpha + 0.5 * gamma + beta
        total, ahead = 0.0, variance
        for _ in range(settings.horizon):
            total += ahead
            ahead = omega + persistence * ahead
        return _checked(total / (GARCH_SCALE * GARCH_SCALE), self.name)


# --- HAR -----------------------------------------------------------------------------------------

HAR_WINDOWS = (1, 5, 22)


def _har_row(squared: FloatArray) -> FloatArray:
    """The features after the last of `squared`, summed in a fixed order (no cumulative sums)."""
    row = [1.0]
    for width in HAR_WINDOWS:
        tail = squared[-width:]
        row.append(math.fsum(tail.tolist()) / width)
    return np.array(row)


class Har:
    """Heterogeneous autoregressive model of realised variance (Corsi 2009) on daily data."""

    name = "har"
    minimum_returns = 250

    def fit(self, returns: FloatArray, settings: ForecastSettings) -> Fitted:
        window = _window(returns, settings, self.minimum_returns, self.name)
        squared = window * window
        horizon = settings.horizon
        positions = np.arange(max(HAR_WINDOWS), squared.size - horizon + 1)
        x = np.stack([_har_row(squared[:t]) for t in positions.tolist()])
        y = np.array([math.fsum(squared[t : t + horizon].tolist()) for t in positions.tolist()])
        # Normal equations by einsum (plain C loops, no threaded BLAS), solved 4 x 4.
        gram = np.einsum("ti,tj->ij", x, x)
        moment = np.einsum("ti,t->i", x, y)
        try:
            beta = np.linalg.solve(gram, moment)
        except np.linalg.LinAlgError:
            raise ForecastError("har: the regressors are collinear (a flat history?)") from None
        if not np.all(np.isfinite(beta)):
            raise ForecastError("har: fitted coefficients are not finite")
        return Fitted(self.name, int(returns.size), tuple(float(b) for b in beta))

    def forecast(self, fitted: Fitted, returns: FloatArray, settings: ForecastSettings) -> float:
        if returns.size < max(HAR_WINDOWS):
            raise ForecastError(f"har needs the last {max(HAR_WINDOWS)} returns to forecast")
        row = _har_row(returns[-max(HAR_WINDOWS) :] ** 2)
        value = math.fsum(float(b) * float(v) for b, v in zip(fitted.params, row.tolist()))
        return _checked(value, self.name)


# --- LightGBM ------------------------------------------------------------------------------------

#: Returns of the truncated EWMA that scales every feature (weights (1 - lambda) lambda^j, j < 250,
#: normalised, lambda = fhs_lambda): a fixed-length filter, so a feature row depends on a fixed span of returns.
LGBM_EWMA_SPAN = 250
#: Returns before a decision day its feature row reads: the EWMA span plus 66 days of windows.
LGBM_FEATURE_SPAN = LGBM_EWMA_SPAN + 66 + 1
#: Feature names, in column order, with their monotone constraint (+1: never lowers the forecast).
LGBM_FEATURES = (
    ("log_ewma_over_year", 0),   # vol level against its one-year average: mean reversion
    ("log_rv1_over_ewma", 1),    # realised variance over 1, 5, 22 and 66 days against the EWMA
    ("log_rv5_over_ewma", 1),
    ("log_rv22_over_ewma", 1),
    ("log_rv66_over_ewma", 1),
    ("last_return", 0),          # yesterday's return in EWMA sigmas (sign: the leverage effect)
    ("return_5d", 0),            # last 5 days' return in EWMA sigmas
    ("drawdown_66d", 0),         # log distance below the 66-day high
    ("jumps_22d", 0),            # days in the last 22 with |r| above 4 EWMA sigmas
)
#: Why these settings: daily squared returns are a very noisy target (a chi-square with one
#: degree of freedom around the true variance), so the trees are shallow (depth 3, 7 leaves),
#: leaves need 100 days, the L2 penalty is large and the learning rate small with 150 rounds:
#: the model can only make broad, smooth corrections to the EWMA. The realised-variance features
#: are monotone non-decreasing: a calmer recent past never raises, and a wilder one never lowers,
#: the forecast, so the challenger cannot cut margin because volatility rose (an anti-procyclical
#: property a CCP must have). The objective is the gamma deviance with a log link, which equals
#: QLIKE, the loss the forecasts are ranked by. One thread, no bagging, a fixed seed and
#: `deterministic`: the same data give the same trees on every node.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "objective": "gamma",
    "learning_rate": 0.03,
    "num_leaves": 7,
    "max_depth": 3,
    "min_data_in_leaf": 100,
    "lambda_l2": 10.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 7,
    "bagging_fraction": 1.0,
    "feature_fraction": 1.0,
    "monotone_constraints": [constraint for _, constraint in LGBM_FEATURES],
    "verbose": -1,
}
LIGHTGBM_ROUNDS = 150
#: Labels are floored at this fraction of the EWMA forecast: the gamma deviance needs y > 0, and
#: an h-day window of unchanged closes (a holiday in one series) has zero realised variance.
LGBM_LABEL_FLOOR = 0.01


def lgbm_features(returns: FloatArray, decay: float) -> tuple[FloatArray, FloatArray]:
    """(features, ewma) for every decision position t in [LGBM_FEATURE_SPAN, len(returns)].

    Row k belongs to t = LGBM_FEATURE_SPAN + k and reads returns[t - LGBM_FEATURE_SPAN : t]
    only; ewma[k] is the truncated EWMA variance at t (the base the model corrects).
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat history: non-finite rows, refused by fit
        return _lgbm_features(returns, decay)


def _lgbm_features(returns: FloatArray, decay: float) -> tuple[FloatArray, FloatArray]:
    weights = (1.0 - decay) * decay ** np.arange(LGBM_EWMA_SPAN)
    weights = weights / weights.sum()
    squared = returns * returns
    n = returns.size
    positions = np.arange(LGBM_FEATURE_SPAN, n + 1)
    if positions.size == 0:
        return np.zeros((0, len(LGBM_FEATURES))), np.zeros(0)
    # ewma_at[t] = sum_j w_j squared[t - 1 - j], for t in [LGBM_EWMA_SPAN, n].
    ewma_all = np.convolve(squared, weights, mode="valid")  # index i -> t = i + LGBM_EWMA_SPAN
    ewma_at = np.concatenate([np.full(LGBM_EWMA_SPAN, np.nan), ewma_all])
    cumulative_sq = np.concatenate([[0.0], np.cumsum(squared)])
    cumulative_r = np.concatenate([[0.0], np.cumsum(returns)])
    t = positions
    ewma = ewma_at[t]
    tiny = 1e-4 * ewma

    def mean_sq(width: int) -> FloatArray:
        result: FloatArray = (cumulative_sq[t] - cumulative_sq[t - width]) / width
        return result

    year = mean_sq(LGBM_EWMA_SPAN)
    sigma = np.sqrt(ewma)
    # Drawdown: log close at t against the highest close of the 66 days up to it.
    level = cumulative_r  # log price relative to the first close, at positions 0..n
    highs = np.array([level[p - 66 : p + 1].max() for p in t.tolist()])
    # Jumps: |r_j| above 4 sigmas of the EWMA before j, for the 22 returns before t.
    jump = np.zeros(n + 1)
    j = np.arange(LGBM_EWMA_SPAN, n)
    jump[j + 1] = (np.abs(returns[j]) > 4.0 * np.sqrt(ewma_at[j])).astype(np.float64)
    cumulative_jump = np.cumsum(jump)
    features = np.stack(
        [
            np.log(ewma / year),
            np.log((squared[t - 1] + tiny) / ewma),
            np.log((mean_sq(5) + tiny) / ewma),
            np.log((mean_sq(22) + tiny) / ewma),
            np.log((mean_sq(66) + tiny) / ewma),
            returns[t - 1] / sigma,
            (cumulative_r[t] - cumulative_r[t - 5]) / (sigma * math.sqrt(5.0)),
            level[t] - highs,
            cumulative_jump[t] - cumulative_jump[t - 22],
        ],
        axis=1,
    )
    return features, ewma


class LightGbm:
    """Gradient-boosted correction of a truncated EWMA on lagged features (LightGBM)."""

    name = "lightgbm"
    minimum_returns = LGBM_FEATURE_SPAN + 500

    def fit(self, returns: FloatArray, settings: ForecastSettings) -> Fitted:
        import lightgbm

        window = _window(returns, settings, self.minimum_returns, self.name)
        horizon = settings.horizon
        features, ewma = lgbm_features(window, settings.ewma_lambda)
        # Row k is decision position t = LGBM_FEATURE_SPAN + k; its label needs returns up to t + h - 1.
        rows = window.size - horizon + 1 - LGBM_FEATURE_SPAN
        squared = window * window
        cumulative = np.concatenate([[0.0], np.cumsum(squared)])
        t = np.arange(LGBM_FEATURE_SPAN, LGBM_FEATURE_SPAN + rows)
        base = horizon * ewma[:rows]
        label = np.maximum(cumulative[t + horizon] - cumulative[t], LGBM_LABEL_FLOOR * base)
        if not np.all(np.isfinite(features[:rows])) or not np.all(np.isfinite(label)):
            raise ForecastError("lightgbm: features or labels are not finite (a flat history?)")
        data = lightgbm.Dataset(
            features[:rows], label=label, init_score=np.log(base),
            feature_name=[name for name, _ in LGBM_FEATURES], params={"verbose": -1, "feature_pre_filter": False},
            free_raw_data=True,
        )
        try:
            booster = lightgbm.train(LIGHTGBM_PARAMS, data, num_boost_round=LIGHTGBM_ROUNDS)
        except lightgbm.basic.LightGBMError as error:
            raise ForecastError(f"lightgbm: training failed: {str(error).splitlines()[0]}") from None
        return Fitted(self.name, int(returns.size), (float(rows),), model=booster.model_to_string(), booster=booster)

    def forecast(self, fitted: Fitted, returns: FloatArray, settings: ForecastSettings) -> float:
        if returns.size < LGBM_FEATURE_SPAN:
            raise ForecastError(f"lightgbm needs the last {LGBM_FEATURE_SPAN} returns to forecast")
        features, ewma = lgbm_features(returns[-LGBM_FEATURE_SPAN:], settings.ewma_lambda)
        raw = float(fitted.booster.predict(features[-1:], raw_score=True, num_threads=1)[0])
        return _checked(settings.horizon * float(ewma[-1]) * math.exp(raw), self.name)


FORECASTERS: dict[str, Forecaster] = {f.name: f for f in (Ewma(), GjrGarch(), Har(), LightGbm())}


def forecaster(name: str) -> Forecaster:
    """The forecaster called `name` (one of FORECASTER_NAMES)."""
    try:
        return FORECASTERS[name]
    except KeyError:
        raise ValueError(f"unknown forecaster {name!r} (expected one of: {', '.join(FORECASTER_NAMES)})") from None


# --- walk-forward --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkForward:
    """One forecaster's forecasts for one underlying on consecutive decision days."""

    variance: FloatArray
    """h-day variance forecast made at each decision day (after its close)."""
    fallback: np.ndarray
    """True where the forecaster could not answer and the EWMA stood in."""
    reasons: tuple[str, ...]
    """Why, once per distinct reason (first occurrence)."""
    fits: tuple[Fitted, ...]
    """Every successful fit, in order."""


def fallback_forecast(returns: FloatArray, settings: ForecastSettings) -> float:
    """The EWMA forecast a failed forecaster falls back to."""
    return settings.horizon * ewma_variance(returns, settings.ewma_lambda, settings.ewma_lookback)


def walk_forward(closes: FloatArray, name: str, first: int, last: int, settings: ForecastSettings) -> WalkForward:
    """Forecasts made at decision rows first..last of `closes` (one underlying, oldest first).

    At decision row d the forecaster has seen closes[:d + 1] (returns[:d]); it is refitted at
    d = first, first + refit_every, ... on the last `window` returns before d.
    """
    model = forecaster(name)
    returns = np.diff(np.log(np.asarray(closes, dtype=np.float64)))
    days = last - first + 1
    variance = np.empty(days)
    fallback = np.zeros(days, dtype=bool)
    reasons: list[str] = []
    fits: list[Fitted] = []
    with single_threaded_blas():
        _walk(model, returns, first, last, settings, variance, fallback, reasons, fits)
    return WalkForward(variance=variance, fallback=fallback, reasons=tuple(reasons), fits=tuple(fits))


def _walk(
    model: Forecaster, returns: FloatArray, first: int, last: int, settings: ForecastSettings,
    variance: FloatArray, fallback: np.ndarray, reasons: list[str], fits: list[Fitted],
) -> None:
    name = model.name
    fitted: Fitted | ForecastError | None = None
    for k, d in enumerate(range(first, last + 1)):
        seen = returns[:d]
        if k % settings.refit_every == 0:
            try:
                fitted = model.fit(seen, settings)
                fits.append(fitted)
            except ForecastError as error:
                fitted = error
        try:
            if isinstance(fitted, ForecastError) or fitted is None:
                raise fitted or ForecastError(f"{name}: not fitted")
            variance[k] = model.forecast(fitted, seen, settings)
        except ForecastError as error:
            variance[k] = fallback_forecast(seen, settings)
            fallback[k] = True
            if str(error) not in reasons:
                reasons.append(str(error))


def realised_variance(closes: FloatArray, first: int, last: int, horizon: int) -> FloatArray:
    """Sum of the squared daily log returns over the h days after each decision row."""
    returns = np.diff(np.log(np.asarray(closes, dtype=np.float64)))
    squared = returns * returns
    cumulative = np.concatenate([[0.0], np.cumsum(squared)])
    d = np.arange(first, last + 1)
    result: FloatArray = cumulative[d + horizon] - cumulative[d]
    return result


def combined_digest(fits: Sequence[Fitted]) -> str:
    """One sha256 over several fits' digests (e.g. every underlying's), in the order given."""
    hasher = hashlib.sha256()
    for fit in fits:
        hasher.update(bytes.fromhex(fit.digest()))
    return hasher.hexdigest()


# --- one decision day, several underlyings (`risk es`, the node) --------------------------------


@dataclass(frozen=True)
class SigmaForecast:
    """Today's daily volatility of several underlyings from one forecaster, fallbacks included."""

    forecaster: str
    """Forecaster name."""
    sigma: FloatArray
    """sqrt(h-day variance / h) per column (0 for columns not asked for)."""
    fits: tuple[Fitted | None, ...]
    """The fit behind each column (None: not asked for, or the fit failed)."""
    fallbacks: tuple[tuple[int, str], ...]
    """(column, why) where the forecaster could not answer and the EWMA stood in."""

    def digest(self) -> str:
        """sha256 over every column's fit digest (a failed or missing fit counts as empty)."""
        hasher = hashlib.sha256()
        for column, fit in enumerate(self.fits):
            hasher.update(struct.pack("<q", column))
            hasher.update(bytes.fromhex(fit.digest()) if fit is not None else b"")
        return hasher.hexdigest()


def fit_columns(closes: FloatArray, columns: Sequence[int], name: str, settings: ForecastSettings, anchor_row: int) -> dict[int, Fitted | ForecastError]:
    """Fit `name` on each column's returns up to row `anchor_row` of `closes` (rows oldest first)."""
    model = forecaster(name)
    fits: dict[int, Fitted | ForecastError] = {}
    with single_threaded_blas():
        for column in columns:
            returns = np.diff(np.log(np.asarray(closes[: anchor_row + 1, column], dtype=np.float64)))
            try:
                fits[column] = model.fit(returns, settings)
            except ForecastError as error:
                fits[column] = error
    return fits


def sigma_forecast(
    closes: FloatArray, columns: Sequence[int], name: str, settings: ForecastSettings, fits: dict[int, Fitted | ForecastError] | None = None
) -> SigmaForecast:
    """Today's (the last row's) volatility of each column, from fits (made now when not given)."""
    model = forecaster(name)
    if fits is None:
        fits = fit_columns(closes, columns, name, settings, closes.shape[0] - 1)
    sigma = np.zeros(closes.shape[1])
    kept: list[Fitted | None] = [None] * closes.shape[1]
    fallbacks: list[tuple[int, str]] = []
    for column in columns:
        returns = np.diff(np.log(np.asarray(closes[:, column], dtype=np.float64)))
        fitted = fits.get(column)
        try:
            if not isinstance(fitted, Fitted):
                raise fitted if isinstance(fitted, ForecastError) else ForecastError(f"{name}: not fitted")
            with single_threaded_blas():
                variance = model.forecast(fitted, returns, settings)
            kept[column] = fitted
        except ForecastError as error:
            variance = fallback_forecast(returns, settings)
            fallbacks.append((column, str(error)))
        sigma[column] = math.sqrt(max(variance, 0.0) / settings.horizon)
    return SigmaForecast(forecaster=name, sigma=sigma, fits=tuple(kept), fallbacks=tuple(fallbacks))
