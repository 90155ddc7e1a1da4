"""Chain adapters: typed, exactly-once observations of chain events at each chain's finality.

The interface and observation types live in `crossclear.chains.interface` (re-exported
here); the EVM implementation in `crossclear.chains.evm` (imported on demand: it pulls in
web3); `create_adapter` builds any configured kind, including entry-point plugins.
"""

from crossclear.chains.config import ChainConfigError, EvmChainConfig, Finality
from crossclear.chains.cursor_store import CursorStore
from crossclear.chains.interface import (
    Address,
    AnyObservation,
    BlockRef,
    ChainAdapter,
    ChainAdapterError,
    Cursor,
    DepositObserved,
    Health,
    HealthReport,
    InstrumentKind,
    Observation,
    ObservationBatch,
    ObservationKey,
    PriceUpdated,
    Released,
    ReorgTooDeep,
    RootUpdated,
    Seized,
    Traded,
    VaultRoot,
)
from crossclear.chains.registry import ENTRY_POINT_GROUP, create_adapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Address",
    "AnyObservation",
    "BlockRef",
    "ChainAdapter",
    "ChainAdapterError",
    "ChainConfigError",
    "Cursor",
    "CursorStore",
    "DepositObserved",
    "EvmChainConfig",
    "Finality",
    "Health",
    "HealthReport",
    "InstrumentKind",
    "Observation",
    "ObservationBatch",
    "ObservationKey",
    "PriceUpdated",
    "Released",
    "ReorgTooDeep",
    "RootUpdated",
    "Seized",
    "Traded",
    "VaultRoot",
    "create_adapter",
]
