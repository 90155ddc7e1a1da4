"""The money ledger: who holds which collateral on which chain, in integer base units.

Every amount here is a Python `int` in the token's smallest unit. The ledger is plain data
mutated by one owner (the processor), which writes every changed row in the same SQLite
transaction as the input that changed it, so a restarted node loads exactly what it had.

The rules it keeps:

    per (chain, asset):  credited = held + reserved + insurance fund + cash pool + paid out
    overall:             sum of settlement balances (accounts and fund) = sum of cash pools

Variation margin moves value between accounts as *settlement balances* in the settlement
asset (positive: the clearinghouse owes the account; negative: the account owes). A debt is
paid from the account's settlement-asset holdings, which move into the *cash pool* of their
chain; a positive balance is withdrawn from a chain's cash pool. So a winner withdraws what
a loser posted, on the loser's chain, released by the quorum from that chain's vault.

`credited` grows only with accepted claims; `paid out` only with certified `Released` and
`Seized` events. An order (release or seize) reserves its amount when this node signs it; the
reservation ends when the order's own payout is certified, or when this node's certified view
of that chain has passed the order's deadline (then the vault can never pay it, so the amount
goes back). A payout certified for collateral this node has not credited yet (its claim is
still on its way) waits in `pending_payouts` and settles when the credit lands.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

Line = tuple[str, int, str]
"""(account as lowercase 0x hex, chain id, asset name): one holding."""
Pool = tuple[int, str]
"""(chain id, asset name): one vault's holding of one token."""


class LedgerError(ValueError):
    """A change the ledger refuses (more than held, an unknown order); no state changed."""


class OrderKind(enum.Enum):
    """What a reservation pays for."""

    RELEASE = "release"
    SEIZE = "seize"


@dataclass(frozen=True)
class Reservation:
    """An amount set aside for an order this node signed."""

    order_id: bytes
    """The vault's 32-byte release or seize id."""
    kind: OrderKind
    """Release (withdrawal) or seize (liquidation)."""
    line: Line
    """The holding the amount came out of."""
    amount: int
    """Base units reserved (and the order's amount)."""
    deadline: int
    """Unix seconds of chain time after which the vault refuses the order."""
    token: str
    """Token address the vault pays (lowercase 0x)."""
    recipient: str
    """Address the vault pays (lowercase 0x)."""
    reference: str
    """Release: "holding" or "settlement" (the source it draws on); seize: the line's seize nonce."""


@dataclass(frozen=True)
class PendingPayout:
    """A certified payout this node could not take from the account yet."""

    order_id: bytes
    """The vault's id of the payout."""
    kind: OrderKind
    """Release or seize."""
    line: Line
    """The holding it must come out of."""
    amount: int
    """Base units paid out on-chain."""


@dataclass
class Ledger:
    """Integer balances, reservations and totals; `changed` names what to write back."""

    balances: dict[Line, int] = field(default_factory=dict)
    """Free collateral per holding (what margin counts)."""
    reservations: dict[bytes, Reservation] = field(default_factory=dict)
    """Open reservations by order id."""
    credited: dict[Pool, int] = field(default_factory=dict)
    """Total credited through claims, per vault and asset."""
    paid_out: dict[Pool, int] = field(default_factory=dict)
    """Total paid by the vault through certified releases and seizes."""
    insurance: dict[Pool, int] = field(default_factory=dict)
    """Insurance fund holdings (receives rounding residue and covers shortfalls)."""
    seize_nonces: dict[Line, int] = field(default_factory=dict)
    """Per holding, how many of its seizes were certified: the next seize id's nonce."""
    settled_orders: set[bytes] = field(default_factory=set)
    """Order ids whose payout was certified (each is applied once)."""
    pending_payouts: dict[bytes, PendingPayout] = field(default_factory=dict)
    """Certified payouts waiting for the credit they draw on."""
    settlement: dict[str, int] = field(default_factory=dict)
    """Settlement balance per account, in the settlement asset's base units (may be negative)."""
    fund_settlement: int = 0
    """The insurance fund's settlement balance (rounding residue, waterfall payments)."""
    cash: dict[Pool, int] = field(default_factory=dict)
    """Cash pools: settlement-asset units per chain that back positive settlement balances."""
    changed_accounts: set[str] = field(default_factory=set)
    _held: dict[Pool, int] = field(default_factory=dict, repr=False)
    """Running total of free holdings per pool."""
    _lines: dict[str, set[Line]] = field(default_factory=dict, repr=False)
    """Account -> its holdings with a balance (so a sweep does not scan every account)."""
    _settlement_total: int = field(default=0, repr=False)
    """Running sum of the accounts' settlement balances."""
    changed_lines: set[Line] = field(default_factory=set)
    changed_pools: set[Pool] = field(default_factory=set)

    # --- reading -------------------------------------------------------------------------------

    def balance(self, line: Line) -> int:
        return self.balances.get(line, 0)

    def margin_units(self, line: Line) -> int:
        """What margin counts for a holding: its free units plus units reserved by seize orders
        not yet paid (still the account's until the vault pays; otherwise signing a seize would
        make the account look emptier and keep it liquidatable after the market recovers)."""
        seizing = sum(r.amount for r in self.reservations.values() if r.kind is OrderKind.SEIZE and r.line == line)
        return self.balance(line) + seizing

    def reserved(self, pool: Pool) -> int:
        return sum(r.amount for r in self.reservations.values() if (r.line[1], r.line[2]) == pool)

    def held(self, pool: Pool) -> int:
        return self._held.get(pool, 0)

    def lines_of(self, account: str) -> dict[tuple[int, str], int]:
        """The account's free holdings, (chain id, asset) -> base units."""
        return {(chain, asset): self.balances[(owner, chain, asset)] for owner, chain, asset in self._lines.get(account, ())}

    def conservation_failures(self) -> list[str]:
        """One line per rule broken: a (chain, asset) where credited != held + reserved +
        insurance + cash + paid out, or settlement balances that cash pools do not back.

        Runs after every applied block, so it reads running totals (kept by every change),
        not every holding; `audit` recounts from the holdings themselves."""
        return self._failures(self._held, self._settlement_total)

    def audit(self) -> list[str]:
        """`conservation_failures` recomputed from every holding and balance (and the running
        totals checked against them)."""
        held: dict[Pool, int] = {}
        for (_, chain, asset), amount in self.balances.items():
            held[(chain, asset)] = held.get((chain, asset), 0) + amount
        failures = self._failures(held, sum(self.settlement.values()))
        if {p: v for p, v in self._held.items() if v} != held or self._settlement_total != sum(self.settlement.values()):
            failures.append("running totals differ from the holdings")
        return failures

    def recount(self) -> None:
        """Rebuild the running totals and the per-account index (after loading from the store)."""
        self._held, self._lines = {}, {}
        for line, amount in self.balances.items():
            self._held[(line[1], line[2])] = self._held.get((line[1], line[2]), 0) + amount
            self._lines.setdefault(line[0], set()).add(line)
        self._settlement_total = sum(self.settlement.values())

    def _failures(self, held_totals: Mapping[Pool, int], settlement_total: int) -> list[str]:
        pools = set(self.credited) | set(self.paid_out) | set(self.insurance) | set(self.cash) | set(held_totals)
        pools |= {(r.line[1], r.line[2]) for r in self.reservations.values()}
        failures = []
        for pool in sorted(pools):
            credited = self.credited.get(pool, 0)
            held, reserved = held_totals.get(pool, 0), self.reserved(pool)
            insurance, paid = self.insurance.get(pool, 0), self.paid_out.get(pool, 0)
            cash = self.cash.get(pool, 0)
            if credited != held + reserved + insurance + cash + paid or min(held, reserved, insurance, paid, cash) < 0:
                failures.append(
                    f"chain {pool[0]} {pool[1]}: credited {credited} != held {held} + reserved {reserved}"
                    f" + insurance {insurance} + cash {cash} + paid out {paid}"
                )
        owed = settlement_total + self.fund_settlement
        if owed != sum(self.cash.values()):
            failures.append(f"settlement balances {owed} != cash pools {sum(self.cash.values())}")
        return failures

    # --- changing ------------------------------------------------------------------------------

    def credit(self, line: Line, amount: int) -> None:
        """An accepted claim: `amount` more base units in `line`; settles waiting payouts."""
        if amount <= 0:
            raise LedgerError(f"a credit must be positive, got {amount}")
        pool = (line[1], line[2])
        self.credited[pool] = self.credited.get(pool, 0) + amount
        self._add(line, amount)
        self.changed_pools.add(pool)
        for pending in sorted(self.pending_payouts.values(), key=lambda p: p.order_id):
            if pending.line == line and self.balance(line) >= pending.amount:
                del self.pending_payouts[pending.order_id]
                self._pay(pending.line, pending.amount)

    def credit_fund(self, pool: Pool, amount: int) -> None:
        """An accepted claim by the insurance fund's own address seeds the fund."""
        if amount <= 0:
            raise LedgerError(f"a credit must be positive, got {amount}")
        self.credited[pool] = self.credited.get(pool, 0) + amount
        self.insurance[pool] = self.insurance.get(pool, 0) + amount
        self.changed_pools.add(pool)

    def pay_debt_from_holding(self, line: Line, units: int) -> None:
        """The waterfall's first step: a defaulter's settlement-asset holding pays its debt."""
        self._add(line, -units)
        self._to_cash((line[1], line[2]), units)
        self._settle(line[0], units)

    def fund_settlement_pays(self, account: str, units: int) -> None:
        """The fund pays part of a debt from its own settlement balance (rounding residue it holds)."""
        if units > self.fund_settlement:
            raise LedgerError(f"the fund's settlement balance {self.fund_settlement} cannot pay {units}")
        self.fund_settlement -= units
        self._settle(account, units)

    def reserve(self, reservation: Reservation) -> None:
        """Set `reservation.amount` aside for a signed order."""
        if reservation.order_id in self.reservations or reservation.order_id in self.settled_orders:
            raise LedgerError(f"order {reservation.order_id.hex()} is already reserved or paid")
        if reservation.amount <= 0:
            raise LedgerError(f"an order must pay a positive amount, got {reservation.amount}")
        if reservation.reference == "settlement":
            account, chain_id, asset = reservation.line
            owed, cash = self.settlement_of(account), self.cash.get((chain_id, asset), 0)
            if reservation.amount > min(owed, cash):
                raise LedgerError(f"settlement balance {owed} and chain {chain_id}'s cash pool {cash} cannot pay {reservation.amount}")
            self._settle(account, -reservation.amount)
            self._to_cash((chain_id, asset), -reservation.amount)
        else:
            held = self.balance(reservation.line)
            if reservation.amount > held:
                raise LedgerError(f"{reservation.line[2]} on chain {reservation.line[1]}: {reservation.amount} asked, {held} held")
            self._add(reservation.line, -reservation.amount)
        self.reservations[reservation.order_id] = reservation

    def settle(self, kind: OrderKind, order_id: bytes, line: Line, amount: int) -> str:
        """A certified payout (`Released` or `Seized`); returns how it was applied.

        Applied once per order id. When this node reserved exactly this order, the reservation
        becomes paid out. Otherwise (another content under the id, or an order it never
        signed), any reservation under the id goes back first and the amount comes out of the
        holding, or waits in `pending_payouts` while the holding lacks it."""
        if order_id in self.settled_orders or order_id in self.pending_payouts:
            return "duplicate"
        self.settled_orders.add(order_id)
        if kind is OrderKind.SEIZE:
            self.seize_nonces[line] = self.seize_nonces.get(line, 0) + 1
            self.changed_lines.add(line)
        reservation = self.reservations.pop(order_id, None)
        if reservation is not None and (reservation.kind, reservation.line, reservation.amount) == (kind, line, amount):
            pool = (line[1], line[2])
            self.paid_out[pool] = self.paid_out.get(pool, 0) + amount
            self.changed_pools.add(pool)
            return "reserved"
        if reservation is not None:
            self._give_back(reservation)
        if self.balance(line) >= amount:
            self._pay(line, amount)
            return "debited"
        pool = (line[1], line[2])
        # A release this node did not reserve may have been signed by nodes that had not yet seen
        # the account's debt swept its holding into the cash pool: it comes out of the pool and
        # the account's settlement balance, exactly as if the sweep had come after the payout.
        if kind is OrderKind.RELEASE and self.cash.get(pool, 0) >= amount:
            self._settle(line[0], -amount)
            self._to_cash(pool, -amount)
            self.paid_out[pool] = self.paid_out.get(pool, 0) + amount
            self.changed_pools.add(pool)
            return "debited"
        self.pending_payouts[order_id] = PendingPayout(order_id, kind, line, amount)
        return "pending"

    def expire(self, chain_id: int, chain_time: int) -> list[Reservation]:
        """Give back reservations on `chain_id` whose deadline is before `chain_time`.

        The caller passes the timestamp of a block up to which every certified payout of that
        chain has been applied: an order still reserved then was never paid, and can't be."""
        expired = [r for r in self.reservations.values() if r.line[1] == chain_id and r.deadline < chain_time]
        for reservation in sorted(expired, key=lambda r: r.order_id):
            del self.reservations[reservation.order_id]
            self._give_back(reservation)
        return expired

    def _give_back(self, reservation: Reservation) -> None:
        if reservation.reference == "settlement":
            self._settle(reservation.line[0], reservation.amount)
            self._to_cash((reservation.line[1], reservation.line[2]), reservation.amount)
        else:
            self._add(reservation.line, reservation.amount)

    # --- settlement ----------------------------------------------------------------------------

    def settlement_of(self, account: str) -> int:
        return self.settlement.get(account, 0)

    def pay_settlement(self, payments: dict[str, int], residue: int) -> None:
        """Variation margin or a trade's cash: `payments` (account -> signed units) and the
        rounding residue (to the fund) sum to zero."""
        if sum(payments.values()) + residue != 0 or residue < 0:
            raise LedgerError(f"settlement payments sum to {sum(payments.values())} with residue {residue}: they must cancel")
        for account, amount in payments.items():
            self._settle(account, amount)
        self.fund_settlement += residue

    def sweep(self, account: str, asset: str) -> int:
        """Pay the account's debt from its `asset` holdings, chain by chain (ascending); returns units moved."""
        moved = 0
        for line in sorted(line for line in self._lines.get(account, ()) if line[2] == asset):
            debt = -self.settlement_of(account)
            if debt <= 0:
                break
            take = min(debt, self.balance(line))
            self._add(line, -take)
            self._to_cash((line[1], line[2]), take)
            self._settle(account, take)
            moved += take
        return moved

    def move_to_fund(self, line: Line, units: int) -> None:
        """A defaulter's collateral becomes the insurance fund's (the waterfall's second step)."""
        self._add(line, -units)
        pool = (line[1], line[2])
        self.insurance[pool] = self.insurance.get(pool, 0) + units
        self.changed_pools.add(pool)

    def fund_pays(self, account: str, pool: Pool, units: int) -> None:
        """The fund pays part of an account's debt from its settlement-asset holding in `pool`."""
        held = self.insurance.get(pool, 0)
        if units > held:
            raise LedgerError(f"insurance fund holds {held} of {pool[1]} on chain {pool[0]}, {units} asked")
        self.insurance[pool] = held - units
        self._to_cash(pool, units)
        self._settle(account, units)

    def pay_back(self, line: Line, kind: str, payer: str, pool: Pool, units: int) -> None:
        """A defaulter's late settlement-asset credit pays back, in cash, what the fund (`kind`
        "fund_pays") or a winner ("deleverage") covered for it: as if the credit had been there
        when the default was handled."""
        self._add(line, -units)
        self._to_cash((line[1], line[2]), units)
        if kind == "deleverage":
            self._settle(payer, units)
        elif pool[0] != 0 and self.cash.get(pool, 0) >= units:
            self._to_cash(pool, -units)
            self.insurance[pool] = self.insurance.get(pool, 0) + units
            self.changed_pools.add(pool)
        else:
            self.fund_settlement += units
            self.changed_accounts.add(line[0])

    def give_collateral(self, line: Line, to_account: str, units: int) -> None:
        """A defaulter's collateral changes hands inside the vault (to a winner, in kind)."""
        self._add(line, -units)
        self._add((to_account, line[1], line[2]), units)

    def deleverage(self, winner: str, loser: str, units: int) -> None:
        """Auto-deleveraging: part of a winner's settlement balance covers a defaulter's debt."""
        if units > self.settlement_of(winner):
            raise LedgerError(f"{winner} has {self.settlement_of(winner)} to deleverage, {units} asked")
        self._settle(winner, -units)
        self._settle(loser, units)

    def _settle(self, account: str, delta: int) -> None:
        balance = self.settlement.get(account, 0) + delta
        self._settlement_total += delta
        if balance:
            self.settlement[account] = balance
        else:
            self.settlement.pop(account, None)
        self.changed_accounts.add(account)

    def _to_cash(self, pool: Pool, delta: int) -> None:
        cash = self.cash.get(pool, 0) + delta
        if cash < 0:
            raise LedgerError(f"cash pool of {pool[1]} on chain {pool[0]} would go negative")
        self.cash[pool] = cash
        self.changed_pools.add(pool)

    def take_changes(self) -> tuple[set[Line], set[Pool], set[str]]:
        """Holdings, pools and settlement balances changed since the last call (for the store to
        write; order rows are written where each order changes), and forget them."""
        changes = (self.changed_lines, self.changed_pools, self.changed_accounts)
        self.changed_lines, self.changed_pools, self.changed_accounts = set(), set(), set()
        return changes

    def _add(self, line: Line, delta: int) -> None:
        balance = self.balances.get(line, 0) + delta
        if balance < 0:
            raise LedgerError(f"{line[2]} on chain {line[1]} of {line[0]} would go negative")
        if balance:
            self.balances[line] = balance
            self._lines.setdefault(line[0], set()).add(line)
        else:
            self.balances.pop(line, None)
            self._lines.get(line[0], set()).discard(line)
        self._held[(line[1], line[2])] = self._held.get((line[1], line[2]), 0) + delta
        self.changed_lines.add(line)

    def _pay(self, line: Line, amount: int) -> None:
        self._add(line, -amount)
        pool = (line[1], line[2])
        self.paid_out[pool] = self.paid_out.get(pool, 0) + amount
        self.changed_pools.add(pool)
