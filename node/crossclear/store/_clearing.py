"""The clearing tables of a node's SQLite file: what the node observed, and its ledger.

One connection, owned by the node's event loop: the chain followers write observed facts and
their cursor in one transaction; the processor writes every ledger, position and price change
together with the input that caused it. Amounts are decimal strings of integer base units
(SQLite integers stop at 2^63, token amounts do not).

Schema versions live in `PRAGMA user_version`; `MIGRATIONS[k]` takes a file from version k to
k + 1, so a node opening an older file brings it up to date before anything else runs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from crossclear.store._database import Transactions, open_database

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clearing_cursors (
        network TEXT PRIMARY KEY,
        chain_id INTEGER NOT NULL,
        block_number INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        block_timestamp INTEGER NOT NULL
    );
    CREATE TABLE clearing_observed (
        digest BLOB PRIMARY KEY,
        kind INTEGER NOT NULL,
        chain_id INTEGER NOT NULL,
        emitter BLOB NOT NULL,
        block_number INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        root BLOB NOT NULL,
        leaf_count INTEGER NOT NULL,
        block_timestamp INTEGER NOT NULL,
        events BLOB,
        applied INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX clearing_observed_open ON clearing_observed (applied, chain_id, block_number);
    CREATE TABLE clearing_certified_roots (
        chain_id INTEGER NOT NULL,
        vault BLOB NOT NULL,
        root BLOB NOT NULL,
        block_number INTEGER NOT NULL,
        PRIMARY KEY (chain_id, vault, root)
    );
    CREATE TABLE clearing_chain_time (
        chain_id INTEGER PRIMARY KEY,
        block_number INTEGER NOT NULL,
        block_timestamp INTEGER NOT NULL
    );
    CREATE TABLE clearing_claims (
        nullifier TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        public_signals TEXT NOT NULL,
        proof TEXT NOT NULL,
        sequence INTEGER NOT NULL
    );
    CREATE TABLE clearing_balances (
        account TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        seize_nonce INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, chain_id, asset)
    );
    CREATE TABLE clearing_pools (
        chain_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        credited TEXT NOT NULL,
        paid_out TEXT NOT NULL,
        insurance TEXT NOT NULL,
        PRIMARY KEY (chain_id, asset)
    );
    CREATE TABLE clearing_orders (
        order_id BLOB PRIMARY KEY,
        kind TEXT NOT NULL,
        account TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        amount TEXT NOT NULL,
        deadline INTEGER NOT NULL,
        token TEXT NOT NULL,
        recipient TEXT NOT NULL,
        reference TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE clearing_positions (
        position_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        underlying TEXT NOT NULL,
        kind INTEGER NOT NULL,
        size TEXT NOT NULL,
        price TEXT NOT NULL,
        strike TEXT NOT NULL,
        expiry INTEGER NOT NULL
    );
    CREATE TABLE clearing_prices (
        name TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        answer TEXT NOT NULL,
        decimals INTEGER NOT NULL,
        PRIMARY KEY (name, updated_at)
    );
    CREATE TABLE clearing_ignored (
        chain_id INTEGER NOT NULL,
        block_number INTEGER NOT NULL,
        log_index INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (chain_id, block_number, log_index)
    );
    """,
    """
    ALTER TABLE clearing_pools ADD COLUMN cash TEXT NOT NULL DEFAULT '0';
    CREATE TABLE clearing_settlement (
        account TEXT PRIMARY KEY,
        units TEXT NOT NULL
    );
    CREATE TABLE clearing_open_interest (
        account TEXT NOT NULL,
        instrument TEXT NOT NULL,
        size TEXT NOT NULL,
        PRIMARY KEY (account, instrument)
    );
    CREATE TABLE clearing_marks (
        underlying TEXT PRIMARY KEY,
        answer TEXT NOT NULL,
        decimals INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE clearing_close_outs (
        close_out_id BLOB PRIMARY KEY,
        account TEXT NOT NULL,
        instrument TEXT NOT NULL,
        nonce INTEGER NOT NULL,
        account_size TEXT NOT NULL,
        mark TEXT NOT NULL,
        start INTEGER NOT NULL,
        deadline INTEGER NOT NULL
    );
    CREATE TABLE clearing_close_out_nonces (
        account TEXT NOT NULL,
        instrument TEXT NOT NULL,
        nonce INTEGER NOT NULL,
        PRIMARY KEY (account, instrument)
    );
    CREATE TABLE clearing_defaults (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        debt TEXT NOT NULL,
        plan TEXT NOT NULL,
        uncovered TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE clearing_refundable (
        account TEXT NOT NULL,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payer TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        asset TEXT NOT NULL,
        units TEXT NOT NULL,
        PRIMARY KEY (account, position)
    );
    """,
)

#: The insurance fund's row in clearing_settlement.
FUND = "fund"


@dataclass(frozen=True, slots=True)
class ObservedRow:
    """A fact this node observed (and signed), as stored."""

    digest: bytes
    """EIP-712 digest of the signed observation."""
    kind: int
    """ObservationKind value."""
    chain_id: int
    """Observed chain."""
    emitter: bytes
    """20-byte contract address."""
    block_number: int
    """Block height."""
    block_hash: bytes
    """32-byte block hash."""
    root: bytes
    """Root or events digest."""
    leaf_count: int
    """Leaf or event count."""
    block_timestamp: int
    """Block timestamp."""
    events: bytes | None
    """Events encoding (EVENTS facts)."""
    applied: bool
    """True once the processor applied it."""


@dataclass(frozen=True, slots=True)
class CursorRow:
    """Where one chain's follower resumes."""

    chain_id: int
    """Chain id."""
    block_number: int
    """Last block fully handled."""
    block_hash: bytes
    """Its hash."""
    block_timestamp: int
    """Its timestamp."""


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """A credited claim."""

    nullifier: int
    """The claim's nullifier (each credits once)."""
    account: str
    """Credited account, lowercase 0x."""
    chain_id: int
    """Chain of the vault holding the deposit."""
    asset: str
    """Asset name."""
    amount: int
    """Base units credited."""


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order this node signed, and what became of it."""

    order_id: bytes
    """Vault release or seize id."""
    kind: str
    """"release" or "seize"."""
    account: str
    """Account the amount comes from."""
    chain_id: int
    """Chain of the vault that pays."""
    asset: str
    """Asset name."""
    amount: int
    """Base units."""
    deadline: int
    """Chain time after which the vault refuses it."""
    token: str
    """Token the vault pays."""
    recipient: str
    """Who the vault pays."""
    reference: str
    """Release: claim nullifier; seize: line nonce."""
    state: str
    """"open", "paid" or "expired"."""


@dataclass(frozen=True, slots=True)
class CloseOutRow:
    """A close-out this node signed for one instrument of a defaulting account."""

    close_out_id: bytes
    """The market's close-out id."""
    account: str
    """Defaulting account."""
    instrument: str
    """Instrument key (chain:market:underlying:kind:strike:expiry)."""
    nonce: int
    """The account's close-out nonce for the instrument."""
    account_size: int
    """Signed size the account trades (18 decimals)."""
    mark: int
    """Certified mark, 18 decimals."""
    start: int
    """Auction start, chain time."""
    deadline: int
    """Auction end, chain time."""


class ClearingStore:
    """The clearing tables, on one connection, with explicit transactions."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.connection = open_database(self.path)
        self.transaction = Transactions(self.connection)
        migrate(self.connection)

    def close(self) -> None:
        self.connection.close()

    # `with store.transaction():` groups writes into one commit (nested use joins the outer one).

    # --- observation -----------------------------------------------------------------------

    def cursor(self, network: str) -> CursorRow | None:
        row = self.connection.execute(
            "SELECT chain_id, block_number, block_hash, block_timestamp FROM clearing_cursors WHERE network = ?", (network,)
        ).fetchone()
        return None if row is None else CursorRow(int(row[0]), int(row[1]), bytes(row[2]), int(row[3]))

    def cursors(self) -> dict[int, CursorRow]:
        rows = self.connection.execute("SELECT chain_id, block_number, block_hash, block_timestamp FROM clearing_cursors").fetchall()
        return {int(r[0]): CursorRow(int(r[0]), int(r[1]), bytes(r[2]), int(r[3])) for r in rows}

    def save_cursor(self, network: str, cursor: CursorRow) -> None:
        self.connection.execute(
            "INSERT INTO clearing_cursors VALUES (?, ?, ?, ?, ?) ON CONFLICT(network) DO UPDATE SET chain_id = excluded.chain_id,"
            " block_number = excluded.block_number, block_hash = excluded.block_hash, block_timestamp = excluded.block_timestamp",
            (network, cursor.chain_id, cursor.block_number, cursor.block_hash, cursor.block_timestamp),
        )

    def insert_observed(self, row: ObservedRow) -> None:
        self.connection.execute(
            "INSERT OR IGNORE INTO clearing_observed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.digest, row.kind, row.chain_id, row.emitter, row.block_number, row.block_hash, row.root, row.leaf_count,
             row.block_timestamp, row.events, int(row.applied)),
        )

    def unapplied(self, chain_id: int | None = None) -> list[ObservedRow]:
        """Observed facts not yet applied (of one chain, or all), per chain in block order."""
        where = "applied = 0" if chain_id is None else "applied = 0 AND chain_id = ?"
        rows = self.connection.execute(
            f"SELECT * FROM clearing_observed WHERE {where} ORDER BY chain_id, block_number, emitter", () if chain_id is None else (chain_id,)
        ).fetchall()
        return [ObservedRow(bytes(r[0]), r[1], r[2], bytes(r[3]), r[4], bytes(r[5]), bytes(r[6]), r[7], r[8],
                            None if r[9] is None else bytes(r[9]), bool(r[10])) for r in rows]

    def mark_applied(self, digest: bytes) -> None:
        self.connection.execute("UPDATE clearing_observed SET applied = 1 WHERE digest = ?", (digest,))

    def add_certified_root(self, chain_id: int, vault: bytes, root: bytes, block_number: int) -> None:
        self.connection.execute("INSERT OR IGNORE INTO clearing_certified_roots VALUES (?, ?, ?, ?)", (chain_id, vault, root, block_number))

    def certified_roots(self) -> set[tuple[int, bytes, bytes]]:
        return {(int(r[0]), bytes(r[1]), bytes(r[2])) for r in self.connection.execute("SELECT chain_id, vault, root FROM clearing_certified_roots")}


    # --- claims ----------------------------------------------------------------------------

    def insert_claim(self, nullifier: int, account: str, chain_id: int, asset: str, amount: int, public_signals: str, proof: str) -> bool:
        """Record a credited claim; False when its nullifier is already there (nothing written)."""
        sequence = self.connection.execute("SELECT COUNT(*) FROM clearing_claims").fetchone()[0]
        cursor = self.connection.execute(
            "INSERT OR IGNORE INTO clearing_claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (str(nullifier), account, chain_id, asset, str(amount), public_signals, proof, sequence),
        )
        return cursor.rowcount == 1

    def claim(self, nullifier: int) -> ClaimRow | None:
        row = self.connection.execute(
            "SELECT nullifier, account, chain_id, asset, amount FROM clearing_claims WHERE nullifier = ?", (str(nullifier),)
        ).fetchone()
        return None if row is None else ClaimRow(int(row[0]), row[1], int(row[2]), row[3], int(row[4]))

    def claim_count(self) -> int:
        return int(self.connection.execute("SELECT COUNT(*) FROM clearing_claims").fetchone()[0])

    # --- ledger ----------------------------------------------------------------------------

    def save_balance(self, account: str, chain_id: int, asset: str, amount: int, seize_nonce: int) -> None:
        if amount == 0 and seize_nonce == 0:
            self.connection.execute("DELETE FROM clearing_balances WHERE account = ? AND chain_id = ? AND asset = ?", (account, chain_id, asset))
            return
        self.connection.execute(
            "INSERT INTO clearing_balances VALUES (?, ?, ?, ?, ?) ON CONFLICT(account, chain_id, asset)"
            " DO UPDATE SET amount = excluded.amount, seize_nonce = excluded.seize_nonce",
            (account, chain_id, asset, str(amount), seize_nonce),
        )

    def balances(self) -> list[tuple[str, int, str, int, int]]:
        rows = self.connection.execute("SELECT account, chain_id, asset, amount, seize_nonce FROM clearing_balances").fetchall()
        return [(r[0], int(r[1]), r[2], int(r[3]), int(r[4])) for r in rows]

    def save_pool(self, chain_id: int, asset: str, credited: int, paid_out: int, insurance: int, cash: int) -> None:
        self.connection.execute(
            "INSERT INTO clearing_pools (chain_id, asset, credited, paid_out, insurance, cash) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(chain_id, asset) DO UPDATE SET credited = excluded.credited, paid_out = excluded.paid_out,"
            " insurance = excluded.insurance, cash = excluded.cash",
            (chain_id, asset, str(credited), str(paid_out), str(insurance), str(cash)),
        )

    def pools(self) -> list[tuple[int, str, int, int, int, int]]:
        rows = self.connection.execute("SELECT chain_id, asset, credited, paid_out, insurance, cash FROM clearing_pools").fetchall()
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def save_settlement(self, account: str, units: int) -> None:
        """An account's settlement balance (FUND for the insurance fund's); 0 deletes the row."""
        if units == 0:
            self.connection.execute("DELETE FROM clearing_settlement WHERE account = ?", (account,))
        else:
            self.connection.execute("INSERT OR REPLACE INTO clearing_settlement VALUES (?, ?)", (account, str(units)))

    def settlements(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.connection.execute("SELECT account, units FROM clearing_settlement")}

    def save_open_interest(self, account: str, instrument: str, size: int) -> None:
        if size == 0:
            self.connection.execute("DELETE FROM clearing_open_interest WHERE account = ? AND instrument = ?", (account, instrument))
        else:
            self.connection.execute("INSERT OR REPLACE INTO clearing_open_interest VALUES (?, ?, ?)", (account, instrument, str(size)))

    def open_interest(self) -> list[tuple[str, str, int]]:
        rows = self.connection.execute("SELECT account, instrument, size FROM clearing_open_interest ORDER BY instrument, account").fetchall()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def save_close_out(self, row: CloseOutRow) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO clearing_close_outs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.close_out_id, row.account, row.instrument, row.nonce, str(row.account_size), str(row.mark), row.start, row.deadline),
        )

    def drop_close_out(self, close_out_id: bytes) -> None:
        self.connection.execute("DELETE FROM clearing_close_outs WHERE close_out_id = ?", (close_out_id,))

    def close_outs(self) -> list[CloseOutRow]:
        rows = self.connection.execute("SELECT * FROM clearing_close_outs ORDER BY close_out_id").fetchall()
        return [CloseOutRow(bytes(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7])) for r in rows]

    def save_close_out_nonce(self, account: str, instrument: str, nonce: int) -> None:
        self.connection.execute("INSERT OR REPLACE INTO clearing_close_out_nonces VALUES (?, ?, ?)", (account, instrument, nonce))

    def close_out_nonces(self) -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): int(r[2]) for r in self.connection.execute("SELECT account, instrument, nonce FROM clearing_close_out_nonces")}

    def record_default(self, account: str, debt: int, plan: str, uncovered: int) -> None:
        self.connection.execute("INSERT INTO clearing_defaults (account, debt, plan, uncovered) VALUES (?, ?, ?, ?)", (account, str(debt), plan, str(uncovered)))

    def defaults(self) -> list[tuple[str, int, str, int]]:
        rows = self.connection.execute("SELECT account, debt, plan, uncovered FROM clearing_defaults ORDER BY sequence").fetchall()
        return [(r[0], int(r[1]), r[2], int(r[3])) for r in rows]

    def save_refundable(self, account: str, steps: list[tuple[str, str, int, str, int]]) -> None:
        """The cash steps others paid for an account's default that a late credit pays back first."""
        self.connection.execute("DELETE FROM clearing_refundable WHERE account = ?", (account,))
        for position, (kind, payer, chain_id, asset, units) in enumerate(steps):
            self.connection.execute("INSERT INTO clearing_refundable VALUES (?, ?, ?, ?, ?, ?, ?)", (account, position, kind, payer, chain_id, asset, str(units)))

    def refundable(self) -> dict[str, list[tuple[str, str, int, str, int]]]:
        rows = self.connection.execute("SELECT account, kind, payer, chain_id, asset, units FROM clearing_refundable ORDER BY account, position").fetchall()
        steps: dict[str, list[tuple[str, str, int, str, int]]] = {}
        for account, kind, payer, chain_id, asset, units in rows:
            steps.setdefault(account, []).append((kind, payer, int(chain_id), asset, int(units)))
        return steps

    def save_mark(self, underlying: str, answer: int, decimals: int) -> None:
        self.connection.execute("INSERT OR REPLACE INTO clearing_marks VALUES (?, ?, ?)", (underlying, str(answer), decimals))

    def marks(self) -> dict[str, tuple[int, int]]:
        return {r[0]: (int(r[1]), int(r[2])) for r in self.connection.execute("SELECT underlying, answer, decimals FROM clearing_marks")}

    def save_order(self, row: OrderRow) -> None:
        self.connection.execute(
            "INSERT INTO clearing_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(order_id) DO UPDATE SET"
            " kind = excluded.kind, account = excluded.account, chain_id = excluded.chain_id, asset = excluded.asset,"
            " amount = excluded.amount, deadline = excluded.deadline, token = excluded.token, recipient = excluded.recipient,"
            " reference = excluded.reference, state = excluded.state",
            (row.order_id, row.kind, row.account, row.chain_id, row.asset, str(row.amount), row.deadline, row.token,
             row.recipient, row.reference, row.state),
        )

    def orders(self) -> list[OrderRow]:
        rows = self.connection.execute("SELECT * FROM clearing_orders ORDER BY order_id").fetchall()
        return [OrderRow(bytes(r[0]), r[1], r[2], int(r[3]), r[4], int(r[5]), int(r[6]), r[7], r[8], r[9], r[10]) for r in rows]

    def order(self, order_id: bytes) -> OrderRow | None:
        r = self.connection.execute("SELECT * FROM clearing_orders WHERE order_id = ?", (order_id,)).fetchone()
        return None if r is None else OrderRow(bytes(r[0]), r[1], r[2], int(r[3]), r[4], int(r[5]), int(r[6]), r[7], r[8], r[9], r[10])

    # --- prices, chain time -------------------------------------------------------

    def save_price(self, name: str, updated_at: int, answer: int, decimals: int) -> None:
        self.connection.execute("INSERT OR IGNORE INTO clearing_prices VALUES (?, ?, ?, ?)", (name, updated_at, str(answer), decimals))

    def prices(self) -> list[tuple[str, int, int, int]]:
        rows = self.connection.execute("SELECT name, updated_at, answer, decimals FROM clearing_prices ORDER BY name, updated_at").fetchall()
        return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]

    def save_chain_time(self, chain_id: int, block_number: int, block_timestamp: int) -> None:
        self.connection.execute("INSERT OR REPLACE INTO clearing_chain_time VALUES (?, ?, ?)", (chain_id, block_number, block_timestamp))

    def chain_times(self) -> dict[int, tuple[int, int]]:
        return {int(r[0]): (int(r[1]), int(r[2])) for r in self.connection.execute("SELECT * FROM clearing_chain_time")}

    def record_ignored(self, chain_id: int, block_number: int, log_index: int, reason: str) -> None:
        self.connection.execute("INSERT OR IGNORE INTO clearing_ignored VALUES (?, ?, ?, ?)", (chain_id, block_number, log_index, reason))

    def ignored(self) -> list[tuple[int, int, int, str]]:
        rows = self.connection.execute("SELECT * FROM clearing_ignored ORDER BY chain_id, block_number, log_index").fetchall()
        return [(int(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows]


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the file's clearing schema to the newest version; returns that version."""
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the node's database is at schema version {version}, newer than this crossclear ({len(MIGRATIONS)}): upgrade crossclear")
    for target in range(version, len(MIGRATIONS)):
        # One script per step, its own transaction: executescript would commit a pending one.
        try:
            connection.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[target]}; PRAGMA user_version = {target + 1}; COMMIT;")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
