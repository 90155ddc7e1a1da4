"""The margin engine's data: parameters, market, instruments, book and results.

Everything is columnar (numpy arrays) because the node keeps every account in arrays and the
C kernel reads them in place. Accounts hold positions and collateral in CSR form: the rows of
account k are `offsets[k]:offsets[k + 1]` of the per-entry arrays.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int32]
OffsetArray = npt.NDArray[np.int64]
FlagArray = npt.NDArray[np.uint8]

#: What identifies an instrument: (underlying index, InstrumentKind, strike, expiry in years).
InstrumentKey = tuple[int, int, float, float]


class InstrumentKind(enum.IntEnum):
    """What an instrument is; the values are the kernel's MARGIN_KIND_* codes."""

    PERP = 0
    CALL = 1
    PUT = 2


class Mode(enum.IntEnum):
    """Margin modes, in the column order of the result matrices."""

    ISOLATED = 0
    CROSS_SILOED = 1
    CROSS = 2
    PORTFOLIO = 3

    @property
    def label(self) -> str:
        """The mode's name in JSON output and the methodology document."""
        return self.name.lower()


@dataclass(frozen=True)
class MarginParams:
    """Methodology parameters (v1 defaults); a RISK file's `params` overrides any of them."""

    price_steps: int = 9
    """Number of evenly spaced portfolio price moves from -R to +R (at least 2)."""
    vol_shocks: tuple[float, ...] = (-0.30, 0.0, 0.30)
    """Relative implied-vol shocks combined with every price move."""
    extreme_move: float = 2.0
    """The two extreme scenarios move the price by +-extreme_move x R, vol unchanged."""
    extreme_weight: float = 0.35
    """Weight applied to the extreme scenarios' P&L."""
    pm_floor_rate: float = 0.005
    """Portfolio maintenance floor per underlying, as a fraction of gross notional."""
    im_multiplier: float = 1.25
    """Portfolio initial margin = im_multiplier x portfolio maintenance margin."""
    perp_im_rate: float = 0.10
    """Standard initial margin of a perpetual, as a fraction of notional."""
    perp_mm_rate: float = 0.05
    """Standard maintenance margin of a perpetual, as a fraction of notional."""
    short_option_im_rate: float = 0.15
    """Short option initial margin: this fraction of spot, less out-of-the-money amount."""
    short_option_im_floor_rate: float = 0.10
    """Short option initial margin never falls below this fraction of spot (plus premium)."""
    short_option_mm_rate: float = 0.075
    """Short option maintenance margin: this fraction of spot, plus premium."""
    haircut_z: float = 2.33
    """Confidence multiplier on daily collateral volatility (2.33 ~ 99% one-sided)."""
    haircut_liq_days: float = 2.0
    """Days assumed to liquidate collateral; volatility scales with its square root."""
    haircut_conc_k: float = 0.1
    """Concentration haircut per unit of (holding value / market depth)."""
    haircut_max: float = 0.5
    """No collateral is haircut by more than this fraction."""
    ewma_lambda: float = 0.94
    """Decay of the EWMA volatility estimate from a price history (RiskMetrics' 0.94)."""

    @property
    def scenario_count(self) -> int:
        """Portfolio scenarios per underlying: the price x vol grid plus two extremes."""
        return self.price_steps * len(self.vol_shocks) + 2


@dataclass(frozen=True)
class Market:
    """Prices and risk inputs, indexed by underlying, asset and chain number."""

    underlying_names: tuple[str, ...]
    """Underlying names; position instruments refer to them by index."""
    underlying_price: FloatArray
    """Spot price S_u of each underlying."""
    underlying_vol: FloatArray
    """Annualised implied volatility sigma_u of each underlying."""
    underlying_scan_range: FloatArray
    """Portfolio scan range R_u: the largest relative price move of the grid."""
    asset_names: tuple[str, ...]
    """Collateral asset names; collateral entries refer to them by index."""
    asset_price: FloatArray
    """Price P_a of one unit of each asset."""
    asset_base_haircut: FloatArray
    """Fixed part of each asset's haircut."""
    asset_depth: FloatArray
    """Market depth of each asset, in value: what can be sold without moving the price much."""
    asset_daily_vol: FloatArray
    """Daily volatility v_a of each asset (given, or the EWMA of its price history)."""
    chain_names: tuple[str, ...]
    """Chain names; positions and collateral entries refer to them by index."""


@dataclass(frozen=True)
class Instruments:
    """The instrument table: every distinct contract positions can refer to."""

    underlying: IndexArray
    """Index of the instrument's underlying in the market."""
    kind: IndexArray
    """InstrumentKind code."""
    strike: FloatArray
    """Strike K of an option (0 for perpetuals)."""
    expiry_years: FloatArray
    """Time to expiry T of an option in years (0 for perpetuals)."""

    @property
    def count(self) -> int:
        """Number of instruments."""
        return int(self.kind.shape[0])

    @staticmethod
    def from_keys(index: Mapping[InstrumentKey, int]) -> Instruments:
        """The table whose row `index[key]` is the instrument `key` (indices 0..n-1)."""
        ordered = sorted(index, key=index.__getitem__)
        return Instruments(
            underlying=np.array([key[0] for key in ordered], dtype=np.int32),
            kind=np.array([key[1] for key in ordered], dtype=np.int32),
            strike=np.array([key[2] for key in ordered], dtype=np.float64),
            expiry_years=np.array([key[3] for key in ordered], dtype=np.float64),
        )


@dataclass(frozen=True)
class Book:
    """Every account's positions and collateral, in CSR form."""

    position_offsets: OffsetArray
    """Positions of account k are rows position_offsets[k]:position_offsets[k + 1]."""
    position_instrument: IndexArray
    """Instrument index of each position."""
    position_chain: IndexArray
    """Chain index each position lives on."""
    position_qty: FloatArray
    """Signed quantity in units of the underlying (negative = short)."""
    position_entry: FloatArray
    """Entry price (value per unit) the position was opened at."""
    collateral_offsets: OffsetArray
    """Collateral of account k are rows collateral_offsets[k]:collateral_offsets[k + 1]."""
    collateral_asset: IndexArray
    """Asset index of each collateral entry."""
    collateral_chain: IndexArray
    """Chain index each collateral entry is held on."""
    collateral_amount: FloatArray
    """Amount of the asset, in units of the asset."""

    @property
    def account_count(self) -> int:
        """Number of accounts."""
        return int(self.position_offsets.shape[0]) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the book's arrays."""
        return sum(
            array.nbytes
            for array in (
                self.position_offsets,
                self.position_instrument,
                self.position_chain,
                self.position_qty,
                self.position_entry,
                self.collateral_offsets,
                self.collateral_asset,
                self.collateral_chain,
                self.collateral_amount,
            )
        )


@dataclass(frozen=True)
class MarginResult:
    """Per-account margin figures; row k belongs to account k of the book."""

    collateral_value: FloatArray
    """Haircut value of all collateral."""
    upnl: FloatArray
    """Sum of unrealised P&L over positions."""
    equity: FloatArray
    """collateral_value + upnl."""
    im: FloatArray
    """Initial margin, accounts x 4 (Mode columns)."""
    mm: FloatArray
    """Maintenance margin, accounts x 4 (Mode columns)."""
    required: FloatArray
    """Collateral required by each mode, accounts x 4 (Mode columns)."""
    health: FloatArray
    """equity / portfolio maintenance margin; NaN when that margin is 0."""
    liquidatable: FlagArray = field(repr=False)
    """1 when equity < portfolio maintenance margin."""

    @staticmethod
    def empty(account_count: int) -> MarginResult:
        """Zeroed result arrays for `account_count` accounts."""
        return MarginResult(
            collateral_value=np.zeros(account_count),
            upnl=np.zeros(account_count),
            equity=np.zeros(account_count),
            im=np.zeros((account_count, len(Mode))),
            mm=np.zeros((account_count, len(Mode))),
            required=np.zeros((account_count, len(Mode))),
            health=np.zeros(account_count),
            liquidatable=np.zeros(account_count, dtype=np.uint8),
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the result arrays."""
        return sum(
            array.nbytes
            for array in (
                self.collateral_value,
                self.upnl,
                self.equity,
                self.im,
                self.mm,
                self.required,
                self.health,
                self.liquidatable,
            )
        )
