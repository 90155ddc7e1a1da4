"""The shared waterfall (crossclear.clearing.cover_shortfall) as the cascade simulator relies on it,
and one order the design asks for that it does not yet keep."""

from __future__ import annotations

import pytest

from crossclear.clearing import Holding, cover_shortfall

ETH = {"ETH": (3000_00000000, 8, 18)}  # 3,000 USDC per ETH, 8-decimal answer, 18-decimal token


def test_order_own_cash_then_fund_then_largest_winner() -> None:
    steps, left = cover_shortfall(
        5_000, "USDC", 6, [Holding(2, "USDC", 1_000), Holding(1, "USDC", 500)], {}, 0,
        [Holding(1, "USDC", 2_000)], {"b": 700, "a": 900, "c": 900},
    )
    assert [(s.kind, s.payer, s.chain_id, s.units) for s in steps] == [
        ("own_cash", "account", 1, 500), ("own_cash", "account", 2, 1_000), ("fund_pays", "fund", 1, 2_000),
        ("deleverage", "a", 0, 900), ("deleverage", "c", 0, 600),
    ]
    assert left == 0


def test_winners_are_not_deleveraged_while_the_defaulter_still_holds_collateral() -> None:
    # The defaulter owes 1,000 USDC and holds 1 ETH (worth 3,000); the fund is empty.
    steps, left = cover_shortfall(
        1_000_000000, "USDC", 6, [Holding(1, "ETH", 10**18)], ETH, 500, [Holding(1, "USDC", 0)], {"winner": 5_000_000000},
    )
    assert left == 0
    assert not [s for s in steps if s.kind == "deleverage"], steps
