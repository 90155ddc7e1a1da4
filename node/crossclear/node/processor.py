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
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear._tasks import lower_this_thread_priority
from crossclear.attest import Observation as SignedFact
from crossclear.attest import ObservationKind
from crossclear.chains.interface import InstrumentKind, PriceUpdated, Released, Seized, Traded
from crossclear.chains.vault_orders import ReleaseOrder, SeizeOrder, VaultDomain, sign
from crossclear.margin import InstrumentKind as MarginKind
from crossclear.margin import Mode
from crossclear.margin.methodology import instrument_value
from crossclear.chains.market_orders import CloseOut, MarketDomain, sign_close_out
from crossclear.clearing import Holding, MarkMove, cover_shortfall, settle_trade, settle_variation
from crossclear.node.claims import ClaimOutcome, CollateralToken, RejectReason, VerifiedClaim, credited_detail
from crossclear.node.clearing import SECONDS_PER_YEAR, SETTLEMENT_CHAIN, ClearingError, ClearingState, MarginSnapshot, PositionRecord
from crossclear.node.facts import ChainNames, EventsBlock, MalformedEvents, decode_events
from crossclear.node.ledger import Ledger, LedgerError, Line, OrderKind, PendingPayout, Reservation
from crossclear.node.liquidations import SignedCloseOut, SignedSeize, seize_deadline, seize_id
from crossclear.node.withdrawals import MAX_RELEASE_WINDOW_SECONDS, WithdrawalRefused, WithdrawalRequest, check_shape, recover_owner, release_id
from crossclear.store import FUND, ClearingStore, CloseOutRow, ObservedRow, OrderRow

_log = logging.getLogger("crossclear.processor")

#: Messages waiting for the processor. Senders await room (backpressure), so the bound caps
#: memory, not correctness; certificates are re-read from the store, never lost to a full queue.
QUEUE_LIMIT = 10_000
#: Close-out auctions start on a whole window of chain time and last this many windows, so
#: nodes a few blocks apart sign the same order.
CLOSE_OUT_WINDOW_SECONDS = 300
CLOSE_OUT_AUCTION_WINDOWS = 2
#: Fixed-point scale of Market sizes, prices and strikes.
MARKET_UNITS = 10**18


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


@dataclass(frozen=True)
class SignCloseOuts:
    """A backstop liquidator asks for this node's close-out orders."""

    reply: asyncio.Future[list[SignedCloseOut]]
    """Receives the signed orders."""


Message = ChainProgress | CertificatesFormed | CreditClaim | SignRelease | SignSeizes | SignCloseOuts


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
    insurance_fund: str | None = None
    """Address whose claims seed the insurance fund instead of an account (lowercase 0x)."""
    close_out_discount_bps: int = 500
    """Largest discount to the mark a close-out auction reaches, and the discount at which the
    fund takes a defaulter's other collateral."""


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
        # One low-priority worker for recomputes: reads keep the CPU while the kernel runs.
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="margin-publish", initializer=lower_this_thread_priority)
        self.ledger = Ledger()
        self._views: dict[int, _ChainView] = {chain_id: _ChainView() for chain_id in config.chains}
        self._roots: set[tuple[int, bytes, bytes]] = set()
        self._credited: set[int] = set()
        self._answers: dict[str, tuple[int, int]] = {}
        """Latest certified answer and its decimals per feed name (the mark variation margin uses)."""
        self._open: dict[str, dict[str, int]] = {}
        """Instrument -> account -> signed size: positions, each instrument netting to zero."""
        self._refundable: dict[str, list[tuple[str, str, int, str, int]]] = {}
        """Per defaulted account, the cash others paid for its default, in the order they paid."""
        self._close_outs: dict[bytes, CloseOutRow] = {}
        self._close_out_nonces: dict[tuple[str, str], int] = {}
        self.defaults: list[tuple[str, int, int]] = []
        """(account, debt, uncovered) of every default the waterfall handled, oldest first."""
        self._settlement_decimals = next(
            (t.decimals for t in config.tokens.values() if t.asset == config.settlement_asset), 6
        )
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

    def close(self) -> None:
        """Release the recompute worker (call after the run task stopped)."""
        self._publisher.shutdown(wait=True, cancel_futures=True)

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
        ledger.recount()
        ledger.take_changes()
        for line in {*ledger.balances, *(r.line for r in ledger.reservations.values())}:
            if ledger.margin_units(line):
                self._state.set_collateral(line[0], line[1], line[2], ledger.margin_units(line))
        for name, updated_at, answer, decimals in store.prices():
            self._state.set_price(name, answer / 10**decimals, float(updated_at))
        self._answers = store.marks()
        for account, instrument, size in store.open_interest():
            self._open.setdefault(instrument, {})[account] = size
            self._state.set_position(account, instrument, _position(instrument, size))
        self._close_outs = {row.close_out_id: row for row in store.close_outs()}
        self._close_out_nonces = store.close_out_nonces()
        self._refundable = store.refundable()
        self.defaults = [(account, debt, uncovered) for account, debt, _, uncovered in store.defaults()]
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
        self._advance()
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
            self._advance()
        elif isinstance(message, CertificatesFormed):
            for fact in message.facts:
                if fact.kind == ObservationKind.ROOT:
                    self._certify_root(fact)
            self._advance()
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
        elif isinstance(message, SignCloseOuts):
            await self._publish_if_changed()
            close_outs = self._sign_close_outs()
            if not message.reply.done():
                message.reply.set_result(close_outs)

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
        snapshot = await asyncio.get_running_loop().run_in_executor(self._publisher, self._state.publish, stale)
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
        for row in self._store.unapplied(chain_id):
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

    def _pending_timestamp(self, view: _ChainView, number: int) -> int:
        return max(row.block_timestamp for row in view.pending[number])

    def _advance(self) -> None:
        """Apply certified blocks of every chain in one global order, (timestamp, chain id, block).

        Within a chain that is block order; across chains it makes every honest node apply the
        same sequence, so a trade on one chain and a mark change on another meet in the same
        order everywhere. A block waits until every earlier block of its chain is certified and
        every other chain has been observed up to its timestamp."""
        while True:
            candidates = [(self._pending_timestamp(v, min(v.pending)), c, min(v.pending)) for c, v in self._views.items() if v.pending]
            if not candidates:
                break
            timestamp, chain_id, number = min(candidates)
            view = self._views[chain_id]
            rows = view.pending[number]
            if not all(self._is_certified(row.digest) for row in rows):
                break  # the next block in the global order is not certified yet: everything after waits
            if any(other.cursor_timestamp < timestamp for c, other in self._views.items() if c != chain_id and not other.pending):
                break  # another chain may still hold an earlier block this node has not observed
            blocks = []
            try:
                blocks = [decode_events(row.events or b"") for row in rows]
            except MalformedEvents as error:
                _log.error("chain %d block %d: stored events unreadable (%s); skipped", chain_id, number, error)
            with self._store.transaction():
                self._apply_block(chain_id, blocks)
                for row in rows:
                    self._store.mark_applied(row.digest)
                self._set_chain_time(chain_id, number, timestamp)
            del view.pending[number]
        for chain_id, view in self._views.items():
            if not view.pending and view.cursor_block > view.applied_block:
                with self._store.transaction():
                    self._set_chain_time(chain_id, view.cursor_block, view.cursor_timestamp)
                self._check_conservation()  # expiries hand reservations back here too

    def _set_chain_time(self, chain_id: int, block: int, timestamp: int) -> None:
        view = self._views[chain_id]
        view.applied_block = max(view.applied_block, block)
        view.applied_timestamp = max(view.applied_timestamp, timestamp)
        self._store.save_chain_time(chain_id, view.applied_block, view.applied_timestamp)
        self._state.set_chain_time(view.applied_timestamp)
        for reservation in self.ledger.expire(chain_id, view.applied_timestamp):
            self._save_order(reservation, "expired")
            self._emit("reservation_expired")
            if self.ledger.settlement_of(reservation.line[0]) < 0:
                # Back in the holding, it pays the account's debt as a sweep would have.
                self.ledger.sweep(reservation.line[0], self._config.settlement_asset)
            _log.info("%s %s expired unpaid at chain %d time %d: %d base units back to %s",
                      reservation.kind.value, reservation.order_id.hex(), chain_id, view.applied_timestamp, reservation.amount, reservation.line[0])
        self._flush_ledger()

    def _apply_block(self, chain_id: int, blocks: Sequence[EventsBlock]) -> None:
        names = self._config.chains[chain_id]
        events = sorted((event for block in blocks for event in block.events), key=lambda e: e.log_index)
        for event in events:
            if isinstance(event, Traded):
                self._apply_trade(names, event)
            elif isinstance(event, PriceUpdated):
                for name in names.feeds.get(event.contract.lower(), ()):
                    if event.answer <= 0:
                        self._ignore(event, f"feed {name} answered {event.answer}")
                        continue
                    self._new_price(name, event.updated_at, event.answer, event.decimals)
            elif isinstance(event, (Released, Seized)):
                self._apply_payout(names, event)
        self._flush_ledger()
        self._check_conservation()

    def _new_price(self, name: str, updated_at: int, answer: int, decimals: int) -> None:
        """A certified feed answer: margin moves, and perpetuals on it settle variation margin."""
        if not self._state.set_price(name, answer / 10**decimals, float(updated_at)):
            return  # not newer than the answer held
        previous = self._answers.get(name)
        self._answers[name] = (answer, decimals)
        self._store.save_price(name, updated_at, answer, decimals)
        self._store.save_mark(name, answer, decimals)
        if previous is None:
            return
        old, new, places = _same_decimals(previous, (answer, decimals))
        paid: dict[str, int] = {}
        for instrument in sorted(i for i in self._open if _underlying_of(i) == name and _kind_of(i) == MarginKind.PERP):
            sizes = self._open[instrument]
            payments, residue = settle_variation(sizes, MarkMove(old, new, places), self._settlement_decimals)
            self.ledger.pay_settlement(payments, residue)
            for account, amount in payments.items():
                paid[account] = paid.get(account, 0) + amount
        # Debts are swept once every instrument settled: a hedge across chains nets to nothing owed.
        self._sweep(paid)
        if paid:
            self._emit("variation_margin")

    def _sweep(self, payments: Mapping[str, int]) -> None:
        for account in sorted(payments):
            if self.ledger.settlement_of(account) < 0:
                self.ledger.sweep(account, self._config.settlement_asset)

    def _ignore(self, event: Any, reason: str) -> None:
        self._store.record_ignored(event.chain_id, event.block_number, event.log_index, reason)
        self.ignored_events += 1
        self._emit("ignored_event")
        _log.warning("chain %d block %d log %d ignored: %s", event.chain_id, event.block_number, event.log_index, reason)

    def _apply_trade(self, names: ChainNames, event: Traded) -> None:
        underlying = names.underlyings.get(event.underlying.lower())
        if underlying is None:
            self._ignore(event, f"underlying {event.underlying} is not configured for chain {event.chain_id}")
            return
        if event.kind == InstrumentKind.PERPETUAL:
            kind = MarginKind.PERP
        else:
            kind = MarginKind.CALL if event.is_call else MarginKind.PUT
        maker, taker = event.maker.lower(), event.taker.lower()
        if maker == taker:
            self._ignore(event, "a trade needs two parties")
            return
        answer = self._answers.get(underlying)
        if answer is None:
            self._ignore(event, f"no certified {underlying} price before the trade")
            return
        mark = answer[0] / 10 ** answer[1]
        instrument = f"{event.chain_id}:{event.contract.lower()}:{underlying}:{kind.name.lower()}:{event.strike}:{event.expiry}"
        if not event.is_close_out:  # a close-out's price is the contract's auction, signed by the quorum
            refusal = self._price_refusal(underlying, kind, event.price / MARKET_UNITS, event.strike / MARKET_UNITS, event.expiry, mark, event.block_timestamp)
            if refusal:
                self._ignore(event, refusal)
                return
        payments, residue = settle_trade(maker, taker, event.maker_size, event.price, answer[0], answer[1], self._settlement_decimals, premium=kind != MarginKind.PERP)
        self.ledger.pay_settlement(payments, residue)
        sizes = self._open.setdefault(instrument, {})
        for account, delta in ((maker, event.maker_size), (taker, -event.maker_size)):
            size = sizes.get(account, 0) + delta
            if size:
                sizes[account] = size
            else:
                sizes.pop(account, None)
            self._store.save_open_interest(account, instrument, size)
            self._state.set_position(account, instrument, _position(instrument, size) if size else None)
        if not sizes:
            del self._open[instrument]
        if sum(sizes.values()) != 0:
            raise AssertionError(f"open interest of {instrument} nets to {sum(sizes.values())}")
        self._sweep(payments)
        if event.is_close_out:
            self._closed_out(maker, instrument, event.close_out_id)
        for account in (maker, taker):
            # A flat account that still owes (it closed out, or closed its own position while
            # insolvent) goes down the waterfall at once.
            if self.ledger.settlement_of(account) < 0 and not any(account in sizes for sizes in self._open.values()):
                self._default(account)
        self._emit("trade")

    def _closed_out(self, account: str, instrument: str, close_out_id: bytes) -> None:
        """A close-out trade of `account` was certified: the next close-out of that instrument gets a new id."""
        key = (account, instrument)
        if close_out_id == _close_out_id(account, instrument, self._close_out_nonces.get(key, 0)):
            self._close_out_nonces[key] = self._close_out_nonces.get(key, 0) + 1
            self._store.save_close_out_nonce(account, instrument, self._close_out_nonces[key])
        if close_out_id in self._close_outs:
            del self._close_outs[close_out_id]
            self._store.drop_close_out(close_out_id)

    def _default(self, account: str) -> None:
        """Cover a flat account's debt: its own cash, its other collateral taken by the fund at the
        mark less the discount, the fund, then the largest winners (crossclear.clearing.waterfall)."""
        ledger, asset = self.ledger, self._config.settlement_asset
        debt = -ledger.settlement_of(account)
        own = [Holding(chain, name, units) for (chain, name), units in sorted(ledger.lines_of(account).items())]
        prices = {}
        for holding in own:
            answer = self._answers.get(holding.asset)
            if answer is not None and holding.asset != asset:
                prices[holding.asset] = (answer[0], answer[1], self._state.decimals(holding.asset))
        own = [h for h in own if h.asset == asset or h.asset in prices]
        fund = [Holding(SETTLEMENT_CHAIN, asset, max(0, ledger.fund_settlement))]
        fund += [Holding(chain, name, units) for (chain, name), units in sorted(ledger.insurance.items()) if name == asset]
        winners = {a: b for a, b in ledger.settlement.items() if b > 0 and a != account}
        steps, uncovered = cover_shortfall(debt, asset, self._settlement_decimals, own, prices, self._config.close_out_discount_bps, fund, winners)
        for step in steps:
            if step.kind == "own_cash":
                ledger.pay_debt_from_holding((account, step.chain_id, step.asset), step.units)
            elif step.kind == "collateral_to_fund":
                ledger.move_to_fund((account, step.chain_id, step.asset), step.units)
            elif step.kind == "fund_pays" and step.chain_id == SETTLEMENT_CHAIN:
                ledger.fund_settlement_pays(account, step.units)
            elif step.kind == "fund_pays":
                ledger.fund_pays(account, (step.chain_id, step.asset), step.units)
            elif step.kind == "collateral_to_winner":
                ledger.give_collateral((account, step.chain_id, step.asset), step.payer, step.units)
                ledger.deleverage(step.payer, account, step.covers)
            else:
                ledger.deleverage(step.payer, account, step.units)
                self._emit("deleveraged")
        refundable = self._refundable.setdefault(account, [])
        refundable += [(s.kind, s.payer, s.chain_id, s.asset, s.units) for s in steps if s.kind in ("fund_pays", "deleverage")]
        self._store.save_refundable(account, refundable)
        plan = ";".join(f"{s.kind}:{s.payer}:{s.chain_id}:{s.asset}:{s.units}" for s in steps)
        self._store.record_default(account, debt, plan, uncovered)
        self.defaults.append((account, debt, uncovered))
        self._emit("default")
        _log.warning("default of %s: debt %d covered in %d steps, %d uncovered", account, debt, len(steps), uncovered)

    def _sign_close_outs(self) -> list[SignedCloseOut]:
        """Close-out orders for every open position of every account below maintenance."""
        snapshot = self.snapshot
        if snapshot is None or self.halted:
            return []
        signed = []
        accounts = snapshot.accounts()
        for row in np.flatnonzero(snapshot.result.liquidatable):
            account = accounts[int(row)]
            instruments = sorted(i for i, sizes in self._open.items() if account in sizes)
            if not instruments:
                continue
            margin = snapshot.margin(account)
            for instrument in instruments:
                chain_id = int(instrument.split(":")[0])
                if self._can_sign(chain_id):
                    continue
                order, domain = self._close_out(account, instrument)
                if order is None:
                    continue
                signed.append(SignedCloseOut(domain, order, sign_close_out(domain, order, self._config.private_key), margin.equity, margin.mm[Mode.PORTFOLIO], snapshot.height))
        return signed

    def _close_out(self, account: str, instrument: str) -> tuple[CloseOut | None, MarketDomain]:
        chain, market, underlying, _, _, _ = instrument.split(":")
        domain = MarketDomain(chain_id=int(chain), market=to_checksum_address(market))
        nonce = self._close_out_nonces.get((account, instrument), 0)
        close_out_id = _close_out_id(account, instrument, nonce)
        now = self.chain_time(int(chain))
        row = self._close_outs.get(close_out_id)
        if row is None or row.deadline < now:
            size = self._open[instrument][account]
            remaining = abs(size)
            # Partial first (a quarter, then half), re-judged on fresh margin each time; then all of it.
            part = remaining if nonce >= 2 else -(-remaining // (4 if nonce == 0 else 2))
            answer = self._answers.get(underlying)
            if answer is None:
                return None, domain
            start = now // CLOSE_OUT_WINDOW_SECONDS * CLOSE_OUT_WINDOW_SECONDS
            row = CloseOutRow(
                close_out_id, account, instrument, nonce, -part if size > 0 else part,
                answer[0] * MARKET_UNITS // 10 ** answer[1], start, start + CLOSE_OUT_AUCTION_WINDOWS * CLOSE_OUT_WINDOW_SECONDS,
            )
            with self._store.transaction():
                self._store.save_close_out(row)
            self._close_outs[close_out_id] = row
            self._emit("close_out_signed")
        names = self._config.chains[int(chain)].underlyings
        underlying_address = next(address for address, name in names.items() if name == underlying)
        kind = _kind_of(instrument)
        _, _, _, _, strike, expiry = instrument.split(":")
        order = CloseOut(
            close_out_id=close_out_id,
            account=to_checksum_address(account),
            underlying=to_checksum_address(underlying_address),
            kind=InstrumentKind.PERPETUAL if kind == MarginKind.PERP else InstrumentKind.OPTION,
            strike=int(strike),
            expiry=int(expiry),
            is_call=kind == MarginKind.CALL,
            account_size=row.account_size,
            mark=row.mark,
            max_discount_bps=self._config.close_out_discount_bps,
            start=row.start,
            deadline=row.deadline,
        )
        return order, domain

    def open_interest(self) -> dict[str, dict[str, int]]:
        """Instrument -> account -> signed size (18 decimals); every instrument nets to zero."""
        return {instrument: dict(sizes) for instrument, sizes in self._open.items()}

    def _price_refusal(self, underlying: str, kind: MarginKind, price: float, strike: float, expiry: int, mark: float, timestamp: int) -> str:
        """Why a trade's price is refused ("" when it is within the band of the certified mark)."""
        band = self._config.price_band * mark
        if kind == MarginKind.PERP:
            fair = mark
        else:
            years = max(0.0, (expiry - timestamp) / SECONDS_PER_YEAR)
            vol = self._state.vol(underlying)
            fair = float(instrument_value(
                np.array([int(kind)]), np.array([mark]), np.array([vol]), np.array([strike]), np.array([years])
            )[0])
        if not math.isfinite(price) or abs(price - fair) > band:
            what = "price" if kind == MarginKind.PERP else "premium"
            return f"trade {what} {price:g} is outside {self._config.price_band:.0%} of the certified {underlying} mark {mark:g} (fair {fair:g})"
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
        lines, pools, accounts = self.ledger.take_changes()
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
            if line[0] == self._config.insurance_fund:
                self.ledger.credit_fund((line[1], line[2]), claim.claimed_amount)
            else:
                self.ledger.credit(line, claim.claimed_amount)
                self._after_credit(line)
            for order_id in settled_before - set(self.ledger.pending_payouts):
                row = self._store.order(order_id)
                if row is not None:
                    self._store.save_order(OrderRow(row.order_id, row.kind, row.account, row.chain_id, row.asset, row.amount, row.deadline, row.token, row.recipient, row.reference, "paid"))
            self._flush_ledger()
        self._credited.add(claim.nullifier)
        self._check_conservation()
        self._emit("claim_credited")
        return ClaimOutcome(True, None, credited_detail(verified), claim)

    def _after_credit(self, line: Line) -> None:
        """Claims arrive by gossip, outside the certified order, so a credit must end in the same
        state whether it came before or after the account's debts: it pays any debt at once (as a
        sweep would have) and then pays back, last first, the cash the fund or winners put up for
        the account's default (as if it had been there when the waterfall ran)."""
        account, _, asset = line
        if asset != self._config.settlement_asset:
            return
        if self.ledger.settlement_of(account) < 0:
            self.ledger.sweep(account, asset)
        steps = self._refundable.get(account)
        if not steps or self.ledger.settlement_of(account) < 0:
            return
        holdings = sorted((account, chain_id, name) for chain_id, name in self.ledger.lines_of(account) if name == asset)
        while steps and holdings:
            kind, payer, chain_id, step_asset, units = steps[-1]
            source = holdings[0]
            take = min(units, self.ledger.balance(source))
            if take <= 0:
                holdings.pop(0)
                continue
            self.ledger.pay_back(source, kind, payer, (chain_id, step_asset), take)
            if take == units:
                steps.pop()
            else:
                steps[-1] = (kind, payer, chain_id, step_asset, units - take)
        self._store.save_refundable(account, steps)

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
        # Gains first: they are what the cash pool is for; a holding stays as posted collateral.
        if token.asset == self._config.settlement_asset and request.amount <= gains:
            source, removal = "settlement", (SETTLEMENT_CHAIN, token.asset, request.amount)
        elif request.amount <= held:
            source, removal = "holding", (token.chain_id, token.asset, request.amount)
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
            if any(account in sizes for sizes in self._open.values()):
                continue  # positions are closed out first (close-outs); collateral covers the loss through the waterfall
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


def _close_out_id(account: str, instrument: str, nonce: int) -> bytes:
    """The id of the close-out of one account's position in one instrument: only that
    instrument's own certified close-out trades move the nonce, so re-signing after an auction
    expired names the same close-out, and the market accepts each id once."""
    return bytes(keccak(b"crossclear-close-out-v1" + account.encode() + b"|" + instrument.encode() + nonce.to_bytes(32, "big")))


def _underlying_of(instrument: str) -> str:
    return instrument.split(":")[2]


def _kind_of(instrument: str) -> MarginKind:
    return MarginKind[instrument.split(":")[3].upper()]


def _position(instrument: str, size: int) -> PositionRecord:
    """Margin's view of a position: perpetuals are carried at the mark (variation margin settles
    the rest); options' premiums were paid at the trade, so they carry their whole value."""
    chain, _, underlying, kind, strike, expiry = instrument.split(":")
    margin_kind = MarginKind[kind.upper()]
    return PositionRecord(
        chain_id=int(chain),
        underlying=underlying,
        kind=margin_kind,
        qty=size / MARKET_UNITS,
        entry=0.0,
        at_mark=margin_kind == MarginKind.PERP,
        strike=int(strike) / MARKET_UNITS,
        expiry_timestamp=float(expiry),
    )


def _same_decimals(old: tuple[int, int], new: tuple[int, int]) -> tuple[int, int, int]:
    places = max(old[1], new[1])
    return old[0] * 10 ** (places - old[1]), new[0] * 10 ** (places - new[1]), places


def _fact(row: ObservedRow) -> SignedFact:
    return SignedFact(ObservationKind(row.kind), row.chain_id, row.emitter, row.block_number, row.block_hash, row.root, row.leaf_count)
