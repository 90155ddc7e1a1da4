"""From chain events to certified facts to clearing state.

What a node signs for each block of each chain (see crossclear.attest):
- ROOT: the vault's Merkle root and leaf count after the block (claims are checked against
  certified roots);
- EVENTS: per contract, keccak256 of the canonical encoding of that contract's events in the
  block (positions, prices, releases, seizes).

A node applies events to its clearing state only when both hold: its own adapter saw them,
and a quorum certified their digest. A lying RPC therefore misleads only its own node, which
then never sees its digest certified. Applied events are stored in the node's SQLite file and
replayed at start-up, because the adapters resume from their cursors and will not deliver
them again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from crossclear.attest import Observation as SignedFact
from crossclear.attest import ObservationKind
from crossclear.chains.interface import (
    AnyObservation,
    DepositObserved,
    InstrumentKind,
    PositionChanged,
    PriceUpdated,
    Released,
    RootUpdated,
    Seized,
)
from crossclear.margin import InstrumentKind as MarginKind
from crossclear.node.clearing import ClearingError, ClearingState, PositionRecord
from crossclear.store import open_database

_log = logging.getLogger(__name__)

_EVENT_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (PositionChanged, PriceUpdated, Released, Seized)}
_UNITS = 10**18


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, InstrumentKind):
        return value.value
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def encode_events(events: Sequence[AnyObservation]) -> bytes:
    """The canonical encoding nodes hash: one JSON array, fields sorted, in log order."""
    rows = []
    for event in sorted(events, key=lambda e: e.log_index):
        row = {field.name: _plain(getattr(event, field.name)) for field in fields(event)}
        row["type"] = type(event).__name__
        rows.append(row)
    return json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()


def decode_events(encoded: bytes) -> list[AnyObservation]:
    """Inverse of encode_events (for replay from the store)."""
    events: list[AnyObservation] = []
    for row in json.loads(encoded):
        cls = _EVENT_TYPES[row.pop("type")]
        values = {}
        for field in fields(cls):
            value = row[field.name]
            if field.name in ("block_hash", "tx_hash", "order_id"):
                value = bytes.fromhex(value[2:])
            elif field.name == "kind":
                value = InstrumentKind(value)
            values[field.name] = value
        events.append(cls(**values))
    return events


def facts_for_block(chain_id: int, block_number: int, block_hash: bytes, vault: str, events: Sequence[AnyObservation]) -> list[tuple[SignedFact, bytes | None]]:
    """What to sign for one block: (fact, canonical events or None for a ROOT fact)."""
    facts: list[tuple[SignedFact, bytes | None]] = []
    roots = [e for e in events if isinstance(e, RootUpdated)]
    if roots:
        last = max(roots, key=lambda e: e.log_index)
        facts.append((SignedFact(ObservationKind.ROOT, chain_id, bytes.fromhex(vault[2:]), block_number, block_hash, last.root.to_bytes(32, "big"), last.leaf_count), None))
    by_contract: dict[str, list[AnyObservation]] = {}
    for event in events:
        if isinstance(event, (RootUpdated, DepositObserved)):
            continue  # deposits are covered by the ROOT fact; claims prove them
        by_contract.setdefault(event.contract.lower(), []).append(event)
    for contract, contract_events in sorted(by_contract.items()):
        encoded = encode_events(contract_events)
        digest = bytes(keccak(encoded))
        facts.append((SignedFact(ObservationKind.EVENTS, chain_id, bytes.fromhex(contract[2:]), block_number, block_hash, digest, len(contract_events)), encoded))
    return facts


@dataclass(frozen=True)
class ChainNames:
    """How one chain's addresses map to the risk configuration's names."""

    chain_id: int
    vault: str
    underlyings: Mapping[str, str]
    """Lowercase address Market contracts use -> underlying name."""
    feeds: Mapping[str, tuple[str, ...]]
    """Lowercase PriceFeed address -> the names it prices."""
    collateral: Mapping[str, tuple[str, int]]
    """Lowercase token address -> (asset name, decimals)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied_events (
    digest BLOB PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    events TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_debits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS certified_roots (
    chain_id INTEGER NOT NULL,
    vault TEXT NOT NULL,
    root TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    PRIMARY KEY (chain_id, vault, root)
);
"""


class CertifiedFacts:
    """Joins what this node saw with what the quorum certified, and applies the result."""

    def __init__(
        self,
        path: Path | str,
        state: ClearingState,
        chains: Sequence[ChainNames],
        settle_reservation: Callable[[bytes, str, str, int], bool],
        on_seized: Callable[[str], None],
    ) -> None:
        """`settle_reservation(release_id, account, token, amount)` says whether this node
        reserved exactly that release when it signed it (so the certified Released event must
        not debit it twice, and the reservation becomes final); a release with the same id but
        other content is debited like any other."""
        self._connection = open_database(path, shared_across_threads=True)
        self._connection.executescript(_SCHEMA)
        self._state = state
        self._chains = {chain.chain_id: chain for chain in chains}
        self._settle_reservation = settle_reservation
        self._on_seized = on_seized
        self._pending: dict[bytes, bytes] = {}
        self._certified: set[bytes] = set()
        self._lock = threading.Lock()
        self.alarms: list[str] = []

    # --- the CertifiedRoots view the claim processor uses -------------------------------------

    def is_certified(self, chain_id: int, vault: int, root: int) -> bool:
        with self._lock:
            row = self._connection.execute(
                "SELECT 1 FROM certified_roots WHERE chain_id = ? AND vault = ? AND root = ?", (chain_id, f"{vault:#042x}", str(root))
            ).fetchone()
        return row is not None

    # --- inputs ------------------------------------------------------------------------------

    def replay(self) -> int:
        """Apply every stored event again to a fresh clearing state (at start-up)."""
        rows = self._connection.execute("SELECT events FROM applied_events ORDER BY chain_id, block_number").fetchall()
        for (encoded,) in rows:
            self._apply(decode_events(encoded.encode()), replaying=True)
        return len(rows)

    def observed(self, fact: SignedFact, encoded: bytes | None) -> None:
        """This node's adapter saw the events behind `fact` (called before signing it)."""
        if encoded is None:
            return
        digest = bytes(fact.root)
        with self._lock:
            if self._known(digest):
                return
            self._pending[digest] = encoded
            certified = digest in self._certified
        if certified:
            self._commit(fact, digest)

    def certified(self, fact: SignedFact) -> None:
        """A quorum certified `fact` (from the attestation node's certificate listener)."""
        if fact.kind == ObservationKind.ROOT:
            vault = "0x" + fact.emitter.hex()
            with self._lock:
                self._connection.execute(
                    "INSERT OR IGNORE INTO certified_roots VALUES (?, ?, ?, ?)",
                    (fact.chain_id, vault, str(int.from_bytes(fact.root, "big")), fact.block_number),
                )
            return
        digest = bytes(fact.root)
        with self._lock:
            self._certified.add(digest)
            seen = digest in self._pending
        if seen:
            self._commit(fact, digest)

    # --- applying ----------------------------------------------------------------------------

    def _known(self, digest: bytes) -> bool:
        return self._connection.execute("SELECT 1 FROM applied_events WHERE digest = ?", (digest,)).fetchone() is not None

    def _commit(self, fact: SignedFact, digest: bytes) -> None:
        with self._lock:
            encoded = self._pending.pop(digest, None)
            if encoded is None or self._known(digest):
                return
            self._connection.execute("INSERT INTO applied_events VALUES (?, ?, ?, ?)", (digest, fact.chain_id, fact.block_number, encoded.decode()))
            self._certified.discard(digest)
        self._apply(decode_events(encoded), replaying=False)

    def _apply(self, events: Iterable[AnyObservation], replaying: bool) -> None:
        for event in events:
            names = self._chains.get(event.chain_id)
            if names is None:
                continue
            try:
                if isinstance(event, PositionChanged):
                    self._apply_position(names, event)
                elif isinstance(event, PriceUpdated):
                    for name in names.feeds.get(event.contract.lower(), ()):
                        self._state.set_price(name, event.answer / 10**event.decimals, float(event.updated_at))
                elif isinstance(event, Released):
                    if not self._settle_reservation(event.order_id, event.account, event.asset, event.amount):
                        self._debit(names, event.account, event.asset, event.amount, keep_pending=not replaying)
                elif isinstance(event, Seized):
                    self._debit(names, event.account, event.asset, event.amount, keep_pending=not replaying)
                    self._on_seized(event.account.lower())
            except ClearingError as error:
                # Certified chain state the clearing state cannot take yet (e.g. a release of
                # collateral this node has not credited): a debit waits in pending_debits;
                # anything else is made visible.
                message = f"chain {event.chain_id} block {event.block_number}: {type(event).__name__} not applied: {error}"
                self.alarms.append(message)
                if not replaying:
                    _log.warning(message)

    def _apply_position(self, names: ChainNames, event: PositionChanged) -> None:
        underlying = names.underlyings.get(event.underlying.lower())
        if underlying is None:
            raise ClearingError(f"underlying {event.underlying} is not configured for chain {event.chain_id}")
        position_id = f"{event.chain_id}:{event.contract.lower()}:{event.position_id}"
        if not event.is_open:
            self._state.set_position(event.trader, position_id, None)
            return
        if event.kind == InstrumentKind.PERPETUAL:
            kind = MarginKind.PERP
        else:
            kind = MarginKind.CALL if event.is_call else MarginKind.PUT
        record = PositionRecord(
            chain_id=event.chain_id,
            underlying=underlying,
            kind=kind,
            qty=event.size / _UNITS,
            entry=event.price / _UNITS,
            strike=event.strike / _UNITS,
            expiry_timestamp=float(event.expiry),
        )
        self._state.set_position(event.trader, position_id, record)

    def _debit(self, names: ChainNames, account: str, token: str, amount: int, keep_pending: bool) -> None:
        asset = names.collateral.get(token.lower())
        if asset is None:
            raise ClearingError(f"token {token} is not configured as collateral on chain {names.chain_id}")
        units = amount / 10 ** asset[1]
        try:
            self._state.debit_collateral(account, names.chain_id, asset[0], units)
        except ClearingError:
            # The collateral left on-chain before this node credited the claim behind it (its
            # gossip is still on the way): keep the debit and settle it when the credit lands.
            # (A replay finds such debits already kept.)
            if not keep_pending:
                raise
            with self._lock:
                self._connection.execute(
                    "INSERT INTO pending_debits (account, chain_id, asset, amount) VALUES (?, ?, ?, ?)",
                    (account.lower(), names.chain_id, asset[0], units),
                )
            raise

    def settle_pending_debits(self, account: str) -> int:
        """Apply debits that were waiting for this account's collateral; returns how many."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, chain_id, asset, amount FROM pending_debits WHERE account = ? ORDER BY id", (account.lower(),)
            ).fetchall()
        settled = 0
        for row_id, chain_id, asset, amount in rows:
            try:
                self._state.debit_collateral(account, int(chain_id), asset, float(amount))
            except ClearingError:
                continue  # still not enough credited: wait for the next credit
            with self._lock:
                self._connection.execute("DELETE FROM pending_debits WHERE id = ?", (row_id,))
            settled += 1
        return settled

    def close(self) -> None:
        self._connection.close()
