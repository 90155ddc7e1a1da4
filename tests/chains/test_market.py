"""Market on a real anvil chain: signed maker orders filled by takers, quorum-signed close-outs
by Dutch auction, and every refusal (clear reason, nothing emitted, no state change)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from crossclear.attest import NodeKey
from crossclear.chains import Cursor, InstrumentKind, Traded
from crossclear.chains.conformance import collect_batches, reached, run
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.market_orders import (
    CloseOut,
    MarketDomain,
    Order,
    auction_price,
    close_out_digest,
    order_hash,
    quorum_signatures,
    sign_close_out,
    sign_order,
    trade_id,
    type_string,
    typed_data,
)
from crossclear.devnet.accounts import DevAccount, node_keys
from crossclear.devnet.chain import DevChain

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ONE = 10**18
_nonces = itertools.count(1)


def _domain(chain: DevChain) -> MarketDomain:
    return MarketDomain(chain_id=chain.anvil.chain_id, market=chain.deployment.market)


def _now(chain: DevChain) -> int:
    return int(chain.web3.eth.get_block("latest")["timestamp"])


def _maker(chain: DevChain) -> DevAccount:
    return chain.accounts[1]


def _taker(chain: DevChain) -> DevAccount:
    return chain.accounts[2]


def _order(chain: DevChain, **changes: Any) -> Order:
    values: dict[str, Any] = dict(
        maker=_maker(chain).address, underlying=chain.token("WETH"), kind=InstrumentKind.PERPETUAL, strike=0, expiry=0,
        is_call=False, is_buy=True, quantity=5 * ONE, limit_price=3_000 * ONE, valid_until=_now(chain) + 3_600,
        nonce=next(_nonces),
    )  # fmt: skip
    values.update(changes)
    return Order(**values)


def _fill_call(chain: DevChain, order: Order, signature: bytes, quantity: int) -> ContractFunction:
    return chain.market.functions.fill(order.as_abi(), signature, quantity)


def _transact(chain: DevChain, call: ContractFunction, sender: str) -> dict[str, Any]:
    receipt: dict[str, Any] = dict(chain.web3.eth.wait_for_transaction_receipt(call.transact({"from": sender})))
    assert receipt["status"] == 1
    return receipt


def _trades(chain: DevChain, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(event["args"]) for event in chain.market.events.Traded().process_receipt(receipt, errors=DISCARD)]


def _refused(chain: DevChain, call: ContractFunction, sender: str, reason: str, state: Callable[[], object]) -> None:
    """The call reverts with `reason`; mined anyway (gas given, so no estimate stops it), it
    fails, emits nothing and changes none of `state`."""
    before = state()
    with pytest.raises(ContractLogicError, match=reason):
        call.call({"from": sender})
    receipt = chain.web3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "gas": 2_000_000}))
    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert state() == before


def _order_state(chain: DevChain, order: Order) -> Callable[[], tuple[int, int, bool]]:
    market, digest = chain.market, order_hash(_domain(chain), order)
    return lambda: (
        market.functions.filled(digest).call(),
        market.functions.fillCount(digest).call(),
        market.functions.cancelled(digest).call(),
    )


# ---- EIP-712 agreement ------------------------------------------------------------------------


def test_python_and_contract_agree_on_domain_type_hashes_and_digests(chain: DevChain) -> None:
    order = _order(chain)
    market = chain.market
    assert market.functions.domainSeparator().call() == encode_typed_data(full_message=typed_data(_domain(chain), order)).header
    assert market.functions.ORDER_TYPEHASH().call() == keccak(text=type_string("Order"))
    assert market.functions.CLOSE_OUT_TYPEHASH().call() == keccak(text=type_string("CloseOut"))
    assert market.functions.orderHash(order.as_abi()).call() == order_hash(_domain(chain), order)
    option = _order(chain, kind=InstrumentKind.OPTION, strike=3_300 * ONE, expiry=_now(chain) + 86_400, is_call=True, is_buy=False)
    assert market.functions.orderHash(option.as_abi()).call() == order_hash(_domain(chain), option)
    close_out = _close_out(chain, start=_now(chain), deadline=_now(chain) + 600)
    assert market.functions.closeOutDigest(close_out.as_abi()).call() == close_out_digest(_domain(chain), close_out)
    assert market.functions.vault().call() == chain.deployment.vault


# ---- fills ------------------------------------------------------------------------------------


def test_partial_fills_by_two_takers_each_emit_one_trade_naming_both_parties(chain: DevChain) -> None:
    order = _order(chain, quantity=5 * ONE, is_buy=True)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    digest = order_hash(_domain(chain), order)
    takers = [chain.accounts[2], chain.accounts[3]]
    for index, (taker, quantity) in enumerate(zip(takers, (2 * ONE, 3 * ONE))):
        receipt = _transact(chain, _fill_call(chain, order, signature, quantity), taker.address)
        (trade,) = _trades(chain, receipt)
        assert trade == {
            "tradeId": trade_id(digest, index), "maker": order.maker, "taker": taker.address,
            "underlying": order.underlying, "kind": 0, "strike": 0, "expiry": 0, "isCall": False,
            "makerSize": quantity, "price": order.limit_price, "closeOutId": bytes(32),
        }  # fmt: skip
    assert _order_state(chain, order)() == (5 * ONE, 2, False)
    # The order is used up: the same fill again is a replay and is refused.
    _refused(chain, _fill_call(chain, order, signature, 1), _taker(chain).address, "fill exceeds what is left", _order_state(chain, order))


def test_a_sell_order_for_an_option_trades_a_negative_maker_size(chain: DevChain) -> None:
    expiry = _now(chain) + 86_400
    order = _order(chain, kind=InstrumentKind.OPTION, strike=3_300 * ONE, expiry=expiry, is_call=False, is_buy=False, limit_price=75 * ONE)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    (trade,) = _trades(chain, _transact(chain, _fill_call(chain, order, signature, ONE), _taker(chain).address))
    assert (trade["kind"], trade["strike"], trade["expiry"], trade["isCall"]) == (1, 3_300 * ONE, expiry, False)
    assert (trade["makerSize"], trade["price"], trade["taker"]) == (-ONE, 75 * ONE, _taker(chain).address)


def test_a_fill_beyond_what_is_left_is_refused_and_the_rest_still_fills(chain: DevChain) -> None:
    order = _order(chain, quantity=5 * ONE)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    taker = _taker(chain).address
    _refused(chain, _fill_call(chain, order, signature, 6 * ONE), taker, "fill exceeds what is left", _order_state(chain, order))
    _transact(chain, _fill_call(chain, order, signature, 4 * ONE), taker)
    _refused(chain, _fill_call(chain, order, signature, 2 * ONE), taker, "fill exceeds what is left", _order_state(chain, order))
    _transact(chain, _fill_call(chain, order, signature, ONE), taker)
    assert _order_state(chain, order)() == (5 * ONE, 2, False)


def test_cancel_stops_what_is_left_and_only_the_maker_may_cancel(chain: DevChain) -> None:
    order = _order(chain)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    taker = _taker(chain).address
    _transact(chain, _fill_call(chain, order, signature, ONE), taker)
    state = _order_state(chain, order)
    _refused(chain, chain.market.functions.cancel(order.as_abi()), taker, "only the maker can cancel", state)
    receipt = _transact(chain, chain.market.functions.cancel(order.as_abi()), order.maker)
    (cancelled,) = chain.market.events.OrderCancelled().process_receipt(receipt, errors=DISCARD)
    assert dict(cancelled["args"]) == {"orderHash": order_hash(_domain(chain), order), "maker": order.maker}
    assert state() == (ONE, 1, True)
    _refused(chain, _fill_call(chain, order, signature, ONE), taker, "order cancelled", state)
    _refused(chain, chain.market.functions.cancel(order.as_abi()), order.maker, "already cancelled", state)


def _high_s(signature: bytes) -> bytes:
    s_value = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_ORDER - s_value).to_bytes(32, "big") + bytes([55 - signature[64]])


#: (name, how to make the refused fill from a fresh order, reason). Each builder returns
#: (order, signature, quantity, taker address).
_FillCase = Callable[[DevChain], tuple[Order, bytes, int, str]]


def _signed(chain: DevChain, order: Order, quantity: int = ONE, taker: str | None = None) -> tuple[Order, bytes, int, str]:
    return order, sign_order(_domain(chain), order, _maker(chain).private_key), quantity, taker or _taker(chain).address


def _resigned(chain: DevChain, signature: Callable[[Order], bytes]) -> tuple[Order, bytes, int, str]:
    order = _order(chain)
    return order, signature(order), ONE, _taker(chain).address


_FILL_REFUSALS: dict[str, tuple[_FillCase, str]] = {
    "expired order": (lambda c: _signed(c, _order(c, valid_until=_now(c) - 1)), "order expired"),
    "zero quantity": (lambda c: _signed(c, _order(c), quantity=0), "fill quantity must be positive"),
    "over-fill": (lambda c: _signed(c, _order(c, quantity=ONE), quantity=ONE + 1), "fill exceeds what is left"),
    "self-trade": (lambda c: _signed(c, _order(c), taker=_maker(c).address), "self-trade"),
    "zero price": (lambda c: _signed(c, _order(c, limit_price=0)), "price must be positive"),
    "zero underlying": (lambda c: _signed(c, _order(c, underlying="0x" + "00" * 20)), "underlying is the zero address"),
    "perpetual with a strike": (lambda c: _signed(c, _order(c, strike=ONE)), "a perpetual has no strike"),
    "option already expired": (
        lambda c: _signed(c, _order(c, kind=InstrumentKind.OPTION, strike=ONE, expiry=_now(c) - 1)),
        "option already expired",
    ),
    "option with strike 0": (
        lambda c: _signed(c, _order(c, kind=InstrumentKind.OPTION, strike=0, expiry=_now(c) + 86_400)),
        "option strike must be positive",
    ),
    "signed by someone else": (
        lambda c: _resigned(c, lambda o: sign_order(_domain(c), o, c.accounts[4].private_key)),
        "signature is not the maker's",
    ),
    "signed for another market": (
        lambda c: _resigned(c, lambda o: sign_order(MarketDomain(c.anvil.chain_id, c.deployment.vault), o, _maker(c).private_key)),
        "signature is not the maker's",
    ),
    "signed with another price": (
        lambda c: _resigned(c, lambda o: sign_order(_domain(c), replace(o, limit_price=1), _maker(c).private_key)),
        "signature is not the maker's",
    ),
    "malleable high s": (
        lambda c: _resigned(c, lambda o: _high_s(sign_order(_domain(c), o, _maker(c).private_key))),
        "malleable signature",
    ),
    "v not 27 or 28": (
        lambda c: _resigned(c, lambda o: (lambda s: s[:64] + bytes([s[64] - 27]))(sign_order(_domain(c), o, _maker(c).private_key))),
        "v must be 27 or 28",
    ),
    "truncated signature": (
        lambda c: _resigned(c, lambda o: sign_order(_domain(c), o, _maker(c).private_key)[:64]),
        "signature must be 65 bytes",
    ),
}


@pytest.mark.parametrize("case", list(_FILL_REFUSALS))
def test_a_bad_fill_is_refused_with_a_clear_reason_and_changes_nothing(chain: DevChain, case: str) -> None:
    build, reason = _FILL_REFUSALS[case]
    order, signature, quantity, taker = build(chain)
    _refused(chain, _fill_call(chain, order, signature, quantity), taker, reason, _order_state(chain, order))


def test_an_order_is_fillable_in_the_block_at_valid_until(chain: DevChain) -> None:
    order = _order(chain, valid_until=_now(chain) + 50)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    chain.anvil.rpc("evm_setNextBlockTimestamp", [order.valid_until])
    call = _fill_call(chain, order, signature, ONE)
    receipt = chain.web3.eth.wait_for_transaction_receipt(call.transact({"from": _taker(chain).address, "gas": 500_000}))
    assert receipt["status"] == 1
    assert chain.web3.eth.get_block(receipt["blockNumber"])["timestamp"] == order.valid_until
    chain.anvil.rpc("evm_mine", [order.valid_until + 1])
    _refused(chain, _fill_call(chain, order, signature, ONE), _taker(chain).address, "order expired", _order_state(chain, order))


# ---- close-outs -------------------------------------------------------------------------------


def _close_out(chain: DevChain, start: int, deadline: int, **changes: Any) -> CloseOut:
    values: dict[str, Any] = dict(
        close_out_id=os.urandom(32), account=chain.accounts[5].address, underlying=chain.token("WETH"),
        kind=InstrumentKind.PERPETUAL, strike=0, expiry=0, is_call=False, account_size=-2 * ONE,
        mark=3_000 * ONE + 7, max_discount_bps=500, start=start, deadline=deadline,
    )  # fmt: skip
    values.update(changes)
    return CloseOut(**values)


def _node_signatures(chain: DevChain, close_out: CloseOut, signers: list[DevAccount]) -> list[bytes]:
    domain = _domain(chain)
    return quorum_signatures(domain, close_out, [sign_close_out(domain, close_out, key.private_key) for key in signers])


def _liquidator(chain: DevChain) -> DevAccount:
    return chain.accounts[9]


def _no_limit(close_out: CloseOut) -> int:
    return 2**256 - 1 if close_out.account_size < 0 else 0


def _close_out_call(chain: DevChain, close_out: CloseOut, signatures: list[bytes], limit: int | None = None) -> ContractFunction:
    return chain.market.functions.closeOut(close_out.as_abi(), signatures, _no_limit(close_out) if limit is None else limit)


def _close_out_used(chain: DevChain, close_out: CloseOut) -> Callable[[], bool]:
    return lambda: bool(chain.market.functions.closeOutUsed(close_out.close_out_id).call())


def _take_at(chain: DevChain, close_out: CloseOut, timestamp: int, signatures: list[bytes]) -> dict[str, Any]:
    chain.anvil.rpc("evm_setNextBlockTimestamp", [timestamp])
    call = _close_out_call(chain, close_out, signatures)
    receipt = chain.web3.eth.wait_for_transaction_receipt(call.transact({"from": _liquidator(chain).address, "gas": 1_000_000}))
    assert receipt["status"] == 1
    assert chain.web3.eth.get_block(receipt["blockNumber"])["timestamp"] == timestamp
    (trade,) = _trades(chain, dict(receipt))
    return trade


def test_auction_price_in_python_equals_the_contract_at_many_times(chain: DevChain) -> None:
    start = _now(chain)
    for account_size in (-3 * ONE, 3 * ONE):
        for mark, bps, span in ((3_000 * ONE + 7, 500, 600), (12_345_678_901, 9_999, 7), (1, 1, 3), (2**128 - 1, 250, 86_400)):
            close_out = _close_out(chain, start, start + span, account_size=account_size, mark=mark, max_discount_bps=bps)
            for timestamp in sorted({start, start + 1, start + span // 3, start + span // 2, start + span - 1, start + span}):
                contract_price = chain.market.functions.auctionPrice(close_out.as_abi(), timestamp).call()
                assert contract_price == auction_price(close_out, timestamp), (account_size, mark, bps, span, timestamp)


@pytest.mark.parametrize("account_size", [-2 * ONE, 2 * ONE], ids=["account sells", "account buys"])
@pytest.mark.parametrize("moment", ["start", "middle", "deadline"])
def test_a_quorum_signed_close_out_trades_at_the_auction_price_of_its_block(chain: DevChain, account_size: int, moment: str) -> None:
    start = _now(chain) + 100
    close_out = _close_out(chain, start, start + 600, account_size=account_size)
    at = {"start": start, "middle": start + 211, "deadline": start + 600}[moment]
    trade = _take_at(chain, close_out, at, _node_signatures(chain, close_out, list(chain.node_set[:3])))
    price = auction_price(close_out, at)
    if moment == "start":
        assert price == close_out.mark
    elif account_size < 0:
        assert price < close_out.mark
    else:
        assert price > close_out.mark
    assert trade == {
        "tradeId": trade_id(close_out_digest(_domain(chain), close_out), 0), "maker": close_out.account,
        "taker": _liquidator(chain).address, "underlying": close_out.underlying, "kind": 0, "strike": 0, "expiry": 0,
        "isCall": False, "makerSize": account_size, "price": price, "closeOutId": close_out.close_out_id,
    }  # fmt: skip
    assert _close_out_used(chain, close_out)()


def test_a_close_out_signed_by_the_whole_node_set_is_accepted(chain: DevChain) -> None:
    close_out = _close_out(chain, _now(chain) - 10, _now(chain) + 600)
    receipt = _transact(chain, _close_out_call(chain, close_out, _node_signatures(chain, close_out, list(chain.node_set))), _liquidator(chain).address)
    (trade,) = _trades(chain, receipt)
    assert trade["closeOutId"] == close_out.close_out_id and trade["maker"] == close_out.account


def test_an_option_close_out_carries_the_instrument(chain: DevChain) -> None:
    expiry = _now(chain) + 86_400
    close_out = _close_out(chain, _now(chain) - 10, _now(chain) + 600, kind=InstrumentKind.OPTION, strike=2_800 * ONE, expiry=expiry, is_call=True, mark=250 * ONE)
    receipt = _transact(chain, _close_out_call(chain, close_out, _node_signatures(chain, close_out, list(chain.node_set[:3]))), _liquidator(chain).address)
    (trade,) = _trades(chain, receipt)
    assert (trade["kind"], trade["strike"], trade["expiry"], trade["isCall"]) == (1, 2_800 * ONE, expiry, True)


_CloseOutCase = Callable[[DevChain], tuple[CloseOut, list[bytes], int | None, str]]


def _quorum(chain: DevChain, close_out: CloseOut, limit: int | None = None, sender: str | None = None) -> tuple[CloseOut, list[bytes], int | None, str]:
    return close_out, _node_signatures(chain, close_out, list(chain.node_set[:3])), limit, sender or _liquidator(chain).address


def _open(chain: DevChain, **changes: Any) -> CloseOut:
    """A close-out whose auction runs now."""
    return _close_out(chain, _now(chain) - 100, _now(chain) + 500, **changes)


def _signed_by(chain: DevChain, close_out: CloseOut, keys: list[DevAccount]) -> tuple[CloseOut, list[bytes], int | None, str]:
    return close_out, _node_signatures(chain, close_out, keys), None, _liquidator(chain).address


def _foreign_domain_signatures(chain: DevChain, close_out: CloseOut) -> tuple[CloseOut, list[bytes], int | None, str]:
    # The node set's signatures over the same close-out under another verifying contract: worthless here.
    other = MarketDomain(chain.anvil.chain_id, chain.deployment.vault)
    signatures = [sign_close_out(other, close_out, key.private_key) for key in chain.node_set[:3]]
    return close_out, quorum_signatures(other, close_out, signatures), None, _liquidator(chain).address


_CLOSE_OUT_REFUSALS: dict[str, tuple[_CloseOutCase, str]] = {
    "after the deadline": (lambda c: _quorum(c, _close_out(c, _now(c) - 600, _now(c) - 1)), "close-out expired"),
    "before the start": (lambda c: _quorum(c, _close_out(c, _now(c) + 1_000, _now(c) + 2_000)), "auction not started"),
    "zero id": (lambda c: _quorum(c, _open(c, close_out_id=bytes(32))), "id must be non-zero"),
    "zero size": (lambda c: _quorum(c, _open(c, account_size=0)), "size must be non-zero"),
    "self-trade": (lambda c: _quorum(c, _open(c), sender=c.accounts[5].address), "self-trade"),
    "option already expired": (
        lambda c: _quorum(c, _open(c, kind=InstrumentKind.OPTION, strike=ONE, expiry=_now(c) - 1)),
        "option already expired",
    ),
    "option with strike 0": (
        lambda c: _quorum(c, _open(c, kind=InstrumentKind.OPTION, strike=0, expiry=_now(c) + 86_400)),
        "option strike must be positive",
    ),
    "zero mark": (lambda c: _quorum(c, _open(c, mark=0)), "mark must be positive"),
    "discount of 100%": (lambda c: _quorum(c, _open(c, max_discount_bps=10_000)), "below 100%"),
    "minority of the node set": (lambda c: _signed_by(c, _open(c), list(c.node_set[:2])), "fewer signatures than the threshold"),
    "signers outside the node set": (lambda c: _signed_by(c, _open(c), list(node_keys(7)[4:7])), "not in the node set"),
    "signed for another market": (lambda c: _foreign_domain_signatures(c, _open(c)), "not in the node set|ascending order"),
    "sale above the taker's limit": (lambda c: _quorum(c, _open(c), limit=1), "above the taker's limit"),
    "purchase below the taker's limit": (
        lambda c: _quorum(c, _open(c, account_size=ONE), limit=2 * _open(c).mark),
        "below the taker's limit",
    ),
}


@pytest.mark.parametrize("case", list(_CLOSE_OUT_REFUSALS))
def test_a_bad_close_out_is_refused_with_a_clear_reason_and_changes_nothing(chain: DevChain, case: str) -> None:
    build, reason = _CLOSE_OUT_REFUSALS[case]
    close_out, signatures, limit, sender = build(chain)
    _refused(chain, _close_out_call(chain, close_out, signatures, limit), sender, reason, _close_out_used(chain, close_out))


def test_a_close_out_id_works_once_whatever_its_other_fields(chain: DevChain) -> None:
    first = _open(chain)
    signatures = _node_signatures(chain, first, list(chain.node_set[:3]))
    _transact(chain, _close_out_call(chain, first, signatures), _liquidator(chain).address)
    used = _close_out_used(chain, first)
    _refused(chain, _close_out_call(chain, first, signatures), _liquidator(chain).address, "id already used", used)
    # A fresh quorum over the same id with other fields is another digest, but the id is spent.
    again = replace(first, account_size=-ONE, deadline=first.deadline + 600)
    again_signatures = _node_signatures(chain, again, list(chain.node_set[1:]))
    _refused(chain, _close_out_call(chain, again, again_signatures), chain.accounts[8].address, "id already used", used)


def test_signatures_over_one_close_out_do_not_cover_a_changed_one(chain: DevChain) -> None:
    signed = _open(chain)
    signatures = _node_signatures(chain, signed, list(chain.node_set[:3]))
    for changed in (replace(signed, account_size=-3 * ONE), replace(signed, mark=signed.mark + 1)):
        _refused(chain, _close_out_call(chain, changed, signatures), _liquidator(chain).address, "not in the node set|ascending order", _close_out_used(chain, changed))


def test_the_vault_quorum_check_is_callable_for_any_digest(chain: DevChain) -> None:
    digest = b"\x42" * 32
    keys = sorted(chain.node_set[:3], key=lambda k: int(k.address, 16))
    signatures = [NodeKey(k.private_key).sign_digest(digest) for k in keys]
    chain.vault.functions.requireQuorum(digest, signatures).call()
    with pytest.raises(ContractLogicError, match="fewer signatures than the threshold"):
        chain.vault.functions.requireQuorum(digest, signatures[:2]).call()


# ---- the adapter sees every trade -----------------------------------------------------------------


def test_the_evm_adapter_observes_fills_and_close_outs_as_traded(chain: DevChain) -> None:
    order = _order(chain, is_buy=False, quantity=3 * ONE)
    signature = sign_order(_domain(chain), order, _maker(chain).private_key)
    fill_receipt = _transact(chain, _fill_call(chain, order, signature, 2 * ONE), _taker(chain).address)
    close_out = _open(chain)
    close_receipt = _transact(chain, _close_out_call(chain, close_out, _node_signatures(chain, close_out, list(chain.node_set[:3]))), _liquidator(chain).address)
    emitted = _trades(chain, fill_receipt) + _trades(chain, close_receipt)

    adapter = EvmChainAdapter(chain.adapter_config())

    async def stream() -> list[Traded]:
        await adapter.connect()
        try:
            cursor = Cursor.before(chain.anvil.chain_id, int(fill_receipt["blockNumber"]))
            batches = await collect_batches(adapter, cursor, reached(int(close_receipt["blockNumber"])))
        finally:
            await adapter.close()
        return [o for batch in batches for o in batch.observations if isinstance(o, Traded)]

    observed = run(stream())
    assert [
        {
            "tradeId": o.trade_id, "maker": o.maker, "taker": o.taker, "underlying": o.underlying, "kind": o.kind.value,
            "strike": o.strike, "expiry": o.expiry, "isCall": o.is_call, "makerSize": o.maker_size, "price": o.price,
            "closeOutId": o.close_out_id,
        }  # fmt: skip
        for o in observed
    ] == emitted
    assert [o.is_close_out for o in observed] == [False, True]
    assert observed[0].maker_size == -2 * ONE and observed[0].contract == chain.deployment.market
