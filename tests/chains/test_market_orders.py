"""EIP-712 market messages without a chain: signing round trips, strict recovery, auction arithmetic."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from crossclear.chains.interface import InstrumentKind
from crossclear.chains.market_orders import (
    CloseOut,
    MarketDomain,
    Order,
    auction_price,
    check_order,
    close_out_digest,
    order_hash,
    quorum_signatures,
    recover_close_out_signer,
    recover_order_signer,
    sign_close_out,
    sign_order,
    trade_id,
    type_string,
)
from crossclear.chains.vault_orders import sorted_signers
from crossclear.devnet.accounts import funded_accounts, node_keys

DOMAIN = MarketDomain(chain_id=31001, market="0x4ed7c70F96B99c776995fB64377f0d4aB3B0e1C1")
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
MAKER = funded_accounts(2)[1]
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _order(**changes: object) -> Order:
    values: dict[str, object] = dict(
        maker=MAKER.address, underlying=TOKEN, kind=InstrumentKind.PERPETUAL, strike=0, expiry=0, is_call=False,
        is_buy=True, quantity=5 * 10**18, limit_price=3_000 * 10**18, valid_until=1_800_000_000, nonce=1,
    )  # fmt: skip
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def _close_out(**changes: object) -> CloseOut:
    values: dict[str, object] = dict(
        close_out_id=b"\x05" * 32, account=MAKER.address, underlying=TOKEN, kind=InstrumentKind.PERPETUAL, strike=0,
        expiry=0, is_call=False, account_size=-2 * 10**18, mark=3_000 * 10**18, max_discount_bps=500,
        start=1_700_000_000, deadline=1_700_000_600,
    )  # fmt: skip
    values.update(changes)
    return CloseOut(**values)  # type: ignore[arg-type]


def test_type_strings_are_the_contracts() -> None:
    assert type_string("Order") == (
        "Order(address maker,address underlying,uint8 kind,uint256 strike,uint64 expiry,bool isCall,bool isBuy,"
        "uint256 quantity,uint256 limitPrice,uint64 validUntil,uint256 nonce)"
    )
    assert type_string("CloseOut") == (
        "CloseOut(bytes32 closeOutId,address account,address underlying,uint8 kind,uint256 strike,uint64 expiry,"
        "bool isCall,int256 accountSize,uint256 mark,uint16 maxDiscountBps,uint64 start,uint64 deadline)"
    )


def test_an_order_signature_recovers_to_its_maker_and_covers_every_field() -> None:
    order = _order()
    signature = sign_order(DOMAIN, order, MAKER.private_key)
    assert recover_order_signer(DOMAIN, order, signature) == MAKER.address
    for changed in (_order(limit_price=2_999 * 10**18), _order(quantity=6 * 10**18), _order(is_buy=False), _order(nonce=2)):
        assert order_hash(DOMAIN, changed) != order_hash(DOMAIN, order)
        assert recover_order_signer(DOMAIN, changed, signature) != MAKER.address
    elsewhere = MarketDomain(chain_id=31002, market=DOMAIN.market)
    assert order_hash(elsewhere, order) != order_hash(DOMAIN, order)


def test_recovery_refuses_signatures_the_market_refuses() -> None:
    order = _order()
    good = sign_order(DOMAIN, order, MAKER.private_key)
    high_s = good[:32] + (SECP256K1_ORDER - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([55 - good[64]])
    for refused in (good[:64] + bytes([good[64] - 27]), high_s, good[:64]):
        with pytest.raises(ValueError):
            recover_order_signer(DOMAIN, order, refused)


def test_close_out_signatures_sort_by_signer_and_drop_duplicates() -> None:
    close_out = _close_out()
    keys = node_keys(4)
    signatures = [sign_close_out(DOMAIN, close_out, key.private_key) for key in keys]
    for key, signature in zip(keys, signatures):
        assert recover_close_out_signer(DOMAIN, close_out, signature) == key.address
    arranged = quorum_signatures(DOMAIN, close_out, signatures + signatures[:2])
    assert [recover_close_out_signer(DOMAIN, close_out, s) for s in arranged] == list(sorted_signers(k.address for k in keys))
    assert close_out_digest(DOMAIN, close_out) != close_out_digest(DOMAIN, _close_out(deadline=1_700_000_601))


def test_close_out_id_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="closeOutId must be 32 bytes"):
        close_out_digest(DOMAIN, _close_out(close_out_id=b"short"))


def test_trade_id_is_keccak_of_digest_and_fill_index() -> None:
    digest = order_hash(DOMAIN, _order())
    assert trade_id(digest, 0) == keccak(digest + bytes(32))
    assert trade_id(digest, 1) == keccak(digest + (1).to_bytes(32, "big"))
    with pytest.raises(ValueError, match="32 bytes"):
        trade_id(b"\x00", 0)


def test_maker_size_is_positive_for_a_buy() -> None:
    assert _order().maker_size(3) == 3
    assert _order(is_buy=False).maker_size(3) == -3


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (_order(quantity=0), "quantity must be positive"),
        (_order(quantity=2**255), "quantity must be positive"),
        (_order(limit_price=0), "limit price must be positive"),
        (_order(strike=1), "a perpetual has no strike"),
        (_order(kind=InstrumentKind.OPTION, strike=0, expiry=1_800_000_000), "strike must be positive"),
    ],
)
def test_check_order_names_what_no_market_fills(order: Order, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_order(order)


# ---- the auction ------------------------------------------------------------------------------


def test_a_sale_falls_from_the_mark_to_the_full_discount() -> None:
    sale = _close_out(mark=3_000 * 10**18, max_discount_bps=500)
    assert auction_price(sale, sale.start) == 3_000 * 10**18
    assert auction_price(sale, sale.start + 300) == 2_925 * 10**18  # half of 5%
    assert auction_price(sale, sale.deadline) == 2_850 * 10**18


def test_a_purchase_rises_from_the_mark_to_the_full_premium() -> None:
    purchase = _close_out(account_size=2 * 10**18, mark=3_000 * 10**18, max_discount_bps=500)
    assert auction_price(purchase, purchase.start) == 3_000 * 10**18
    assert auction_price(purchase, purchase.start + 300) == 3_075 * 10**18
    assert auction_price(purchase, purchase.deadline) == 3_150 * 10**18


def test_rounding_favours_the_account() -> None:
    # mark 7 wei, 1 bps over 3 s: one second in, the exact price is 7 * (30000 -/+ 1) / 30000.
    sale = _close_out(mark=7, max_discount_bps=1, start=0, deadline=3)
    purchase = _close_out(mark=7, max_discount_bps=1, start=0, deadline=3, account_size=1)
    assert auction_price(sale, 1) == 7  # 6.99977 rounded up: the account sells for more
    assert auction_price(purchase, 1) == 7  # 7.00023 rounded down: the account pays less


@pytest.mark.parametrize(
    ("close_out", "timestamp", "reason"),
    [
        (_close_out(mark=0), 1_700_000_000, "mark must be positive"),
        (_close_out(mark=2**128), 1_700_000_000, "below 2\\*\\*128"),
        (_close_out(max_discount_bps=10_000), 1_700_000_000, "below 100%"),
        (_close_out(deadline=1_700_000_000), 1_700_000_000, "window is empty"),
        (_close_out(), 1_699_999_999, "outside the auction window"),
        (_close_out(), 1_700_000_601, "outside the auction window"),
    ],
)
def test_auction_price_refuses_what_the_contract_refuses(close_out: CloseOut, timestamp: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        auction_price(close_out, timestamp)
