"""The processor: the one task that changes a node's clearing state.

Everything else sends it typed messages on one bounded queue and reads the immutable
`MarginSnapshot` it publishes after each change. Its state is a deterministic function of
certified facts: per chain, the events of certified blocks are applied strictly in block
order (a block waits for every earlier block this node observed to be certified), and each
applied block, credited claim, signed order and expiry is one SQLite transaction together
with the ledger rows it changed. A node restarted at any point loads exactly what it had.

Money decisions are taken on chain time (the timestamps of applied blocks), never on this
node's clock: a reservation comes back only when an applied block of its chain is past the
order's deadline, and a node signs no release or seize for a chain whose adapter is not
healthy, while prices are stale, or after its conservation check failed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.address import to_checksum_address

from crossclear.attest import Observation as SignedFact
from crossclear.attest import ObservationKind
from crossclear.chains.interface import InstrumentKind, PositionChanged, PriceUpdated, Released, Seized
from crossclear.chains.vault_orders import ReleaseOrder, SeizeOrder, VaultDomain, sign
from crossclear.margin import InstrumentKind as MarginKind
from crossclear.margin import Mode
from crossclear.margin.methodology import instrument_value
from crossclear.node.claims import ClaimOutcome, CollateralToken, RejectReason, VerifiedClaim, credited_detail
from crossclear.node.clearing import SECONDS_PER_YEAR, SETTLEMENT_CHAIN, ClearingError, ClearingState, MarginSnapshot, PositionRecord
from crossclear.node.facts import ChainNames, EventsBlock, MalformedEvents, decode_events
from crossclear.node.ledger import Ledger, LedgerError, Line, OrderKind, PendingPayout, Reservation
from crossclear.node.liquidations import SignedSeize, seize_deadline, seize_id
from crossclear.node.withdrawals import MAX_RELEASE_WINDOW_SECONDS, WithdrawalRefused, WithdrawalRequest, check_shape, recover_owner, release_id
from crossclear.store import FUND, ClearingStore, ObservedRow, OrderRow, PositionRow

_log = logging.getLogger("crossclear.processor")

#: Messages waiting for the processor. Senders await room (backpressure), so the bound caps
#: memory, not correctness; certificates are re-read from the store, never lost to a full queue.
QUEUE_LIMIT = 10_000
#: Fixed-point scale of Market sizes, prices and strikes.
MARKET_UNITS = 10**18
#: Certified feed answers kept per feed for checking trade prices at their opening block.
PRICE_HISTORY_LIMIT = 4096


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProgress:
    """A chain follower stored new observed facts and advanced its cursor."""

    chain_id: int
    """The chain."""


@dataclass(frozen=True)
class CertificatesFormed:
    """Quorum certificates formed for these facts (the attestation store holds them)."""

    facts: tuple[SignedFact, ...]
    """The certified facts."""


@dataclass(frozen=True)
class CreditClaim:
    """A claim that passed every check, to be credited once."""

    verified: VerifiedClaim
    """The claim."""
    reply: asyncio.Future[ClaimOutcome] | None
    """Receives the outcome (None: gossiped claim, nobody waits)."""


@dataclass(frozen=True)
class SignRelease:
    """An owner's withdrawal request to check, reserve and sign."""

    request: WithdrawalRequest
    """What the owner asks for."""
    owner_signature: bytes
    """The owner's EIP-712 signature over it."""
    reply: asyncio.Future[tuple[VaultDomain, ReleaseOrder, bytes]]
    """Receives the signed order, or WithdrawalRefused."""


@dataclass(frozen=True)
class SignSeizes:
    """A liquidator asks for this node's seize orders."""

    reply: asyncio.Future[list[SignedSeize]]
    """Receives the signed orders."""


Message = ChainProgress | CertificatesFormed | CreditClaim | SignRelease | SignSeizes


@dataclass(frozen=True)
class ProcessorConfig:
    """What the processor needs to know about the deployment."""

    chains: Mapping[int, ChainNames]
    """Per chain id: how its addresses map to names."""
    tokens: Mapping[tuple[int, str], CollateralToken]
    """(chain id, asset) -> the token its vault pays."""
    feed_chains: Mapping[str, int]
    """Feed name -> chain id its PriceFeed lives on."""
    clearinghouse_domain: int
    """Withdrawal requests must be bound to this."""
    private_key: bytes
    """This node's signing key (vault orders)."""
    liquidation_recipient: str | None
    """Where seized collateral goes (the same on every node); None signs no seizes."""
    price_band: float = 0.05
    """A trade's price may differ from the certified mark at its block by at most this fraction."""
    settlement_asset: str = "USDC"
    """Variation margin and trade cash are paid in this asset."""


@dataclass
class _ChainView:
    cursor_block: int = -1
    cursor_timestamp: int = 0
    applied_block: int = -1
    applied_timestamp: int = 0
    pending: dict[int, list[ObservedRow]] = field(default_factory=dict)
    """Block number -> unapplied EVENTS facts this node observed at that block."""


@dataclass(frozen=True)
class ProcessorStatus:
    """What status and metrics show about the processor."""

    height: int
    chain_time: Mapping[int, tuple[int, int]]
    """Chain id -> (applied block, its timestamp)."""
    waiting_blocks: Mapping[int, int]
    """Chain id -> observed blocks waiting for certification."""
    signing_halted: str
    """Why this node stopped signing ("" when it signs)."""
    pending_payouts: int
    ignored_events: int


class Processor:
    """Owns the ledger, the clearing state and the clearing tables; see the module docstring."""

    def __init__(
        self,
        config: ProcessorConfig,
        store: ClearingStore,
        state: ClearingState,
        is_certified: Callable[[bytes], bool],
        chain_healthy: Callable[[int], bool],
    ) -> None:
        """`is_certified(digest)` reads the attestation store; `chain_healthy(chain_id)` says
        whether that chain's adapter follows its chain normally."""
        self._config = config
        self._store = store
        self._state = state
        self._is_certified = is_certified
        self._chain_healthy = chain_healthy
        self.queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_LIMIT)
        self.ledger = Ledger()
        self._views: dict[int, _ChainView] = {chain_id: _ChainView() for chain_id in config.chains}
        self._roots: set[tuple[int, bytes, bytes]] = set()
        self._credited: set[int] = set()
        self._history: dict[str, list[tuple[int, float]]] = {}
        self._signer = to_checksum_address(_address_of(config.private_key))
        self.snapshot: MarginSnapshot | None = None
        self.halted = ""
        self.ignored_events = 0
        self._replies: list[tuple[asyncio.Future[ClaimOutcome], ClaimOutcome]] = []
        self.snapshot_observers: list[Callable[[MarginSnapshot], None]] = []
        """Called on the event loop with every published snapshot."""
        self.root_observers: list[Callable[[int, int, int], None]] = []
        """Called with (chain id, vault, root) when a root is certified."""
        self.event_observers: list[Callable[[str], None]] = []
        """Called with an event name ("ignored_trade", "expired", "seize_signed", ...) (metrics)."""

    # --- reading, from anywhere ------------------------------------------------------------

    def is_root_certified(self, chain_id: int, vault: int, root: int) -> bool:
        return (chain_id, vault.to_bytes(20, "big"), root.to_bytes(32, "big")) in self._roots

    def is_credited(self, nullifier: int) -> bool:
        return nullifier in self._credited

    def chain_time(self, chain_id: int) -> int:
        """Timestamp of the newest block of `chain_id` up to which everything is applied."""
        return self._views[chain_id].applied_timestamp if chain_id in self._views else 0

    def status(self) -> ProcessorStatus:
        return ProcessorStatus(
            height=self._state.height,
            chain_time={c: (v.applied_block, v.applied_timestamp) for c, v in self._views.items()},
            waiting_blocks={c: len(v.pending) for c, v in self._views.items()},
            signing_halted=self.halted,
            pending_payouts=len(self.ledger.pending_payouts),
            ignored_events=self.ignored_events,
        )

    # --- start -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the ledger, book, prices and pending facts from the store; publish the first snapshot."""
        store, ledger = self._store, self.ledger
        for account, chain_id, asset, amount, nonce in store.balances():
            line = (account, chain_id, asset)
            if amount:
                ledger.balances[line] = amount
            if nonce:
                ledger.seize_nonces[line] = nonce
        for chain_id, asset, credited, paid_out, insurance, cash in store.pools():
            ledger.credited[(chain_id, asset)] = credited
            ledger.paid_out[(chain_id, asset)] = paid_out
            ledger.insurance[(chain_id, asset)] = insurance
            ledger.cash[(chain_id, asset)] = cash
        for account, units in store.settlements().items():
            if account == FUND:
                ledger.fund_settlement = units
            else:
                ledger.settlement[account] = units
        for row in store.orders():
            line = (row.account, row.chain_id, row.asset)
            kind = OrderKind(row.kind)
            if row.state == "open":
                ledger.reservations[row.order_id] = Reservation(row.order_id, kind, line, row.amount, row.deadline, row.token, row.recipient, row.reference)
            elif row.state == "paid":
                ledger.settled_orders.add(row.order_id)
            elif row.state == "pending":
                ledger.pending_payouts[row.order_id] = PendingPayout(row.order_id, kind, line, row.amount)
        ledger.take_changes()
        for line in {*ledger.balances, *(r.line for r in ledger.reservations.values())}:
            if ledger.margin_units(line):
                self._state.set_collateral(line[0], line[1], line[2], ledger.margin_units(line))
        for position_id, position in store.positions():
            self._state.set_position(position.account, position_id, _record(position))
        for name, updated_at, answer, decimals in store.prices():
            self._remember_price(name, updated_at, answer / 10**decimals)
        for chain_id, (block, timestamp) in store.chain_times().items():
            if chain_id in self._views:
                self._views[chain_id].applied_block, self._views[chain_id].applied_timestamp = block, timestamp
                self._state.set_chain_time(timestamp)
        for chain_id, cursor in store.cursors().items():
            if chain_id in self._views:
                self._views[chain_id].cursor_block, self._views[chain_id].cursor_timestamp = cursor.block_number, cursor.block_timestamp
        self._roots = store.certified_roots()
        self._credited = {int(r[0]) for r in store.connection.execute("SELECT nullifier FROM clearing_claims")}
        self._reload_pending()
        self._check_conservation()
        for chain_id in sorted(self._views):
            self._advance(chain_id)
        await self._publish()

    def unsigned_facts(self) -> list[SignedFact]:
        """Facts observed here and not yet applied: signed again at start (signing is
        deterministic, so a re-sign repeats the same signature), in case the node stopped
        between storing them and gossiping its signature."""
        return [_fact(row) for row in self._store.unapplied()]

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle messages until cancelled; publish a snapshot after each batch that changed state."""
        while True:
            message = await self.queue.get()
            batch = [message]
            while not self.queue.empty() and len(batch) < 1000:
                batch.append(self.queue.get_nowait())
            try:
                for item in batch:
                    try:
                        await self._handle(item)
                    except Exception as error:
                        self._failed(item, error)
                await self._publish_if_changed()
                # Replies to claims go out once the snapshot that holds them is published.
                replies, self._replies = self._replies, []
                for future, outcome in replies:
                    if not future.done():
                        future.set_result(outcome)
            finally:
                for _ in batch:
                    self.queue.task_done()  # `await queue.join()` returns once all is handled and published

    async def _handle(self, message: Message) -> None:
        if isinstance(message, ChainProgress):
            self._reload_pending(message.chain_id)
            self._advance(message.chain_id)
        elif isinstance(message, CertificatesFormed):
            touched = set()
            for fact in message.facts:
                if fact.kind == ObservationKind.ROOT:
                    self._certify_root(fact)
                else:
                    touched.add(fact.chain_id)
            for chain_id in sorted(touched):
                self._advance(chain_id)
        elif isinstance(message, CreditClaim):
            outcome = self._credit(message.verified)
            if message.reply is not None:
                self._replies.append((message.reply, outcome))
        elif isinstance(message, SignRelease):
            await self._publish_if_changed()
            try:
                result = self._sign_release(message.request, message.owner_signature)
            except WithdrawalRefused as error:
                if not message.reply.done():
                    message.reply.set_exception(error)
                return
            if not message.reply.done():
                message.reply.set_result(result)
        elif isinstance(message, SignSeizes):
            await self._publish_if_changed()
            orders = self._sign_seizes()
            if not message.reply.done():
                message.reply.set_result(orders)

    def _failed(self, message: Message, error: Exception) -> None:
        """An unexpected failure: the store rolled back, but memory may hold part of the change.
        Answer the caller, and sign nothing more until a restart reloads state from the store."""
        _log.exception("processor: %s failed", type(message).__name__)
        reply = getattr(message, "reply", None)
        if reply is not None and not reply.done():
            reply.set_exception(error)
        if not self.halted:
            self.halted = f"internal error while handling {type(message).__name__} ({error}); restart the node to reload its state"
            self._emit("internal_error")

    async def _publish_if_changed(self) -> None:
        if self.snapshot is None or self._state.height != self.snapshot.height:
            await self._publish()

    async def _publish(self) -> None:
        stale = self._stale_feeds()
        # The kernel releases the GIL: readers keep serving the previous snapshot meanwhile.
        snapshot = await asyncio.to_thread(self._state.publish, stale)
        self.snapshot = snapshot
        for observer in self.snapshot_observers:
            observer(snapshot)

    def _stale_feeds(self) -> tuple[str, ...]:
        now = {name: float(self.chain_time(chain_id)) for name, chain_id in self._config.feed_chains.items()}
        return self._state.stale_feeds(now)

    def _emit(self, event: str) -> None:
        for observer in self.event_observers:
            observer(event)

    # --- certified blocks, in block order ----------------------------------------------------

    def _reload_pending(self, chain_id: int | None = None) -> None:
        for view in self._views.values() if chain_id is None else [self._views[chain_id]] if chain_id in self._views else []:
            view.pending.clear()
        for row in self._store.unapplied():
            if chain_id is not None and row.chain_id != chain_id:
                continue
            if row.kind == ObservationKind.ROOT:
                if self._is_certified(row.digest):
                    self._certify_root(_fact(row))
                continue
            if row.chain_id in self._views:
                self._views[row.chain_id].pending.setdefault(row.block_number, []).append(row)
        for cid, cursor in self._store.cursors().items():
            if cid in self._views and (chain_id is None or cid == chain_id):
                self._views[cid].cursor_block, self._views[cid].cursor_timestamp = cursor.block_number, cursor.block_timestamp

    def _certify_root(self, fact: SignedFact) -> None:
        key = (fact.chain_id, bytes(fact.emitter), bytes(fact.root))
        digest = None
        with self._store.transaction():
            self._store.add_certified_root(fact.chain_id, key[1], key[2], fact.block_number)
            for row in self._store.connection.execute(
                "SELECT digest FROM clearing_observed WHERE kind = ? AND chain_id = ? AND emitter = ? AND block_number = ? AND root = ?",
                (int(ObservationKind.ROOT), fact.chain_id, key[1], fact.block_number, key[2]),
            ):
                digest = bytes(row[0])
                self._store.mark_applied(digest)
        if key not in self._roots:
            self._roots.add(key)
            for observer in self.root_observers:
                observer(fact.chain_id, int.from_bytes(key[1], "big"), int.from_bytes(key[2], "big"))

    def _advance(self, chain_id: int) -> None:
        """Apply this chain's certified blocks in block order, as far as they go."""
        view = self._views.get(chain_id)
        if view is None:
            return
        while view.pending:
            block = min(view.pending)
            rows = view.pending[block]
            if not all(self._is_certified(row.digest) for row in rows):
                break  # a gap: later blocks wait for this one
            blocks = []
            try:
                blocks = [decode_events(row.events or b"") for row in rows]
            except MalformedEvents as error:
                _log.error("chain %d block %d: stored events unreadable (%s); skipped", chain_id, block, error)
            timestamp = max((b.block_timestamp for b in blocks), default=view.applied_timestamp)
            if not self._prices_caught_up(chain_id, blocks, timestamp):
                break  # a trade here is priced at its block: wait for the feed's chain to get there
            with self._store.transaction():
                self._apply_block(chain_id, blocks)
                for row in rows:
                    self._store.mark_applied(row.digest)
                self._set_chain_time(chain_id, block, timestamp)
            del view.pending[block]
        if not view.pending and view.cursor_block > view.applied_block:
            with self._store.transaction():
                self._set_chain_time(chain_id, view.cursor_block, view.cursor_timestamp)

    def _set_chain_time(self, chain_id: int, block: int, timestamp: int) -> None:
        view = self._views[chain_id]
        view.applied_block = max(view.applied_block, block)
        view.applied_timestamp = max(view.applied_timestamp, timestamp)
        self._store.save_chain_time(chain_id, view.applied_block, view.applied_timestamp)
        self._state.set_chain_time(view.applied_timestamp)
        for reservation in self.ledger.expire(chain_id, view.applied_timestamp):
            self._save_order(reservation, "expired")
            self._emit("reservation_expired")
            _log.info("%s %s expired unpaid at chain %d time %d: %d base units back to %s",
                      reservation.kind.value, reservation.order_id.hex(), chain_id, view.applied_timestamp, reservation.amount, reservation.line[0])
        self._flush_ledger()

    def _prices_caught_up(self, chain_id: int, blocks: Sequence[EventsBlock], timestamp: int) -> bool:
        names = self._config.chains[chain_id].underlyings
        for block in blocks:
            for event in block.events:
                if isinstance(event, PositionChanged) and event.is_open:
                    underlying = names.get(event.underlying.lower())
                    feed_chain = self._config.feed_chains.get(underlying or "")
                    if feed_chain is not None and feed_chain != chain_id and self.chain_time(feed_chain) < timestamp:
                        return False
        return True

    def _apply_block(self, chain_id: int, blocks: Sequence[EventsBlock]) -> None:
        names = self._config.chains[chain_id]
        events = sorted((event for block in blocks for event in block.events), key=lambda e: e.log_index)
        for event in events:
            if isinstance(event, PositionChanged):
                self._apply_position(names, event)
            elif isinstance(event, PriceUpdated):
                for name in names.feeds.get(event.contract.lower(), ()):
                    if event.answer <= 0:
                        self._ignore(event, f"feed {name} answered {event.answer}")
                        continue
                    self._store.save_price(name, event.updated_at, event.answer, event.decimals)
                    self._remember_price(name, event.updated_at, event.answer / 10**event.decimals)
            elif isinstance(event, (Released, Seized)):
                self._apply_payout(names, event)
        self._flush_ledger()
        self._check_conservation()

    def _remember_price(self, name: str, updated_at: int, price: float) -> None:
        history = self._history.setdefault(name, [])
        if not history or updated_at > history[-1][0]:
            history.append((updated_at, price))
            del history[:-PRICE_HISTORY_LIMIT]
        self._state.set_price(name, price, float(updated_at))

    def _mark_at(self, name: str, timestamp: int) -> float | None:
        """The certified answer of feed `name` in force at chain time `timestamp`."""
        best = None
        for updated_at, price in self._history.get(name, []):
            if updated_at > timestamp:
                break
            best = price
        return best

    def _ignore(self, event: Any, reason: str) -> None:
        self._store.record_ignored(event.chain_id, event.block_number, event.log_index, reason)
        self.ignored_events += 1
        self._emit("ignored_event")
        _log.warning("chain %d block %d log %d ignored: %s", event.chain_id, event.block_number, event.log_index, reason)

    def _apply_position(self, names: ChainNames, event: PositionChanged) -> None:
        underlying = names.underlyings.get(event.underlying.lower())
        if underlying is None:
            self._ignore(event, f"underlying {event.underlying} is not configured for chain {event.chain_id}")
            return
        position_id = f"{event.chain_id}:{event.contract.lower()}:{event.position_id}"
        trader = event.trader.lower()
        if not event.is_open:
            self._state.set_position(trader, position_id, None)
            self._store.save_position(position_id, None)
            return
        if event.kind == InstrumentKind.PERPETUAL:
            kind = MarginKind.PERP
        else:
            kind = MarginKind.CALL if event.is_call else MarginKind.PUT
        row = PositionRow(trader, event.chain_id, underlying, int(kind), event.size, event.price, event.strike, event.expiry)
        record = _record(row)
        refusal = self._price_refusal(underlying, record, event.block_timestamp)
        if refusal:
            self._ignore(event, refusal)
            return
        try:
            self._state.set_position(trader, position_id, record)
        except ClearingError as error:
            self._ignore(event, str(error))
            return
        self._store.save_position(position_id, row)

    def _price_refusal(self, underlying: str, record: PositionRecord, timestamp: int) -> str:
        """Why a trade's price is refused ("" when it is within the band of the certified mark)."""
        mark = self._mark_at(underlying, timestamp)
        if mark is None:
            return f"no certified {underlying} price at or before the trade's block (time {timestamp})"
        band = self._config.price_band * mark
        if record.kind == MarginKind.PERP:
            fair = mark
        else:
            years = max(0.0, (record.expiry_timestamp - timestamp) / SECONDS_PER_YEAR)
            vol = self._state.vol(underlying)
            fair = float(instrument_value(
                np.array([int(record.kind)]), np.array([mark]), np.array([vol]), np.array([record.strike]), np.array([years])
            )[0])
        if not math.isfinite(record.entry) or abs(record.entry - fair) > band:
            what = "price" if record.kind == MarginKind.PERP else "premium"
            return f"trade {what} {record.entry:g} is outside {self._config.price_band:.0%} of the certified {underlying} mark {mark:g} (fair {fair:g})"
        return ""

    def _apply_payout(self, names: ChainNames, event: Released | Seized) -> None:
        asset = names.collateral.get(event.asset.lower())
        if asset is None:
            self._ignore(event, f"token {event.asset} is not collateral on chain {event.chain_id}")
            return
        kind = OrderKind.RELEASE if isinstance(event, Released) else OrderKind.SEIZE
        line = (event.account.lower(), event.chain_id, asset[0])
        reservation = self.ledger.reservations.get(event.order_id)
        how = self.ledger.settle(kind, event.order_id, line, event.amount)
        if how == "duplicate":
            return
        if how == "pending":
            self._store.save_order(OrderRow(event.order_id, kind.value, line[0], line[1], line[2], event.amount, 0, event.asset.lower(), event.recipient.lower(), "", "pending"))
        elif reservation is not None and how == "reserved":
            self._save_order(reservation, "paid")
        else:
            self._store.save_order(OrderRow(event.order_id, kind.value, line[0], line[1], line[2], event.amount, 0, event.asset.lower(), event.recipient.lower(), "", "paid"))
        self._emit(f"{kind.value}_paid")

    def _flush_ledger(self) -> None:
        lines, pools, _, accounts = self.ledger.take_changes()
        for line in sorted(lines):
            balance = self.ledger.balance(line)
            self._store.save_balance(line[0], line[1], line[2], balance, self.ledger.seize_nonces.get(line, 0))
            self._state.set_collateral(line[0], line[1], line[2], self.ledger.margin_units(line))
        for pool in sorted(pools):
            self._store.save_pool(
                pool[0], pool[1], self.ledger.credited.get(pool, 0), self.ledger.paid_out.get(pool, 0),
                self.ledger.insurance.get(pool, 0), self.ledger.cash.get(pool, 0),
            )
        for account in sorted(accounts):
            self._store.save_settlement(account, self.ledger.settlement_of(account))
            self._state.set_settlement(account, self.ledger.settlement_of(account))
        if accounts or pools:
            self._store.save_settlement(FUND, self.ledger.fund_settlement)

    def _save_order(self, reservation: Reservation, state: str) -> None:
        account, chain_id, asset = reservation.line
        self._store.save_order(OrderRow(
            reservation.order_id, reservation.kind.value, account, chain_id, asset, reservation.amount, reservation.deadline,
            reservation.token, reservation.recipient, reservation.reference, state,
        ))

    def _check_conservation(self) -> None:
        failures = self.ledger.conservation_failures()
        if failures and not self.halted:
            self.halted = "conservation check failed: " + "; ".join(failures)
            self._emit("conservation_failed")
            _log.critical("signing halted: %s", self.halted)

    # --- claims ------------------------------------------------------------------------------

    def _credit(self, verified: VerifiedClaim) -> ClaimOutcome:
        claim = verified.claim
        if claim.nullifier in self._credited:
            return ClaimOutcome(False, RejectReason.NULLIFIER_USED, f"nullifier {claim.nullifier} was already claimed", claim)
        line = (verified.account, claim.source_chain_id, verified.token.asset)
        try:
            self._state.decimals(line[2])  # an asset margin does not know is refused before anything changes
        except ClearingError as error:
            return ClaimOutcome(False, RejectReason.UNKNOWN_COLLATERAL, f"{error}: the node's risk file does not price it", claim)
        settled_before = set(self.ledger.pending_payouts)
        with self._store.transaction():
            self._store.insert_claim(claim.nullifier, line[0], line[1], line[2], claim.claimed_amount, verified.signals_json, verified.proof_json)
            self.ledger.credit(line, claim.claimed_amount)
            for order_id in settled_before - set(self.ledger.pending_payouts):
                row = self._store.order(order_id)
                if row is not None:
                    self._store.save_order(OrderRow(row.order_id, row.kind, row.account, row.chain_id, row.asset, row.amount, row.deadline, row.token, row.recipient, row.reference, "paid"))
            self._flush_ledger()
        self._credited.add(claim.nullifier)
        self._check_conservation()
        self._emit("claim_credited")
        return ClaimOutcome(True, None, credited_detail(verified), claim)

    # --- releases ----------------------------------------------------------------------------

    def _can_sign(self, chain_id: int) -> str:
        """Why this node must not sign an order paid on `chain_id` ("" when it may)."""
        if self.halted:
            return f"this node stopped signing: {self.halted}"
        if not self._chain_healthy(chain_id):
            return f"this node's view of chain {chain_id} is not healthy: it signs nothing paid there until it is"
        if self.chain_time(chain_id) <= 0:
            return f"this node has not applied any block of chain {chain_id} yet"
        stale = self._stale_feeds()
        if stale:
            return f"prices are stale ({', '.join(stale)}): orders wait for fresh prices"
        return ""

    def _sign_release(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        check_shape(request)
        recover_owner(request, owner_signature, self._config.clearinghouse_domain)
        token = next(
            (t for t in self._config.tokens.values() if t.chain_id == request.chain_id and t.token == int(request.token, 16)), None
        )
        if token is None:
            raise WithdrawalRefused(f"no vault on chain {request.chain_id} pays token {request.token}")
        account = request.account.lower()
        domain = VaultDomain(chain_id=token.chain_id, vault=to_checksum_address(f"{token.vault:#042x}"))
        token_address = to_checksum_address(request.token)
        order = ReleaseOrder(
            release_id=release_id(
                token.chain_id, domain.vault, to_checksum_address(request.account), token_address, request.amount,
                to_checksum_address(request.recipient), request.deadline, request.nonce,
            ),
            account=to_checksum_address(request.account),
            token=token_address,
            amount=request.amount,
            recipient=to_checksum_address(request.recipient),
            deadline=request.deadline,
        )
        existing = self._store.order(order.release_id)
        if existing is not None:
            if existing.state == "open":
                # Already reserved: the id fixes the content, so the same signature again.
                return domain, order, sign(domain, order, self._config.private_key)
            raise WithdrawalRefused(f"release {order.release_id.hex()} is already {existing.state}")
        refusal = self._can_sign(token.chain_id)
        if refusal:
            raise WithdrawalRefused(refusal)
        now = self.chain_time(token.chain_id)
        if not now < request.deadline <= now + MAX_RELEASE_WINDOW_SECONDS:
            raise WithdrawalRefused(
                f"deadline must be after chain {token.chain_id}'s time {now} and at most {MAX_RELEASE_WINDOW_SECONDS // 3600} h later (the amount stays reserved until then)"
            )
        line = (account, token.chain_id, token.asset)
        held = self.ledger.balance(line)
        gains = min(self.ledger.settlement_of(account), self.ledger.cash.get((token.chain_id, token.asset), 0))
        decimals = token.decimals
        if request.amount <= held:
            source, removal = "holding", (token.chain_id, token.asset, request.amount)
        elif token.asset == self._config.settlement_asset and request.amount <= gains:
            source, removal = "settlement", (SETTLEMENT_CHAIN, token.asset, request.amount)
        else:
            raise WithdrawalRefused(
                f"{account} holds {held} base units of {token.asset} on chain {token.chain_id}"
                + (f" and can draw {gains} of settlement gains there" if token.asset == self._config.settlement_asset else "")
                + f"; asked for {request.amount}"
            )
        assert self.snapshot is not None
        try:
            after = self.snapshot.simulate(account, remove_collateral=[removal])
        except ClearingError as error:
            raise WithdrawalRefused(str(error)) from None
        initial = after.im[Mode.PORTFOLIO]
        if after.equity < initial:
            raise WithdrawalRefused(
                f"releasing {request.amount / 10**decimals:g} {token.asset} would leave equity {after.equity:,.2f} below initial margin {initial:,.2f}"
            )
        reservation = Reservation(
            order.release_id, OrderKind.RELEASE, line, request.amount, request.deadline, token_address.lower(), order.recipient.lower(), source,
        )
        with self._store.transaction():
            try:
                self.ledger.reserve(reservation)
            except LedgerError as error:
                raise WithdrawalRefused(str(error)) from None
            self._save_order(reservation, "open")
            self._flush_ledger()
        self._emit("release_signed")
        return domain, order, sign(domain, order, self._config.private_key)

    # --- seizes --------------------------------------------------------------------------------

    def _sign_seizes(self) -> list[SignedSeize]:
        recipient = self._config.liquidation_recipient
        snapshot = self.snapshot
        if recipient is None or snapshot is None:
            return []
        signed = []
        liquidatable = np.flatnonzero(snapshot.result.liquidatable)
        accounts = snapshot.accounts()
        for row in liquidatable:
            account = accounts[int(row)]
            margin = snapshot.margin(account)
            lines: set[tuple[int, str]] = {(chain_id, asset) for (chain_id, asset) in self.ledger.lines_of(account)}
            lines |= {(r.line[1], r.line[2]) for r in self.ledger.reservations.values() if r.kind is OrderKind.SEIZE and r.line[0] == account}
            for chain_id, asset in sorted(lines):
                token = self._config.tokens.get((chain_id, asset))
                if token is None or self._can_sign(chain_id):
                    continue
                order = self._seize_order((account, chain_id, asset), token, recipient)
                if order is None:
                    continue
                domain = VaultDomain(chain_id=chain_id, vault=to_checksum_address(f"{token.vault:#042x}"))
                signed.append(SignedSeize(domain, order, sign(domain, order, self._config.private_key), margin.equity, margin.mm[Mode.PORTFOLIO], snapshot.height))
        return signed

    def _seize_order(self, line: Line, token: CollateralToken, recipient: str) -> SeizeOrder | None:
        account, chain_id, _ = line
        token_address = to_checksum_address(f"{token.token:#042x}")
        nonce = self.ledger.seize_nonces.get(line, 0)
        order_id = seize_id(account, chain_id, token_address, nonce)
        reservation = self.ledger.reservations.get(order_id)
        if reservation is None:
            amount = self.ledger.balance(line)
            if amount <= 0:
                return None
            reservation = Reservation(
                order_id, OrderKind.SEIZE, line, amount, seize_deadline(self.chain_time(chain_id)),
                token_address.lower(), recipient.lower(), str(nonce),
            )
            with self._store.transaction():
                self.ledger.reserve(reservation)
                self._save_order(reservation, "open")
                self._flush_ledger()
            self._emit("seize_signed")
        return SeizeOrder(
            seize_id=order_id,
            account=to_checksum_address(account),
            token=token_address,
            amount=reservation.amount,
            recipient=to_checksum_address(reservation.recipient),
            deadline=reservation.deadline,
        )


def _record(row: PositionRow) -> PositionRecord:
    return PositionRecord(
        chain_id=row.chain_id,
        underlying=row.underlying,
        kind=MarginKind(row.kind),
        qty=row.size / MARKET_UNITS,
        entry=row.price / MARKET_UNITS,
        strike=row.strike / MARKET_UNITS,
        expiry_timestamp=float(row.expiry),
    )


def _fact(row: ObservedRow) -> SignedFact:
    return SignedFact(ObservationKind(row.kind), row.chain_id, row.emitter, row.block_number, row.block_hash, row.root, row.leaf_count)


def _address_of(private_key: bytes) -> str:
    from eth_account import Account

    return str(Account.from_key(private_key).address)
