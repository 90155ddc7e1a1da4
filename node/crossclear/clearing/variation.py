"""Variation margin: every position's P&L between two certified marks, paid in the settlement
asset's base units, rounded so that the clearinghouse never creates money.

Position sizes are fixed-point with 18 decimals (as `Market` emits them); marks are certified
feed answers with their own decimals; payments are in the settlement asset's base units.
For account i the exact payment is

    x_i = size_i / 10**18 * (new - old) / 10**price_decimals * 10**settlement_decimals

and it is paid as floor(x_i): a gain is rounded down, a loss rounded up in size. Every long has
a short, so the exact payments of one instrument sum to zero and the rounded ones sum to at
most zero; the residue -sum(floor(x_i)) >= 0 goes to the insurance fund. Rounding therefore
moves at most one base unit per position, always towards the fund, and total money is
conserved exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SIZE_SCALE = 10**18


@dataclass(frozen=True)
class MarkMove:
    """One certified mark change of one instrument."""

    old: int
    """Previous certified answer."""
    new: int
    """New certified answer."""
    price_decimals: int
    """Decimals of both answers."""


def settle_variation(sizes: Mapping[str, int], move: MarkMove, settlement_decimals: int) -> tuple[dict[str, int], int]:
    """Payments per account (positive: receives) and the residue for the insurance fund.

    `sizes` maps account -> signed size (18 decimals) in the instrument. Raises ValueError when
    the sizes do not net to zero: then payments could not be funded by the other side."""
    if sum(sizes.values()) != 0:
        raise ValueError(f"open interest does not net to zero ({sum(sizes.values())}): variation margin would create money")
    denominator = SIZE_SCALE * 10**move.price_decimals
    delta = move.new - move.old
    payments = {}
    for account in sorted(sizes):
        numerator = sizes[account] * delta * 10**settlement_decimals
        payments[account] = int(numerator // denominator)  # floor: gains down, losses up
    residue = -sum(payments.values())
    return {account: amount for account, amount in payments.items() if amount}, residue


def settle_trade(maker: str, taker: str, maker_size: int, price: int, mark: int, price_decimals: int, settlement_decimals: int, premium: bool) -> tuple[dict[str, int], int]:
    """The cash of one trade, with the same rounding rule as variation margin.

    `price` has 18 decimals (as `Market` emits it), `mark` is the certified answer with
    `price_decimals`. A perpetual changes hands at `price` while positions are carried at the
    mark: the buyer pays size x (price - mark). An option's buyer pays size x premium (`price`),
    and the seller receives it. Returns (payments, residue for the insurance fund)."""
    if maker == taker:
        raise ValueError("a trade needs two parties")
    if premium:
        exact_numerator = maker_size * price * 10**settlement_decimals
        denominator = SIZE_SCALE * 10**18
    else:
        exact_numerator = maker_size * (price * 10**price_decimals - mark * 10**18) * 10**settlement_decimals
        denominator = SIZE_SCALE * 10**18 * 10**price_decimals
    maker_pays = int(-exact_numerator // denominator)  # floor of what the maker receives
    taker_gets = int(exact_numerator // denominator)
    payments = {maker: maker_pays, taker: taker_gets}
    residue = -(maker_pays + taker_gets)
    return {account: amount for account, amount in payments.items() if amount}, residue
