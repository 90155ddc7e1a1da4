"""The simulated market: who holds what, which margin silos they form, and where prices come from.

Every long has a short. The books of an ACCOUNTS file are one side of the market; their
counterparties are `market_makers` market-maker accounts: book k's positions, negated, go to
market maker k mod M (a market maker's mirrored positions in the same instrument and chain are
netted). Open interest then nets to zero in every instrument by construction, and the engine
checks it after every step (the backstop liquidator, which takes over closed positions, is
counted too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import MarginInputs
from crossclear.margin._model import FloatArray
from crossclear.risk._inputs import underlyings_in_use
from crossclear.risk._model import FhsParams, History
from crossclear.risk.backtest import book_type
from crossclear.risk.synthetic import CryptoModel, generate

#: Position sizes are fixed point with 18 decimals (as `Market` emits them and
#: `crossclear.clearing.settle_variation` reads them).
SIZE_DECIMALS = 18
SIZE_SCALE = 10**SIZE_DECIMALS
#: Marks are certified answers with 8 decimals.
PRICE_DECIMALS = 8
PRICE_SCALE = 10**PRICE_DECIMALS
#: The settlement asset (and the only collateral): USDC, 6 decimals.
SETTLEMENT_ASSET = "USDC"
SETTLEMENT_DECIMALS = 6
UNIT = 10**SETTLEMENT_DECIMALS

#: (model, mode) pairs the simulator can run, in report order: v1's grid in each of its four
#: modes, and v2 (filtered historical simulation), which is a portfolio methodology.
ALL_COMBOS: tuple[tuple[str, str], ...] = (
    ("grid", "isolated"),
    ("grid", "cross_siloed"),
    ("grid", "cross"),
    ("grid", "portfolio"),
    ("fhs", "portfolio"),
)

MARKET_MAKER = "market-maker"
SOURCES = ("synthetic", "arch")


@dataclass(frozen=True)
class CascadeParams:
    """How the simulated clearinghouse behaves (docs/cascade-simulator.md, "Mechanics")."""

    days: int = 30
    """Days simulated after the opening day (the standard books' options expire on day 30)."""
    buffer: float = 1.0
    """Each margin silo posts buffer x its required collateral on the opening day."""
    fund: float | None = None
    """Insurance fund at the start, in USDC; None: fund_fraction x open-interest notional."""
    fund_fraction: float = 0.01
    """Fund size as a fraction of the opening open-interest notional (when `fund` is None)."""
    impact: float = 1.0
    """Y of the square-root impact law: a close-out of Q underlying units moves the price by
    Y x daily vol x sqrt(Q / daily volume)."""
    depth: float = 1.0
    """Daily volume of each underlying, as a multiple of its open interest (in units)."""
    permanent: float = 0.5
    """Fraction of a round's net liquidation impact that stays in the mark (the cascade feedback)."""
    market_makers: int = 4
    """Market-maker accounts that take the other side of the books."""
    steps: int = 20
    """A close-out closes k/steps of every position of the silo (k = 1..steps)."""
    max_rounds: int = 20
    """Liquidation rounds per day at most (margin, close-outs, impact, variation margin)."""


@dataclass(frozen=True)
class Participant:
    """An account of the simulated market."""

    id: str
    """Account id (a book's, or "market-maker-<n>")."""
    kind: str
    """Book type ("outright-long", ...) or "market-maker"."""
    positions: tuple[tuple[int, int, int], ...]
    """(instrument, chain, signed size with 18 decimals) rows."""


@dataclass(frozen=True)
class PathSource:
    """Where price paths come from."""

    kind: str
    """"synthetic" (crossclear.risk.synthetic, seed + path index) or "arch" (real closes)."""
    seed: int
    """Seed of path 0 (synthetic)."""
    history: History | None = None
    """The real closes (arch): path k is a window starting at an evenly spaced day."""

    @property
    def names(self) -> tuple[str, ...]:
        """Underlyings this source has prices for."""
        if self.history is not None:
            return self.history.names
        return tuple(u.name for u in CryptoModel().underlyings)

    def describe(self) -> str:
        """One line for the report."""
        if self.history is None:
            return f"synthetic crypto paths (crossclear.risk.synthetic, seeds {self.seed}...)"
        return f"real daily closes {self.history.dates[0]} to {self.history.dates[-1]} ({', '.join(self.history.names)})"


@dataclass(frozen=True)
class SimulationSpec:
    """Everything a path needs; the same for every path and every worker."""

    margin: MarginInputs
    """Market at the reference (opening) prices, instruments at their opening expiry, the books."""
    fhs: FhsParams
    """v2 parameters (the lookback also sets how many closes precede the opening day)."""
    params: CascadeParams
    """Simulator parameters."""
    source: PathSource
    """Price paths."""
    paths: int
    """Number of paths."""
    combos: tuple[tuple[str, str], ...]
    """(model, mode) pairs simulated on every path."""
    participants: tuple[Participant, ...]
    """Books, then market makers."""
    open_interest: FloatArray
    """Open interest of each market underlying, in units (sum of the long sizes)."""
    fund_units: int
    """Insurance fund at the start, in USDC base units."""
    kinds: tuple[str, ...]
    """Participant kinds, in report order (book types, then market-maker)."""

    @property
    def rows(self) -> int:
        """Closes per path: the fhs lookback, the opening day and the simulated days."""
        return self.fhs.fhs_lookback_days + 1 + self.params.days

    @property
    def opening_row(self) -> int:
        """Row of the opening day in a path's closes."""
        return self.fhs.fhs_lookback_days


def _size(qty: float) -> int:
    # The decimal the float was written as, in 18-decimal fixed point (no binary noise).
    return int(Decimal(repr(qty)).scaleb(SIZE_DECIMALS).to_integral_value())


def participants_for(margin: MarginInputs, market_makers: int) -> tuple[Participant, ...]:
    """The books of `margin` and their market-maker counterparties."""
    book = margin.book
    books: list[Participant] = []
    mirrors: list[dict[tuple[int, int], int]] = [{} for _ in range(market_makers)]
    for row, account in enumerate(margin.account_ids):
        start, stop = int(book.position_offsets[row]), int(book.position_offsets[row + 1])
        positions = []
        for index in range(start, stop):
            size = _size(float(book.position_qty[index]))
            if size == 0:
                continue
            instrument, chain = int(book.position_instrument[index]), int(book.position_chain[index])
            positions.append((instrument, chain, size))
            mirror = mirrors[row % market_makers]
            mirror[(instrument, chain)] = mirror.get((instrument, chain), 0) - size
        books.append(Participant(id=account, kind=book_type(account), positions=tuple(positions)))
    makers = [
        Participant(
            id=f"{MARKET_MAKER}-{number + 1}",
            kind=MARKET_MAKER,
            positions=tuple((instrument, chain, size) for (instrument, chain), size in sorted(mirror.items()) if size != 0),
        )
        for number, mirror in enumerate(mirrors)
    ]
    return tuple(books) + tuple(maker for maker in makers if maker.positions)


def net_open_interest(participants: tuple[Participant, ...], instruments: int) -> list[int]:
    """Sum of the sizes of every instrument (zero in a market where every long has a short)."""
    net = [0] * instruments
    for participant in participants:
        for instrument, _, size in participant.positions:
            net[instrument] += size
    return net


def _check_positive(value: float, name: str, strict: bool = True) -> None:
    if not math.isfinite(value) or (value <= 0.0 if strict else value < 0.0):
        raise UsageError(f"{name} must be {'positive' if strict else 'at least 0'}, got {value!r}")


def build_spec(
    margin: MarginInputs, fhs: FhsParams, params: CascadeParams, source: PathSource, paths: int,
    combos: tuple[tuple[str, str], ...] = ALL_COMBOS,
) -> SimulationSpec:
    """Check the inputs and put the simulated market together; UsageError names any problem."""
    if paths < 1:
        raise UsageError(f"--paths must be at least 1, got {paths}")
    if params.days < 1:
        raise UsageError(f"--days must be at least 1, got {params.days}")
    for value, name in ((params.buffer, "--buffer"), (params.depth, "--depth")):
        _check_positive(value, name)
    for value, name in ((params.impact, "--impact"), (params.fund_fraction, "fund fraction")):
        _check_positive(value, name, strict=False)
    if params.fund is not None:
        _check_positive(params.fund, "--fund", strict=False)
    if not 0.0 <= params.permanent <= 1.0:
        raise UsageError(f"--permanent must be between 0 and 1, got {params.permanent!r}")
    if params.market_makers < 1 or params.steps < 1 or params.max_rounds < 1:
        raise UsageError("--market-makers, --steps and the rounds per day must be at least 1")
    if not combos or any(combo not in ALL_COMBOS for combo in combos):
        raise UsageError(f"unknown (model, mode) pair in {combos!r}")
    used = underlyings_in_use(margin)
    if not used:
        raise UsageError("the books hold no positions: nothing to simulate")
    missing = [name for name in used if name not in source.names]
    if missing:
        raise UsageError(f"the books use {missing[0]!r}, which the {source.kind} price source does not have (it has: {', '.join(source.names)})")
    rows = fhs.fhs_lookback_days + 1 + params.days
    if source.history is not None and len(source.history.dates) < rows:
        raise UsageError(
            f"the history has {len(source.history.dates)} days; a path needs {rows} "
            f"(lookback {fhs.fhs_lookback_days} + opening day + {params.days} days)"
        )
    participants = participants_for(margin, params.market_makers)
    if any(net_open_interest(participants, margin.instruments.count)):
        raise RuntimeError("the simulated market's open interest does not net to zero")  # a bug, not bad input
    open_interest = np.zeros(len(margin.market.underlying_names))
    for participant in participants:
        for instrument, _, size in participant.positions:
            if size > 0:
                open_interest[int(margin.instruments.underlying[instrument])] += size / SIZE_SCALE
    notional = sum(float(units) * float(price) for units, price in zip(open_interest, margin.market.underlying_price))
    fund = params.fund if params.fund is not None else params.fund_fraction * notional
    kinds = tuple(sorted({p.kind for p in participants} - {MARKET_MAKER})) + ((MARKET_MAKER,) if any(p.kind == MARKET_MAKER for p in participants) else ())
    return SimulationSpec(
        margin=margin, fhs=fhs, params=params, source=source, paths=paths, combos=combos, participants=participants,
        open_interest=open_interest, fund_units=int(round(fund * UNIT)), kinds=kinds,
    )


def path_closes(spec: SimulationSpec, index: int) -> FloatArray:
    """Closes of path `index`: spec.rows x market underlyings, oldest first, scaled so that every
    underlying opens (row spec.opening_row) at the RISK file's price. Unused underlyings stay flat."""
    market = spec.margin.market
    rows, opening = spec.rows, spec.opening_row
    source = spec.source
    if source.history is None:
        history = generate(rows, source.seed + index).history
        window = history.closes
        names = history.names
    else:
        history = source.history
        starts = len(history.dates) - rows + 1
        first = (index * (starts - 1)) // max(spec.paths - 1, 1) if spec.paths > 1 else starts - 1
        window = history.closes[first : first + rows]
        names = history.names
    closes = np.empty((rows, len(market.underlying_names)))
    closes[:] = market.underlying_price[None, :]
    used = underlyings_in_use(spec.margin)
    for column, name in enumerate(market.underlying_names):
        if name in names and name in used:
            series = window[:, names.index(name)]
            closes[:, column] = series / series[opening] * market.underlying_price[column]
    return closes
