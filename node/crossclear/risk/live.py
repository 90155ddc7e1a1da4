"""The node's v2 ("fhs") portfolio margin: a HISTORY file extended by certified daily closes.

With `[margin] model = "fhs"` a node's portfolio requirement is the v2 methodology's
(docs/margin-methodology.md, v2 section) instead of v1's grid; the other modes, haircuts,
equity and unrealised P&L stay v1's and move with every certified price as before. The v2
figures are a pure function of two inputs, so every node computes the same bits:

1. the HISTORY file named in the node's configuration (the same file on every node);
2. the **certified daily closes**: the close of underlying u for UTC day D is the last
   certified feed answer of u with `updatedAt` in day D. It becomes final when the first
   answer of a later day is applied: a feed's answers carry the timestamp of the block that
   set them and are applied in block order, so nothing can still land in day D. A day is
   appended to the history (a *row*) once every underlying of the history has its final
   close for it; days after the file's last date only; a day on which some feed did not
   update is skipped, like a holiday in the file.

Between two rows nothing the v2 figures depend on changes (they are *struck* at a row), so
they are recomputed per certified close, not per tick:

- the scenario window is the last L + 1 rows; today's volatility is params.fhs_forecaster's,
  refitted every `forecast_refit_days` rows (the fit anchored at the history's last row plus a
  multiple of that), so a fit too is a function of the rows alone;
- positions are revalued at the strike: each underlying's close on the last row (its price,
  and for options the time to expiry from the close's timestamp). Before the first live row
  the strike is each underlying's first certified answer (the RISK file's price until one
  arrives, when no position can exist on it yet);
- an account's requirement depends only on its positions and the strike, so it is computed
  for every account when a row arrives and, between rows, for an account when its positions
  change (at the same strike): never per price tick, and never on the path by which the node
  reached its state.

Unrealised P&L (at the current certified prices) still enters `required` and equity, so an
intraday move is charged through equity at once, as variation margin is at a CCP between its
end-of-day margin runs. Collateral assets with a HISTORY column get their haircut volatility
from the same forecaster (one-day volatility).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import Book, Instruments, MarginInputs, MarginParams, MarginResult, Market, Mode, parse_inputs
from crossclear.margin._json import _read_json
from crossclear.margin._model import FloatArray, InstrumentKey
from crossclear.risk._history import read_history, require_window
from crossclear.risk._inputs import parse_fhs_params, split_risk_document
from crossclear.risk._kernel_api import RiskKernel
from crossclear.risk._model import EsResult, FhsParams, History
from crossclear.risk.forecast import ForecastError, Fitted, ewma_variance, fit_columns, sigma_forecast

SECONDS_PER_DAY = 86_400
SECONDS_PER_YEAR = 365.0 * SECONDS_PER_DAY
#: The node's risk models: v1's grid, or v2's filtered historical simulation.
RISK_MODELS = ("grid", "fhs")


# --- configuration -------------------------------------------------------------------------------


def parse_risk_file(path: Path) -> tuple[MarginInputs, FhsParams]:
    """A node's RISK file: v1's inputs and the v2 params (fhs_*, forecast_*) beside them."""
    document = _read_json(path)
    v1_document, raw_v2 = split_risk_document(document, str(path))
    margin = parse_inputs(v1_document, {"accounts": []}, str(path))
    return margin, parse_fhs_params(raw_v2, str(path), margin.market.underlying_names)


def load_node_history(path: Path, margin: MarginInputs, fhs: FhsParams) -> History:
    """The node's HISTORY file, checked: a column per underlying of the RISK file and L + 1 rows."""
    history = read_history(path)
    require_window(history, str(path), margin.market.underlying_names, fhs.fhs_lookback_days + 1)
    return history


# --- certified daily closes ----------------------------------------------------------------------


def day_of(timestamp: float) -> int:
    """UTC day number (days since 1970-01-01) of a unix time."""
    return int(timestamp // SECONDS_PER_DAY)


def date_of(day: int) -> str:
    """ISO date of a UTC day number."""
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def day_number(date: str) -> int:
    """UTC day number of an ISO date."""
    return (datetime.date.fromisoformat(date) - datetime.date(1970, 1, 1)).days


@dataclass(frozen=True)
class Answer:
    """A certified feed answer."""

    price: float
    updated_at: float


class DailyCloses:
    """Certified daily closes of some feeds, and the complete rows they make (append-only)."""

    def __init__(self, names: Sequence[str], after_day: int) -> None:
        """`names`: the feeds a row needs; `after_day`: only days after this one make rows."""
        self.names = tuple(names)
        self.after_day = after_day
        self.first: dict[str, Answer] = {}
        """Each feed's first certified answer."""
        self._latest: dict[str, tuple[int, Answer]] = {}
        self._final: dict[str, dict[int, Answer]] = {name: {} for name in self.names}
        self.rows: list[tuple[int, tuple[Answer, ...]]] = []
        """(day, every feed's close that day), in day order."""

    def answer(self, name: str, price: float, updated_at: float) -> None:
        """A certified answer of feed `name` (answers of one feed arrive oldest first)."""
        if name not in self._final:
            return
        day = day_of(updated_at)
        self.first.setdefault(name, Answer(price, updated_at))
        latest = self._latest.get(name)
        if latest is not None and day > latest[0]:
            self._finalise(name, latest[0], latest[1])
        if latest is None or day >= latest[0]:
            self._latest[name] = (day, Answer(price, updated_at))

    def _finalise(self, name: str, day: int, close: Answer) -> None:
        if day <= self.after_day:
            return
        self._final[name][day] = close
        if all(day in self._final[other] for other in self.names):
            self.rows.append((day, tuple(self._final[other].pop(day) for other in self.names)))
            for other in self.names:  # closes of skipped days before it can never complete a row
                for old in [d for d in self._final[other] if d < day]:
                    del self._final[other][old]


# --- one strike: everything the v2 figures are computed from between two rows --------------------


class PositionLike(Protocol):
    """What v2 reads of a position (crossclear.node.clearing.PositionRecord)."""

    underlying: str
    kind: Any
    qty: float
    strike: float
    expiry_timestamp: float


class BookLike(Protocol):
    """What v2 reads of an account's book (crossclear.node.clearing.AccountBook)."""

    @property
    def positions(self) -> Sequence[tuple[str, PositionLike]]: ...


@dataclass(frozen=True)
class Strike:
    """The v2 margin between two certified closes; immutable, so snapshots may keep it."""

    number: int
    """Certified daily closes appended when it was struck (0: struck at the HISTORY file's end)."""
    params: FhsParams
    margin_params: MarginParams
    market: Market
    """The RISK market with each underlying's strike price."""
    strike_time: FloatArray
    """Unix time of each underlying's strike (options' time to expiry is measured from it)."""
    closes: FloatArray
    """The scenario window: L + 1 rows x market underlyings."""
    sigma: FloatArray | None
    """Today's volatility per underlying from the forecaster (None: the EWMA filter's, in the kernel)."""
    underlying_index: Mapping[str, int]

    def requirements(self, books: Sequence[BookLike]) -> FloatArray:
        """v2 maintenance margin of each book at this strike."""
        keys: dict[InstrumentKey, int] = {}
        offsets, instrument, qty = [0], [], []
        for book in books:
            for _, record in book.positions:
                u = self.underlying_index[record.underlying]
                kind = int(record.kind)
                if kind == 0:
                    key: InstrumentKey = (u, 0, 0.0, 0.0)
                else:
                    key = (u, kind, float(record.strike), (float(record.expiry_timestamp) - float(self.strike_time[u])) / SECONDS_PER_YEAR)
                instrument.append(keys.setdefault(key, len(keys)))
                qty.append(float(record.qty))
            offsets.append(len(qty))
        count = len(books)
        if count == 0:
            return np.zeros(0)
        empty_index = np.zeros(0, dtype=np.int32)
        arrays = Book(
            position_offsets=np.array(offsets, dtype=np.int64),
            position_instrument=np.array(instrument, dtype=np.int32),
            position_chain=np.zeros(len(qty), dtype=np.int32),
            position_qty=np.array(qty, dtype=np.float64),
            position_entry=np.zeros(len(qty)),
            collateral_offsets=np.zeros(count + 1, dtype=np.int64),
            collateral_asset=empty_index,
            collateral_chain=empty_index,
            collateral_amount=np.zeros(0),
        )
        instruments = Instruments.from_keys(keys) if keys else Instruments.from_keys({(0, 0, 0.0, 0.0): 0})
        result = EsResult.empty(count)
        RiskKernel(self.params, self.margin_params, self.market, instruments, self.closes, self.sigma).compute(arrays, result)
        return result.mm

    def portfolio(self, result: MarginResult, mm: FloatArray) -> MarginResult:
        """v1's result with the portfolio column, health and liquidation from v2's `mm`."""
        p = Mode.PORTFOLIO
        im_column = self.margin_params.im_multiplier * mm
        im, maintenance, required = result.im.copy(), result.mm.copy(), result.required.copy()
        maintenance[:, p] = mm
        im[:, p] = im_column
        required[:, p] = np.maximum(0.0, im_column - result.upnl)
        health = np.divide(result.equity, mm, out=np.full(mm.shape, np.nan), where=mm > 0.0)
        return MarginResult(
            collateral_value=result.collateral_value,
            upnl=result.upnl,
            equity=result.equity,
            im=im,
            mm=maintenance,
            required=required,
            health=health,
            liquidatable=(result.equity < mm).astype(np.uint8),
        )

    def simulate(self, result: MarginResult, books: Sequence[BookLike]) -> MarginResult:
        """A what-if's result (v1's, one row per book) with v2's portfolio figures."""
        return self.portfolio(result, self.requirements(books))


@dataclass(frozen=True)
class RiskStatus:
    """What status and metrics show about the node's risk model."""

    model: str
    forecaster: str
    params_hash: str
    """sha256 of the forecaster's fitted parameters of every HISTORY column (empty for ewma)."""
    fitted_through: str
    """Date of the last row the current fit saw."""
    history_rows: int
    certified_closes: int
    """Rows appended from certified daily closes."""
    last_close: str
    """Date of the newest row."""
    strike_hash: str
    """sha256 of everything the current v2 margin is computed from (`strike_digest`)."""
    fallbacks: int
    """Times the forecaster could not answer for a column and the EWMA stood in."""
    fallback_reason: str
    """The latest such reason ("" if none)."""


class FhsPortfolio:
    """The v2 portfolio requirement of a node, fed certified answers by its ClearingState.

    `on_price` (with every accepted certified answer, on the event loop) only records closes;
    `apply` (in `ClearingState.publish`, on a worker thread) makes a new strike when a row or a
    first answer arrived, computes the accounts that need it and returns the snapshot's result.
    """

    def __init__(self, history: History, params: FhsParams, margin_params: MarginParams, market: Market) -> None:
        self.params = params
        self.margin_params = margin_params
        self._market = market
        self._underlyings = market.underlying_names
        self._assets = tuple(name for name in market.asset_names if name in history.names)
        self._columns = (*self._underlyings, *self._assets)
        self._history_closes = np.ascontiguousarray(history.closes[:, [history.column(name) for name in self._columns]])
        self._history_dates = history.dates
        self.closes = DailyCloses(self._columns, day_number(history.dates[-1]))
        self._strike: Strike | None = None
        self._strike_key: tuple[int, tuple[str, ...]] | None = None
        self._asset_vols: FloatArray | None = None
        self._fits: tuple[int, dict[int, Fitted | ForecastError]] | None = None
        self._cache: dict[str, tuple[Any, float]] = {}
        self._fallbacks = 0
        self._fallback_reason = ""
        self._hash = ""
        self._fitted_through = ""
        self.status = self._status()

    # --- inputs (event loop) ---------------------------------------------------------------

    def on_price(self, name: str, price: float, updated_at: float) -> None:
        """A certified answer the ClearingState accepted (newer than the feed's last)."""
        self.closes.answer(name, price, updated_at)

    # --- strikes (worker thread) -----------------------------------------------------------

    def _rows(self) -> tuple[FloatArray, tuple[str, ...]]:
        live = self.closes.rows
        if not live:
            return self._history_closes, self._history_dates
        extra = np.array([[answer.price for answer in answers] for _, answers in live])
        return np.concatenate([self._history_closes, extra]), (*self._history_dates, *(date_of(day) for day, _ in live))

    def strike(self) -> Strike:
        """The current strike, made anew when a row or a first answer arrived since the last."""
        key = (len(self.closes.rows), tuple(sorted(self.closes.first)))
        if self._strike is not None and key == self._strike_key:
            return self._strike
        rows, dates = self._rows()
        params, settings = self.params, self.params.forecast_settings()
        count = len(self._underlyings)
        window = np.ascontiguousarray(rows[-(params.fhs_lookback_days + 1) :, :count])
        live = self.closes.rows
        if live:
            strike_price = np.array([answer.price for answer in live[-1][1][:count]])
            strike_time = np.array([answer.updated_at for answer in live[-1][1][:count]])
        else:
            first = self.closes.first
            strike_price = np.array([first[n].price if n in first else float(self._market.underlying_price[i]) for i, n in enumerate(self._underlyings)])
            strike_time = np.array([first[n].updated_at if n in first else 0.0 for n in self._underlyings])
        columns = list(range(len(self._columns)))
        sigma: FloatArray | None = None
        if params.fhs_forecaster == "ewma":
            daily = np.array([math.sqrt(ewma_variance(np.diff(np.log(rows[:, c])), params.fhs_lambda, params.fhs_lookback_days)) for c in columns])
            self._hash = ""
            self._fitted_through = dates[-1]
        else:
            history_rows = self._history_closes.shape[0]
            anchor = history_rows - 1 + settings.refit_every * (len(live) // settings.refit_every)
            if self._fits is None or self._fits[0] != anchor:
                self._fits = (anchor, fit_columns(rows, columns, params.fhs_forecaster, settings, anchor))
            forecast = sigma_forecast(rows, columns, params.fhs_forecaster, settings, self._fits[1])
            daily = forecast.sigma
            sigma = np.ascontiguousarray(daily[:count])
            self._hash = forecast.digest()
            self._fitted_through = dates[anchor]
            for column, why in forecast.fallbacks:
                self._fallbacks += 1
                self._fallback_reason = f"{self._columns[column]}: {why}"
        if self._assets:
            vols = self._market.asset_daily_vol.copy()
            for offset, name in enumerate(self._assets):
                vols[self._market.asset_names.index(name)] = daily[count + offset]
            self._asset_vols = vols
        self._strike = Strike(
            number=len(live),
            params=params,
            margin_params=self.margin_params,
            market=replace(self._market, underlying_price=strike_price),
            strike_time=strike_time,
            closes=window,
            sigma=sigma,
            underlying_index={name: i for i, name in enumerate(self._underlyings)},
        )
        self._strike_key = key
        self._cache = {}
        self.status = self._status()
        return self._strike

    def asset_daily_vols(self) -> FloatArray | None:
        """Haircut volatility of every RISK asset at the current strike (None: no asset has a column)."""
        self.strike()
        return self._asset_vols

    def apply(self, result: MarginResult, books: Mapping[str, Any], rows: Mapping[str, int]) -> tuple[MarginResult, Strike]:
        """The snapshot's result: v1's with v2's portfolio figures, and the strike they used."""
        strike = self.strike()
        stale = [account for account, book in books.items() if self._cache.get(account, (None, 0.0))[0] is not book]
        for account, mm in zip(stale, strike.requirements([books[account] for account in stale]).tolist()):
            self._cache[account] = (books[account], mm)
        mm = np.zeros(len(rows))
        for account, row in rows.items():
            mm[row] = self._cache[account][1]
        return strike.portfolio(result, mm), strike

    def _status(self) -> RiskStatus:
        live = self.closes.rows
        return RiskStatus(
            model="fhs",
            forecaster=self.params.fhs_forecaster,
            params_hash=self._hash,
            fitted_through=self._fitted_through,
            history_rows=len(self._history_dates),
            certified_closes=len(live),
            last_close=date_of(live[-1][0]) if live else self._history_dates[-1],
            strike_hash=strike_digest(self._strike) if self._strike is not None else "",
            fallbacks=self._fallbacks,
            fallback_reason=self._fallback_reason,
        )


def strike_digest(strike: Strike) -> str:
    """sha256 of everything a strike computes from (tests and operators compare nodes with it)."""
    hasher = hashlib.sha256()
    for array in (strike.closes, strike.market.underlying_price, strike.strike_time, strike.sigma if strike.sigma is not None else np.zeros(0)):
        hasher.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
    hasher.update(struct.pack("<q", strike.number))
    hasher.update(repr(strike.params).encode())
    return hasher.hexdigest()


class RiskCollector:
    """Prometheus metrics of the risk model, read at scrape time from its status."""

    def __init__(self, model: FhsPortfolio) -> None:
        self._model = model

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        status = self._model.status
        yield CounterMetricFamily(
            "crossclear_risk_forecast_fallbacks", "times the volatility forecaster could not answer and the EWMA stood in", value=status.fallbacks
        )
        yield GaugeMetricFamily("crossclear_risk_certified_closes", "daily closes appended to the HISTORY from certified prices", value=status.certified_closes)


def check_history_file(path: Path, risk_file: Path) -> None:
    """Config-time check of `[margin] history_file` against the RISK file; UsageError names the problem."""
    margin, fhs = parse_risk_file(risk_file)
    load_node_history(path, margin, fhs)


__all__ = [
    "DailyCloses",
    "FhsPortfolio",
    "RISK_MODELS",
    "RiskCollector",
    "RiskStatus",
    "Strike",
    "UsageError",
    "check_history_file",
    "load_node_history",
    "parse_risk_file",
    "strike_digest",
]


def risk_status_message(model: FhsPortfolio | None) -> Any:
    """NodeStatus.risk for a node margining with `model` (None: v1's grid)."""
    from crossclear.v1 import node_pb2

    if model is None:
        return node_pb2.RiskStatus(model="grid")
    status = model.status
    return node_pb2.RiskStatus(
        model=status.model,
        forecaster=status.forecaster,
        params_hash=status.params_hash,
        fitted_through=status.fitted_through,
        history_rows=status.history_rows,
        certified_closes=status.certified_closes,
        last_close=status.last_close,
        strike_hash=status.strike_hash,
        forecast_fallbacks=status.fallbacks,
        fallback_reason=status.fallback_reason,
    )
