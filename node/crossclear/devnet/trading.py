"""Two-sided trades on a devnet `Market`: a maker signs an order, a taker fills it."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from crossclear.chains.interface import Address, InstrumentKind
from crossclear.chains.market_orders import MarketDomain, Order, sign_order
from crossclear.devnet.deploy import transact

#: Orders the devnet signs never lapse on their own (`validUntil` = uint64 max).
NO_EXPIRY = 2**64 - 1


def trade_perpetual(
    web3: Web3, market: Address, underlying: Address, maker_key: bytes, maker: Address, taker: Address, maker_size: int, price: int, nonce: int
) -> dict[str, Any]:
    """`maker` signs an order for `maker_size` perpetuals (18 decimals, positive: it buys) at
    `price` (18 decimals) and `taker` fills all of it; returns the fill's receipt."""
    chain_id = int(web3.eth.chain_id)
    order = Order(
        maker=Web3.to_checksum_address(maker), underlying=Web3.to_checksum_address(underlying), kind=InstrumentKind.PERPETUAL,
        strike=0, expiry=0, is_call=False, is_buy=maker_size > 0, quantity=abs(maker_size), limit_price=price,
        valid_until=NO_EXPIRY, nonce=nonce,
    )
    signature = sign_order(MarketDomain(chain_id, Web3.to_checksum_address(market)), order, maker_key)
    receipt: dict[str, Any] = transact(web3, "Market", market, "fill", order.as_abi(), signature, abs(maker_size), sender=taker)
    return receipt
