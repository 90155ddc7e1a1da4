"""The chain-adapter interface: what any network must offer crossclear, and what it reports.

An adapter turns one chain's events into typed observations, exactly once, at the finality
that chain needs. Everything the node believes about collateral, positions and prices comes
through this interface, so it is small and stable:

- identity: `network` (a name from config) and `chain_id`;
- `head()` and `finalized_head()`;
- `observations(cursor)`: an async stream of `ObservationBatch`es after a cursor, each batch
  covering a range of final blocks and carrying the cursor to resume from;
- `vault_root(block_number)`: the vault's Merkle root and leaf count at a block;
- `submit_transaction(raw)`: broadcast a signed transaction;
- `health()`: ok, degraded (retrying) or halted (needs an operator).

Every observation carries chain id, emitting contract, block number and hash, transaction
hash and log index, so a consumer can store it idempotently under `observation.key`.

Conventions: addresses are EIP-55 checksummed `0x` strings; hashes are 32 raw bytes; token
amounts are integers in the token's smallest unit; field elements (leaves, roots, secret
hashes) are integers below the BN254 scalar field order. `Market` prices, sizes and strikes
are fixed-point with 18 decimals; `PriceFeed` answers use the feed's own `decimals`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

#: An EIP-55 checksummed, 0x-prefixed 20-byte address.
Address: TypeAlias = str


class Health(enum.Enum):
    """How an adapter is doing, as status and metrics report it."""

    OK = "ok"
    """Following the chain normally."""
    DEGRADED = "degraded"
    """Calls are failing or slow; the adapter retries with back-off and emits nothing new."""
    HALTED = "halted"
    """Stopped on purpose (deeper reorg than configured, wrong chain); needs an operator."""


@dataclass(frozen=True)
class HealthReport:
    """An adapter's health with the reason a person reads in status output."""

    state: Health
    """ok, degraded or halted."""
    reason: str
    """One line: why the state is what it is ("" when ok)."""
    since: float
    """Unix time the adapter entered this state."""


@dataclass(frozen=True)
class BlockRef:
    """A block identified by number and hash (a hash pins one branch of a fork)."""

    number: int
    """Block height."""
    hash: bytes
    """32-byte block hash."""
    timestamp: int
    """Block timestamp, Unix seconds."""


@dataclass(frozen=True)
class Cursor:
    """Where an observation stream stands: everything up to and including this block was delivered."""

    chain_id: int
    """The chain this cursor belongs to."""
    block_number: int
    """Last block whose observations were all delivered (-1: nothing yet, start at genesis)."""
    block_hash: bytes
    """Hash of that block, checked on resume to detect a reorg deeper than finality (b"" at -1)."""
    block_timestamp: int = field(default=0, compare=False)
    """Timestamp of that block, Unix seconds (0 when not known, e.g. a cursor built to resume)."""

    @staticmethod
    def genesis(chain_id: int) -> Cursor:
        """A cursor before block 0: the stream starts from the first block."""
        return Cursor(chain_id=chain_id, block_number=-1, block_hash=b"")

    @staticmethod
    def before(chain_id: int, block_number: int) -> Cursor:
        """A cursor that starts the stream at `block_number` (no hash check for the block before)."""
        return Cursor(chain_id=chain_id, block_number=block_number - 1, block_hash=b"")


@dataclass(frozen=True, order=True)
class ObservationKey:
    """The identity of one observed event: unique on a chain's canonical history."""

    chain_id: int
    """Chain the event happened on."""
    block_number: int
    """Block height of the event."""
    log_index: int
    """Index of the log within its block."""


@dataclass(frozen=True, kw_only=True)
class Observation:
    """Fields every observed event carries, enough to store it once and find it again."""

    chain_id: int
    """EIP-155 chain id of the chain the event happened on."""
    contract: Address
    """The configured contract that emitted the event."""
    block_number: int
    """Block height of the event."""
    block_hash: bytes
    """32-byte hash of that block."""
    block_timestamp: int
    """Timestamp of that block, Unix seconds."""
    tx_hash: bytes
    """32-byte hash of the transaction that emitted the event."""
    log_index: int
    """Index of the log within its block."""

    @property
    def key(self) -> ObservationKey:
        """Idempotency key: store an observation under this and a replay is a no-op."""
        return ObservationKey(self.chain_id, self.block_number, self.log_index)


@dataclass(frozen=True, kw_only=True)
class DepositObserved(Observation):
    """`CollateralVault.Deposited`: a token deposit became a leaf of the vault's Merkle tree."""

    account: Address
    """Depositor; the leaf commits to uint160 of this address."""
    asset: Address
    """Token deposited; the leaf commits to uint160 of this address."""
    amount: int
    """Amount transferred into the vault, in the token's smallest unit."""
    secret_hash: int
    """Poseidon(secret), chosen by the depositor."""
    leaf: int
    """Poseidon(account, asset, amount, secret_hash), computed by the vault."""
    leaf_index: int
    """Position of the leaf in the tree, 0-based."""
    root: int
    """Tree root after inserting this leaf."""


@dataclass(frozen=True, kw_only=True)
class RootUpdated(Observation):
    """`CollateralVault.RootUpdated`: the vault's Merkle root after a change (what nodes attest)."""

    root: int
    """New tree root."""
    leaf_count: int
    """Number of leaves in the tree under this root."""


class InstrumentKind(enum.Enum):
    """What a `Market` instrument is."""

    PERPETUAL = 0
    """Perpetual future."""
    OPTION = 1
    """European option."""


@dataclass(frozen=True, kw_only=True)
class Traded(Observation):
    """`Market.Traded`: one trade between two parties (a filled maker order or a close-out)."""

    trade_id: bytes
    """32-byte id, unique per trade: keccak256(abi.encode(order hash or close-out digest, fill index))."""
    maker: Address
    """The order's maker, or the closed-out account in a close-out."""
    taker: Address
    """Who filled the order, or the backstop liquidator that took the close-out."""
    underlying: Address
    """Token the instrument is on (its `PriceFeed` prices it)."""
    kind: InstrumentKind
    """Perpetual or option."""
    strike: int
    """Option strike, 18 decimals; 0 for perpetuals."""
    expiry: int
    """Option expiry, Unix seconds; 0 for perpetuals."""
    is_call: bool
    """True for a call; False for a put and for perpetuals."""
    maker_size: int
    """Signed size the maker traded, 18 decimals: positive when it bought; the taker traded the negative."""
    price: int
    """Price (perpetual) or premium (option) per unit, 18 decimals."""
    close_out_id: bytes
    """32-byte id of the close-out this trade executed; 32 zero bytes for an ordinary fill."""

    @property
    def is_close_out(self) -> bool:
        """True when the node set's close-out of a defaulting account made this trade."""
        return self.close_out_id != bytes(32)


@dataclass(frozen=True, kw_only=True)
class PriceUpdated(Observation):
    """`PriceFeed.AnswerUpdated`: a new price for one asset."""

    asset: Address
    """Token the feed prices."""
    answer: int
    """Price in USD, scaled by 10**decimals."""
    decimals: int
    """Decimals of `answer`."""
    round_id: int
    """Feed round number, increasing."""
    updated_at: int
    """When the price was set, Unix seconds (staleness is judged from this)."""


@dataclass(frozen=True, kw_only=True)
class Released(Observation):
    """`CollateralVault.Released`: a quorum-signed withdrawal paid out."""

    order_id: bytes
    """32-byte release id (usable once)."""
    account: Address
    """Account whose collateral was released."""
    asset: Address
    """Token paid out."""
    amount: int
    """Amount paid, in the token's smallest unit."""
    recipient: Address
    """Who received it."""


@dataclass(frozen=True, kw_only=True)
class Seized(Observation):
    """`CollateralVault.Seized`: a quorum-signed liquidation took collateral."""

    order_id: bytes
    """32-byte seize id (usable once)."""
    account: Address
    """Liquidated account."""
    asset: Address
    """Token seized."""
    amount: int
    """Amount seized, in the token's smallest unit."""
    recipient: Address
    """Who received it (the liquidator)."""


#: Every observation type an adapter may emit.
AnyObservation: TypeAlias = DepositObserved | RootUpdated | Traded | PriceUpdated | Released | Seized


@dataclass(frozen=True)
class ObservationBatch:
    """Observations of a range of final blocks, in chain order, and the cursor after them."""

    chain_id: int
    """Chain the batch comes from."""
    first_block: int
    """First block the batch covers."""
    cursor: Cursor
    """Resume point: the last block the batch covers; persist it once the batch is handled."""
    observations: tuple[AnyObservation, ...]
    """Events in (block number, log index) order; empty when the blocks held none."""


@dataclass(frozen=True)
class VaultRoot:
    """The vault's Merkle tree at one block."""

    root: int
    """Tree root."""
    leaf_count: int
    """Leaves inserted so far."""
    block: BlockRef
    """Block the state was read at."""


class ChainAdapterError(Exception):
    """A chain cannot be used as configured; the message names the chain and the problem."""


class ReorgTooDeep(ChainAdapterError):
    """A block the adapter already treated as final changed: the chain reorganised past its finality."""


@runtime_checkable
class ChainAdapter(Protocol):
    """What crossclear needs from one network. EVM chains use `EvmChainAdapter`; others plug in
    through the `crossclear.chain_adapters` entry point group and must pass
    `crossclear.chains.conformance`."""

    @property
    def network(self) -> str:
        """Name of the network in config (e.g. "devnet-a")."""
        ...

    @property
    def chain_id(self) -> int:
        """EIP-155 chain id (or the network's equivalent numeric id)."""
        ...

    async def connect(self) -> None:
        """Check the configuration against the chain (id, contracts); raise ChainAdapterError naming the problem."""
        ...

    async def head(self) -> BlockRef:
        """The newest block the RPC knows."""
        ...

    async def finalized_head(self) -> BlockRef:
        """The newest block this adapter treats as final (confirmation depth or the chain's finality tag)."""
        ...

    def observations(self, cursor: Cursor) -> AsyncIterator[ObservationBatch]:
        """Batches of observations from final blocks after `cursor`, forever, each event once.

        Raises ReorgTooDeep (and turns health to halted) if a delivered block changed.
        """
        ...

    async def vault_root(self, block_number: int) -> VaultRoot:
        """The vault's root and leaf count at a block."""
        ...

    async def submit_transaction(self, raw_transaction: bytes) -> bytes:
        """Broadcast a signed transaction; returns its 32-byte hash."""
        ...

    def health(self) -> HealthReport:
        """Current health, without I/O."""
        ...

    async def close(self) -> None:
        """Release connections; the adapter cannot be used afterwards."""
        ...
