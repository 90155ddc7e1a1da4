"""One price path through the clearinghouse, for every (model, mode) pair.

Day 0 opens the market: every margin silo posts buffer x its required collateral. Each later
day the marks move along the path, variation margin is paid on perpetuals
(`crossclear.clearing.settle_variation`), and then liquidation rounds run until every silo is
at or above maintenance: silos below it are closed out (partially if that brings them back to
initial margin, fully otherwise) at prices with square-root impact, a full close-out's debt
goes through `crossclear.clearing.cover_shortfall`, and the round's net liquidation flow moves
the marks (permanent impact), which pays variation margin again and may push further silos
under. docs/cascade-simulator.md states every rule; this module follows it top to bottom.

Money is integers (USDC base units, 18-decimal sizes, 8-decimal marks) and every step checks
that open interest nets to zero and that no unit was created or lost. Floats are used only in
margin arithmetic and in pricing a close-out, as in the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from crossclear.clearing import Holding, MarkMove, cover_shortfall, settle_variation
from crossclear.margin import Book, InstrumentKind, Instruments, Market, Mode, compute_margin
from crossclear.margin._model import FloatArray
from crossclear.margin.methodology import instrument_value, normal_cdf
from crossclear.risk._kernel_api import RiskKernel
from crossclear.risk._model import EsResult
from crossclear.risk.cascade.market import (
    PRICE_DECIMALS,
    PRICE_SCALE,
    SETTLEMENT_ASSET,
    SETTLEMENT_DECIMALS,
    SIZE_SCALE,
    UNIT,
    SimulationSpec,
    path_closes,
)

DAYS_PER_YEAR = 365.0
LIQUIDATOR = "liquidator"
FUND_CHAIN = 1

#: Per-path figures of each (model, mode), in the order of the `metrics` array's last axis.
METRICS = (
    "collateral_required",  # USDC: sum over silos of max(0, im - upnl) on the opening day
    "bad_debt",  # USDC: debt of fully closed-out silos beyond their own collateral
    "fund_draw",  # USDC: what the insurance fund paid
    "adl_events",  # count: winners' balances taken by auto-deleveraging
    "adl_amount",  # USDC taken by auto-deleveraging
    "uncovered",  # USDC: debt nobody could pay (after deleveraging)
    "slippage",  # USDC: close-out prices against the marks
    "closed_notional",  # USDC: underlying notional of the positions closed out
    "liquidations",  # count: close-outs, partial or full
    "full_liquidations",  # count: close-outs of every position of a silo
    "defaults",  # count: full close-outs that left debt beyond the silo's collateral
    "cascade_rounds",  # count: most liquidation rounds on any day
    "fund_end",  # USDC: insurance fund at the end of the path
    "vm_residue",  # USDC: variation-margin rounding paid to the fund
    "liquidator_pnl",  # USDC: the backstop liquidator's cash and positions at the end
)
_INDEX = {name: position for position, name in enumerate(METRICS)}


@dataclass
class _Silo:
    """A margin silo: an account (cross, portfolio), an account's positions on one chain
    (cross per chain) or one position (isolated). Each has its own collateral and liquidation."""

    id: str
    kind: str
    chain: int
    positions: dict[int, int]
    collateral: int = 0
    balance: int = 0


@dataclass
class PathResult:
    """Figures of one path."""

    metrics: FloatArray
    """combos x METRICS."""
    by_kind: FloatArray
    """combos x participant kinds: bad debt caused by each kind."""
    collateral_by_kind: FloatArray
    """combos x participant kinds: collateral required on the opening day."""
    path_stats: FloatArray
    """[worst daily log return of any used underlying, worst drawdown of the first used one]."""


def instrument_delta(kind: npt.NDArray[np.int32], price: FloatArray, vol: FloatArray, strike: FloatArray, expiry: FloatArray) -> FloatArray:
    """dV/dS of one unit: 1 for a perpetual, Black-76's N(d1) (call) or N(d1) - 1 (put), and
    the intrinsic value's slope where nothing is left to price."""
    is_option = kind != InstrumentKind.PERP
    is_call = kind == InstrumentKind.CALL
    priced = is_option & (expiry > 0.0) & (vol > 0.0) & (price > 0.0)
    safe_price = np.where(priced, price, 1.0)
    safe_strike = np.where(priced, strike, 1.0)
    total_vol = np.where(priced, vol * np.sqrt(np.where(priced, expiry, 1.0)), 1.0)
    d1 = (np.log(safe_price / safe_strike) + 0.5 * total_vol * total_vol) / total_vol
    call = normal_cdf(d1)
    priced_delta = np.where(is_call, call, call - 1.0)
    intrinsic = np.where(is_call, (price > strike).astype(np.float64), -(price < strike).astype(np.float64))
    delta: FloatArray = np.where(is_option, np.where(priced, priced_delta, intrinsic), 1.0)
    return delta


def _silos(spec: SimulationSpec, mode: str) -> list[_Silo]:
    silos: list[_Silo] = []
    for participant in spec.participants:
        if mode == "isolated":
            for number, (instrument, chain, size) in enumerate(participant.positions):
                silos.append(_Silo(f"{participant.id}#{number + 1}", participant.kind, chain, {instrument: size}))
        elif mode == "cross_siloed":
            by_chain: dict[int, dict[int, int]] = {}
            for instrument, chain, size in participant.positions:
                held = by_chain.setdefault(chain, {})
                held[instrument] = held.get(instrument, 0) + size
            for chain, held in sorted(by_chain.items()):
                silos.append(_Silo(f"{participant.id}@{spec.margin.market.chain_names[chain]}", participant.kind, chain, held))
        else:
            held = {}
            for instrument, _, size in participant.positions:
                held[instrument] = held.get(instrument, 0) + size
            silos.append(_Silo(participant.id, participant.kind, participant.positions[0][1], held))
    for silo in silos:
        silo.positions = {instrument: size for instrument, size in silo.positions.items() if size != 0}
    return silos


def silo_count(spec: SimulationSpec, mode: str) -> int:
    """Margin silos the market forms in `mode`."""
    return len(_silos(spec, mode))


@dataclass
class _Tally:
    values: FloatArray = field(default_factory=lambda: np.zeros(len(METRICS)))

    def add(self, name: str, amount: float) -> None:
        self.values[_INDEX[name]] += amount

    def most(self, name: str, amount: float) -> None:
        self.values[_INDEX[name]] = max(self.values[_INDEX[name]], amount)


class Clearinghouse:
    """One (model, mode) on one path: the silos, the fund and the backstop liquidator.

    `run()` plays the whole path; `open()`, `move_marks()` and `liquidation_rounds()` are its
    steps, and `silos`, `liquidator`, `fund` and `tally` its state, for tests to drive and read."""

    def __init__(self, spec: SimulationSpec, combo: tuple[str, str], closes: FloatArray) -> None:
        self.spec = spec
        self.model, self.mode = combo
        self.path = closes  # the exogenous path: each day's move is its return
        self.closes = closes.copy()  # fhs's history: from the opening day on, the impacted marks
        self.silos = _silos(spec, self.mode)
        self.index = {silo.id: silo for silo in self.silos}
        self.liquidator = _Silo(LIQUIDATOR, LIQUIDATOR, 0, {})
        self.fund = spec.fund_units
        market, instruments = spec.margin.market, spec.margin.instruments
        self.marks = [int(round(float(price) * PRICE_SCALE)) for price in closes[spec.opening_row]]
        self.perps = [i for i in range(instruments.count) if int(instruments.kind[i]) == InstrumentKind.PERP]
        self.daily_vol = market.underlying_vol / math.sqrt(DAYS_PER_YEAR)
        self.volume = np.maximum(spec.params.depth * spec.open_interest, 1e-12)
        self.tally = _Tally()
        self.by_kind = np.zeros(len(spec.kinds))
        self.collateral_by_kind = np.zeros(len(spec.kinds))
        self.total = 0
        self._book: Book | None = None
        self.checks = 0

    # ----------------------------------------------------------------- state views

    def spot(self) -> FloatArray:
        """Current marks as prices."""
        spot: FloatArray = np.array(self.marks, dtype=np.float64) / PRICE_SCALE
        return spot

    def instruments(self, day: int) -> Instruments:
        base = self.spec.margin.instruments
        is_option = base.kind != InstrumentKind.PERP
        expiry = np.where(is_option, np.maximum(0.0, base.expiry_years - day / DAYS_PER_YEAR), 0.0)
        return replace(base, expiry_years=expiry)

    def market(self) -> Market:
        return replace(self.spec.margin.market, underlying_price=self.spot())

    def book(self) -> Book:
        """The silos as the kernels' accounts (rebuilt after a close-out changes positions).

        Entries: a perpetual at the current mark (its P&L is paid as variation margin, so its
        unrealised P&L is zero); an option at 0, so its whole value is in the silo's equity:
        options are premium-style, as the margin methodology assumes (a long option needs no
        margin, a short one carries its premium as a liability)."""
        if self._book is None:
            offsets, instrument, qty = [0], [], []
            for silo in self.silos:
                for held, size in sorted(silo.positions.items()):
                    instrument.append(held)
                    qty.append(size / SIZE_SCALE)
                offsets.append(len(instrument))
            accounts = len(self.silos)
            chains = [silo.chain for silo in self.silos for _ in silo.positions]
            self._book = Book(
                position_offsets=np.array(offsets, dtype=np.int64),
                position_instrument=np.array(instrument, dtype=np.int32),
                position_chain=np.array(chains, dtype=np.int32),
                position_qty=np.array(qty, dtype=np.float64),
                position_entry=np.zeros(len(instrument)),
                collateral_offsets=np.zeros(accounts + 1, dtype=np.int64),
                collateral_asset=np.zeros(0, dtype=np.int32),
                collateral_chain=np.zeros(0, dtype=np.int32),
                collateral_amount=np.zeros(0),
            )
        book = self._book
        base = self.spec.margin.instruments
        is_perp = base.kind[book.position_instrument] == InstrumentKind.PERP
        book.position_entry[:] = np.where(is_perp, self.spot()[base.underlying[book.position_instrument]], 0.0)
        return book

    def requirements(self, day: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Initial margin, maintenance margin and unrealised P&L of every silo."""
        book, market, instruments = self.book(), self.market(), self.instruments(day)
        params = self.spec.margin.params
        if self.model == "grid":
            result = compute_margin(params, market, instruments, book)
            # A silo of the standard modes is margined by the standard rates summed over its
            # positions (the kernel's cross column); portfolio by the scenario grid.
            column = Mode.PORTFOLIO if self.mode == "portfolio" else Mode.CROSS
            return result.im[:, column].copy(), result.mm[:, column].copy(), result.upnl.copy()
        lookback = self.spec.fhs.fhs_lookback_days
        row = self.spec.opening_row + day
        self.closes[row] = self.spot()
        window = np.ascontiguousarray(self.closes[row - lookback : row + 1])
        es = EsResult.empty(book.account_count)
        RiskKernel(self.spec.fhs, params, market, instruments, window).compute(book, es)
        return es.im, es.mm, es.upnl

    def equity(self, upnl: FloatArray) -> FloatArray:
        cash = np.array([(silo.collateral + silo.balance) / UNIT for silo in self.silos])
        result: FloatArray = cash + upnl
        return result

    # ----------------------------------------------------------------- checks

    def check(self) -> None:
        """Open interest nets to zero in every instrument; no unit was created or lost."""
        net = [0] * self.spec.margin.instruments.count
        for holder in (*self.silos, self.liquidator):
            for instrument, size in holder.positions.items():
                net[instrument] += size
        if any(net):
            raise RuntimeError(f"open interest does not net to zero: {net}")
        money = self.fund + self.liquidator.balance + sum(silo.collateral + silo.balance for silo in self.silos)
        if money != self.total:
            raise RuntimeError(f"conservation failed: {money} != {self.total} base units")
        self.checks += 1

    # ----------------------------------------------------------------- money movements

    def variation_margin(self, old_marks: list[int]) -> None:
        """Pay every perpetual's P&L between two marks (floor rounding, residue to the fund)."""
        underlying = self.spec.margin.instruments.underlying
        for instrument in self.perps:
            u = int(underlying[instrument])
            if old_marks[u] == self.marks[u]:
                continue
            sizes = {holder.id: holder.positions[instrument] for holder in (*self.silos, self.liquidator) if holder.positions.get(instrument)}
            if not sizes:
                continue
            payments, residue = settle_variation(sizes, MarkMove(old_marks[u], self.marks[u], PRICE_DECIMALS), SETTLEMENT_DECIMALS)
            for holder_id, amount in payments.items():
                holder = self.liquidator if holder_id == LIQUIDATOR else self.index[holder_id]
                holder.balance += amount
            self.fund += residue
            self.tally.add("vm_residue", residue / UNIT)

    def move_marks(self, factors: FloatArray) -> None:
        """Multiply every mark by its factor, then pay variation margin on the change."""
        old = list(self.marks)
        self.marks = [int(round(mark * float(f))) if f != 1.0 else mark for mark, f in zip(old, factors)]
        self.marks = [max(mark, 1) for mark in self.marks]
        self.variation_margin(old)

    def close_out(self, silo: _Silo, equity: float, im: float, day: int, flow: FloatArray) -> None:
        """Close k/steps of every position of `silo` (the smallest k that brings its equity back
        to the initial margin of what is left, all of it if none does) with the backstop
        liquidator, at prices moved against the silo by square-root impact."""
        params = self.spec.params
        base = self.spec.margin.instruments
        held = sorted(silo.positions.items())
        rows = np.array([instrument for instrument, _ in held], dtype=np.int32)
        sizes = np.array([size / SIZE_SCALE for _, size in held])
        kind, und = base.kind[rows], base.underlying[rows]
        spot, vol = self.spot()[und], self.spec.margin.market.underlying_vol[und]
        strike, expiry = base.strike[rows], self.instruments(day).expiry_years[rows]
        value = instrument_value(kind, spot, vol, strike, expiry)
        delta = instrument_delta(kind, spot, vol, strike, expiry)
        # Every candidate k at once: steps x positions.
        fractions = np.arange(1, params.steps + 1, dtype=np.float64) / params.steps
        closed = fractions[:, None] * sizes[None, :]
        exposure = closed * delta[None, :]  # underlying units sold by closing (negative: bought)
        underlyings = len(self.marks)
        gross = np.zeros((params.steps, underlyings))
        for column in range(rows.size):
            gross[:, und[column]] += np.abs(exposure[:, column])
        move = params.impact * self.daily_vol[None, :] * np.sqrt(gross / self.volume[None, :])  # steps x underlyings
        shifted = spot[None, :] * np.exp(-np.sign(exposure) * move[:, und])
        shape = shifted.shape
        close_value = instrument_value(
            np.broadcast_to(kind, shape), shifted, np.broadcast_to(vol, shape), np.broadcast_to(strike, shape), np.broadcast_to(expiry, shape)
        )
        slippage = (np.abs(closed) * np.abs(close_value - value[None, :])).sum(axis=1)
        enough = equity - slippage >= (1.0 - fractions) * im
        k = int(np.argmax(enough[:-1])) + 1 if enough[:-1].any() else params.steps
        full = k == params.steps

        instruments_held = [instrument for instrument, _ in held]
        paid = 0.0
        for column, (instrument, size) in enumerate(held):
            amount = size if full else (1 if size > 0 else -1) * (abs(size) * k // params.steps)
            if amount == 0:
                continue
            silo.positions[instrument] = size - amount
            if silo.positions[instrument] == 0:
                del silo.positions[instrument]
            taken = self.liquidator.positions.get(instrument, 0) + amount
            if taken:
                self.liquidator.positions[instrument] = taken
            else:
                self.liquidator.positions.pop(instrument, None)
            qty = amount / SIZE_SCALE
            price = float(close_value[k - 1, column])
            if int(kind[column]) == InstrumentKind.PERP:
                # Variation margin has already paid the position to the mark: the close-out
                # only moves the difference between the mark and the close price.
                transfer = -math.ceil(abs(qty) * abs(price - float(spot[column])) * UNIT)
            elif amount > 0:
                transfer = math.floor(qty * price * UNIT)  # the silo sells its option
            else:
                transfer = -math.ceil(-qty * price * UNIT)  # the silo buys its short back
            silo.balance += transfer
            self.liquidator.balance -= transfer
            paid += abs(qty) * abs(price - float(value[column]))
            self.tally.add("closed_notional", abs(qty) * float(spot[column]))
            flow[und[column]] += qty * float(delta[column])
        self._book = None
        self.tally.add("slippage", paid)
        self.tally.add("liquidations", 1)
        if full:
            self.tally.add("full_liquidations", 1)
            self.settle_default(silo, instruments_held)

    def settle_default(self, silo: _Silo, instruments_held: list[int]) -> None:
        """A fully closed-out silo's debt through the waterfall."""
        if silo.balance >= 0:
            return
        debt = -silo.balance
        # Everyone else holding a defaulted instrument with a positive balance, the backstop
        # liquidator included: it holds the positions it took over.
        winners = {
            other.id: other.balance
            for other in (*self.silos, self.liquidator)
            if other is not silo and other.balance > 0 and any(other.positions.get(i) for i in instruments_held)
        }
        steps, left = cover_shortfall(
            debt, SETTLEMENT_ASSET, SETTLEMENT_DECIMALS, [Holding(silo.chain + 1, SETTLEMENT_ASSET, silo.collateral)], {}, 0,
            [Holding(FUND_CHAIN, SETTLEMENT_ASSET, self.fund)], winners,
        )
        own = 0
        for step in steps:
            if step.kind == "own_cash":
                silo.collateral -= step.units
                own += step.covers
            elif step.kind == "fund_pays":
                self.fund -= step.units
                self.tally.add("fund_draw", step.units / UNIT)
            elif step.kind == "deleverage":
                (self.liquidator if step.payer == LIQUIDATOR else self.index[step.payer]).balance -= step.units
                self.tally.add("adl_events", 1)
                self.tally.add("adl_amount", step.units / UNIT)
            else:  # pragma: no cover - collateral is settlement cash only here
                raise RuntimeError(f"unexpected waterfall step {step.kind}")
            silo.balance += step.covers
        bad = (debt - own) / UNIT
        if bad > 0:
            self.tally.add("bad_debt", bad)
            self.tally.add("defaults", 1)
            self.by_kind[self.spec.kinds.index(silo.kind)] += bad
        self.tally.add("uncovered", left / UNIT)

    # ----------------------------------------------------------------- the path

    def open(self) -> None:
        im, _, upnl = self.requirements(0)
        required = np.maximum(im - upnl, 0.0)
        for silo, need in zip(self.silos, required):
            silo.collateral = math.ceil(self.spec.params.buffer * float(need) * UNIT)
            self.collateral_by_kind[self.spec.kinds.index(silo.kind)] += float(need)
        self.tally.add("collateral_required", float(required.sum()))
        self.total = self.fund + sum(silo.collateral for silo in self.silos)
        self.check()

    def liquidation_rounds(self, day: int) -> None:
        params = self.spec.params
        for round_number in range(1, params.max_rounds + 1):
            im, mm, upnl = self.requirements(day)
            equity = self.equity(upnl)
            below = [row for row, silo in enumerate(self.silos) if silo.positions and equity[row] < mm[row]]
            if not below:
                return
            self.tally.most("cascade_rounds", round_number)
            flow = np.zeros(len(self.marks))
            for row in below:
                self.close_out(self.silos[row], float(equity[row]), float(im[row]), day, flow)
            self.check()
            # The round's net flow leaves part of its impact in the marks: selling lowers them.
            move = params.permanent * params.impact * self.daily_vol * np.sqrt(np.abs(flow) / self.volume)
            factors = np.exp(-np.sign(flow) * move)
            if np.any(factors != 1.0):
                self.move_marks(factors)
                self.check()

    def run(self) -> None:
        opening = self.spec.opening_row
        self.open()
        self.liquidation_rounds(0)
        for day in range(1, self.spec.params.days + 1):
            self.move_marks(self.path[opening + day] / self.path[opening + day - 1])
            self.check()
            self.liquidation_rounds(day)
        self.tally.add("fund_end", self.fund / UNIT)
        self.tally.add("liquidator_pnl", self.liquidator.balance / UNIT + self.option_value(self.liquidator, self.spec.params.days))

    def option_value(self, holder: _Silo, day: int) -> float:
        """Value of a holder's options at the current marks (perpetuals are settled to the mark)."""
        base = self.spec.margin.instruments
        options = [(i, size) for i, size in sorted(holder.positions.items()) if int(base.kind[i]) != InstrumentKind.PERP]
        if not options:
            return 0.0
        rows = np.array([i for i, _ in options], dtype=np.int32)
        und = base.underlying[rows]
        value = instrument_value(base.kind[rows], self.spot()[und], self.spec.margin.market.underlying_vol[und], base.strike[rows],
                                 self.instruments(day).expiry_years[rows])
        return math.fsum(size / SIZE_SCALE * float(v) for (_, size), v in zip(options, value))


def simulate_closes(spec: SimulationSpec, closes: FloatArray) -> PathResult:
    """Every (model, mode) of the spec on one path of closes (spec.rows x market underlyings)."""
    metrics = np.zeros((len(spec.combos), len(METRICS)))
    by_kind = np.zeros((len(spec.combos), len(spec.kinds)))
    collateral = np.zeros((len(spec.combos), len(spec.kinds)))
    for row, combo in enumerate(spec.combos):
        house = Clearinghouse(spec, combo, closes)
        house.run()
        metrics[row] = house.tally.values
        by_kind[row] = house.by_kind
        collateral[row] = house.collateral_by_kind
    opening = spec.opening_row
    used = [column for column in range(closes.shape[1]) if np.any(closes[:, column] != closes[opening, column])]
    stats = np.zeros(2)
    if used:
        window = closes[opening:, used]
        stats[0] = float(np.diff(np.log(window), axis=0).min()) if window.shape[0] > 1 else 0.0
        stats[1] = float(window[:, 0].min() / window[0, 0] - 1.0)
    return PathResult(metrics=metrics, by_kind=by_kind, collateral_by_kind=collateral, path_stats=stats)


def simulate_path(spec: SimulationSpec, index: int) -> PathResult:
    """Path `index` of the spec's price source, through every (model, mode)."""
    return simulate_closes(spec, path_closes(spec, index))
