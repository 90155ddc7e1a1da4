"""The default waterfall: who pays a defaulted account's debt, in which order, in base units.

After its positions are closed out, an account whose settlement balance is negative owes
that much of the settlement asset. The debt is covered, in this order:

1. the account's own settlement-asset holdings, chain by chain in ascending chain id;
2. the account's other collateral, taken over by the insurance fund at the certified price
   less a liquidation discount (enough units to cover the debt, never more than held), while
   the insurance fund pays the debt from its settlement-asset holdings;
3. the insurance fund's remaining settlement cash;
4. while the defaulter still holds other collateral the fund could not buy, the largest
   winners take it in kind at the same discounted price, their settlement balance paying for
   it (so no winner loses value while the defaulter still has some);
5. only then auto-deleveraging: what is left is taken from the positive settlement balances of
   the other accounts, largest balance first, then by account, each at most its balance.

Every step is integer arithmetic on base units, so every node computes the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Holding:
    """Collateral an account (or the fund) holds in one pool."""

    chain_id: int
    """Chain of the vault."""
    asset: str
    """Asset name."""
    units: int
    """Base units held."""


@dataclass(frozen=True)
class WaterfallStep:
    """One movement of the plan."""

    kind: str
    """"own_cash", "collateral_to_fund", "fund_pays", "collateral_to_winner" or "deleverage"."""
    payer: str
    """Who gives units ("fund" for the insurance fund)."""
    chain_id: int
    """Pool chain (0 for a settlement-balance haircut)."""
    asset: str
    """Pool asset."""
    units: int
    """Base units moved."""
    covers: int
    """Settlement-asset base units of debt this step covers."""


def units_for_value(debt: int, settlement_decimals: int, answer: int, price_decimals: int, asset_decimals: int, discount_bps: int) -> int:
    """Base units of an asset worth at least `debt` settlement units at `answer` less the discount
    (rounded up: the fund never takes less value than it pays)."""
    numerator = debt * 10**asset_decimals * 10**price_decimals * BASIS_POINTS
    denominator = answer * (BASIS_POINTS - discount_bps) * 10**settlement_decimals
    return int(-(-numerator // denominator))


def value_of_units(units: int, settlement_decimals: int, answer: int, price_decimals: int, asset_decimals: int, discount_bps: int) -> int:
    """Settlement units `units` of an asset are worth at `answer` less the discount (rounded down)."""
    return int(units * answer * (BASIS_POINTS - discount_bps) * 10**settlement_decimals // (10**asset_decimals * 10**price_decimals * BASIS_POINTS))


def cover_shortfall(
    debt: int,
    settlement_asset: str,
    settlement_decimals: int,
    own: Sequence[Holding],
    prices: Mapping[str, tuple[int, int, int]],
    discount_bps: int,
    fund_cash: Sequence[Holding],
    winners: Mapping[str, int],
) -> tuple[list[WaterfallStep], int]:
    """The plan that covers `debt`, and what is left uncovered (0 unless everyone ran dry).

    `own` is the defaulter's collateral; `prices[asset] = (answer, price_decimals, asset_decimals)`
    for every non-settlement asset in `own`; `fund_cash` the fund's settlement-asset holdings;
    `winners` the positive settlement balances eligible for deleveraging."""
    steps: list[WaterfallStep] = []
    left = debt
    for holding in sorted((h for h in own if h.asset == settlement_asset and h.units > 0), key=lambda h: h.chain_id):
        if left <= 0:
            break
        take = min(left, holding.units)
        steps.append(WaterfallStep("own_cash", "account", holding.chain_id, holding.asset, take, take))
        left -= take
    fund_available = sorted((h for h in fund_cash if h.units > 0), key=lambda h: h.chain_id)
    for holding in sorted((h for h in own if h.asset != settlement_asset and h.units > 0), key=lambda h: (h.chain_id, h.asset)):
        if left <= 0:
            break
        answer, price_decimals, asset_decimals = prices[holding.asset]
        worth = value_of_units(holding.units, settlement_decimals, answer, price_decimals, asset_decimals, discount_bps)
        cover = min(left, worth, sum(h.units for h in fund_available))
        if cover <= 0:
            continue
        units = min(holding.units, units_for_value(cover, settlement_decimals, answer, price_decimals, asset_decimals, discount_bps))
        steps.append(WaterfallStep("collateral_to_fund", "account", holding.chain_id, holding.asset, units, 0))
        remaining = cover
        for index, cash in enumerate(fund_available):
            pay = min(remaining, cash.units)
            if pay:
                steps.append(WaterfallStep("fund_pays", "fund", cash.chain_id, cash.asset, pay, pay))
                fund_available[index] = Holding(cash.chain_id, cash.asset, cash.units - pay)
                remaining -= pay
        left -= cover
    # The fund covers what collateral could not, from whatever settlement cash it still has.
    for index, cash in enumerate(fund_available):
        if left <= 0:
            break
        pay = min(left, cash.units)
        if pay:
            steps.append(WaterfallStep("fund_pays", "fund", cash.chain_id, cash.asset, pay, pay))
            fund_available[index] = Holding(cash.chain_id, cash.asset, cash.units - pay)
            left -= pay
    # What the fund could not buy goes to the winners in kind before anyone is deleveraged.
    remaining_units = {(h.chain_id, h.asset): h.units for h in own if h.asset != settlement_asset}
    for step in steps:
        if step.kind == "collateral_to_fund":
            remaining_units[(step.chain_id, step.asset)] -= step.units
    balances = dict(winners)
    for (chain_id, asset), units in sorted(remaining_units.items()):
        for account in sorted(balances, key=lambda a: (-balances[a], a)):
            if left <= 0 or units <= 0:
                break
            answer, price_decimals, asset_decimals = prices[asset]
            worth = value_of_units(units, settlement_decimals, answer, price_decimals, asset_decimals, discount_bps)
            cover = min(left, worth, balances[account])
            if cover <= 0:
                continue
            taken = min(units, units_for_value(cover, settlement_decimals, answer, price_decimals, asset_decimals, discount_bps))
            steps.append(WaterfallStep("collateral_to_winner", account, chain_id, asset, taken, cover))
            balances[account] -= cover
            units -= taken
            left -= cover
    for account, balance in sorted(balances.items(), key=lambda item: (-item[1], item[0])):
        if left <= 0:
            break
        take = min(left, balance)
        if take > 0:
            steps.append(WaterfallStep("deleverage", account, 0, settlement_asset, take, take))
            left -= take
    return steps, left
