"""EIP-712 messages the `Market` trades on: a maker's Order and the node set's CloseOut.

- An `Order` is signed by its maker alone; any taker fills it (wholly or in parts) with
  `Market.fill(order, signature, quantity)` at the order's limit price until `valid_until`.
  Its EIP-712 digest, `order_hash`, is also the market's key for what is filled or cancelled.
- A `CloseOut` is signed by a quorum of the vault's node set (checked by the market through
  `CollateralVault.requireQuorum`, signatures ordered as `quorum_signatures` arranges them);
  any backstop liquidator takes it with `Market.closeOut(closeOut, signatures, priceLimit)`
  between `start` and `deadline`, once per `close_out_id`, at `auction_price`.

Both are signed under the market's own domain (name "CrossclearMarket", version "1", chain id,
market address), so no signature for a vault, another market or another chain counts here.
Each trade emits `Traded` with `trade_id(digest, fill_index)`.

These definitions mirror `devnet/contracts/Market.sol`; tests compare digests, type hashes
and auction prices with the contract's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.interface import Address, InstrumentKind

DOMAIN_NAME = "CrossclearMarket"
DOMAIN_VERSION = "1"

#: Basis points in 100%.
BPS = 10_000
#: Exclusive bound on a close-out's mark (the contract's MARK_LIMIT).
MARK_LIMIT = 1 << 128
_UINT64_MAX = 2**64 - 1
_INT256_MAX = 2**255 - 1

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_INSTRUMENT_FIELDS = [
    {"name": "underlying", "type": "address"},
    {"name": "kind", "type": "uint8"},
    {"name": "strike", "type": "uint256"},
    {"name": "expiry", "type": "uint64"},
    {"name": "isCall", "type": "bool"},
]
ORDER_FIELDS: list[dict[str, str]] = [
    {"name": "maker", "type": "address"},
    *_INSTRUMENT_FIELDS,
    {"name": "isBuy", "type": "bool"},
    {"name": "quantity", "type": "uint256"},
    {"name": "limitPrice", "type": "uint256"},
    {"name": "validUntil", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
]
CLOSE_OUT_FIELDS: list[dict[str, str]] = [
    {"name": "closeOutId", "type": "bytes32"},
    {"name": "account", "type": "address"},
    *_INSTRUMENT_FIELDS,
    {"name": "accountSize", "type": "int256"},
    {"name": "mark", "type": "uint256"},
    {"name": "maxDiscountBps", "type": "uint16"},
    {"name": "start", "type": "uint64"},
    {"name": "deadline", "type": "uint64"},
]


@dataclass(frozen=True)
class MarketDomain:
    """The EIP-712 domain of one market: a signature for one market is useless at any other."""

    chain_id: int
    """Chain the market lives on."""
    market: Address
    """The market's address (the verifying contract)."""


@dataclass(frozen=True)
class Order:
    """A maker's signed offer to buy or sell up to `quantity` of one instrument at `limit_price`."""

    maker: Address
    """Who signs the order and trades its side."""
    underlying: Address
    """Token the instrument is on."""
    kind: InstrumentKind
    """Perpetual or option."""
    strike: int
    """Option strike, 18 decimals; 0 for perpetuals."""
    expiry: int
    """Option expiry, Unix seconds; 0 for perpetuals."""
    is_call: bool
    """True for a call; False for a put and for perpetuals."""
    is_buy: bool
    """True when the maker buys (its size grows), False when it sells."""
    quantity: int
    """Most the order fills in total, 18 decimals (positive)."""
    limit_price: int
    """Price (perpetual) or premium (option) per unit every fill trades at, 18 decimals."""
    valid_until: int
    """Unix time after which the market refuses fills (judged by the block timestamp)."""
    nonce: int
    """Any number: makes otherwise equal orders distinct."""

    def as_abi(self) -> tuple[Any, ...]:
        """The order as the `Market.Order` struct argument of a contract call."""
        return (
            to_checksum_address(self.maker), to_checksum_address(self.underlying), self.kind.value, self.strike,
            self.expiry, self.is_call, self.is_buy, self.quantity, self.limit_price, self.valid_until, self.nonce,
        )  # fmt: skip

    def maker_size(self, quantity: int) -> int:
        """The signed size the maker trades when `quantity` is filled (the taker trades its negative)."""
        return quantity if self.is_buy else -quantity


@dataclass(frozen=True)
class CloseOut:
    """The node set's order to close out part of a defaulting account's position by Dutch auction."""

    close_out_id: bytes
    """32-byte id, non-zero; the market accepts each once."""
    account: Address
    """The defaulting account (the `Traded` maker)."""
    underlying: Address
    """Token the instrument is on."""
    kind: InstrumentKind
    """Perpetual or option."""
    strike: int
    """Option strike, 18 decimals; 0 for perpetuals."""
    expiry: int
    """Option expiry, Unix seconds; 0 for perpetuals."""
    is_call: bool
    """True for a call; False for a put and for perpetuals."""
    account_size: int
    """Signed size the account trades, 18 decimals: negative sells (closes a long)."""
    mark: int
    """Certified mark the auction starts from, 18 decimals (0 < mark < 2**128)."""
    max_discount_bps: int
    """Discount from the mark reached at `deadline`, basis points (below 10,000)."""
    start: int
    """Unix time the auction opens at discount 0."""
    deadline: int
    """Unix time the auction reaches `max_discount_bps` and after which the market refuses it."""

    def as_abi(self) -> tuple[Any, ...]:
        """The close-out as the `Market.CloseOut` struct argument of a contract call."""
        return (
            _bytes32("closeOutId", self.close_out_id), to_checksum_address(self.account),
            to_checksum_address(self.underlying), self.kind.value, self.strike, self.expiry, self.is_call,
            self.account_size, self.mark, self.max_discount_bps, self.start, self.deadline,
        )  # fmt: skip


# ---- orders ---------------------------------------------------------------------------------


def typed_data(domain: MarketDomain, message: Order | CloseOut) -> dict[str, Any]:
    """The full EIP-712 message (eth_signTypedData_v4 shape) for an order or a close-out."""
    if isinstance(message, Order):
        primary_type, fields, values = "Order", ORDER_FIELDS, message.as_abi()
    else:
        primary_type, fields, values = "CloseOut", CLOSE_OUT_FIELDS, message.as_abi()
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, primary_type: fields},
        "primaryType": primary_type,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.market),
        },
        "message": {field["name"]: value for field, value in zip(fields, values)},
    }


def type_string(primary_type: str) -> str:
    """EIP-712 type string of "Order" or "CloseOut" (keccak256 of it is the contract's type hash)."""
    fields = {"Order": ORDER_FIELDS, "CloseOut": CLOSE_OUT_FIELDS}[primary_type]
    members = ",".join(f"{field['type']} {field['name']}" for field in fields)
    return f"{primary_type}({members})"


def _digest(domain: MarketDomain, message: Order | CloseOut) -> bytes:
    signable = encode_typed_data(full_message=typed_data(domain, message))
    # keccak256("\x19\x01" || domainSeparator || structHash), as the contract computes it.
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def order_hash(domain: MarketDomain, order: Order) -> bytes:
    """The order's 32-byte EIP-712 digest: what the maker signs, and the market's key for the
    order's `filled`, `fillCount` and `cancelled` (the contract's `orderHash`)."""
    return _digest(domain, order)


def sign_order(domain: MarketDomain, order: Order, private_key: bytes) -> bytes:
    """The maker's 65-byte signature (r || s || v, v in {27, 28}, low s) over the order."""
    return bytes(Account.sign_typed_data(private_key, full_message=typed_data(domain, order)).signature)


def recover_order_signer(domain: MarketDomain, order: Order, signature: bytes) -> Address:
    """Who signed the order, under the market's rules (65 bytes, v in {27, 28}, low s): a
    signature the market would refuse raises ValueError here too."""
    return _recover(order_hash(domain, order), signature)


# ---- close-outs -----------------------------------------------------------------------------


def close_out_digest(domain: MarketDomain, close_out: CloseOut) -> bytes:
    """The close-out's 32-byte EIP-712 digest: what each node signs (the contract's `closeOutDigest`)."""
    return _digest(domain, close_out)


def sign_close_out(domain: MarketDomain, close_out: CloseOut, private_key: bytes) -> bytes:
    """One node's 65-byte signature (r || s || v, v in {27, 28}, low s) over the close-out."""
    return bytes(Account.sign_typed_data(private_key, full_message=typed_data(domain, close_out)).signature)


def recover_close_out_signer(domain: MarketDomain, close_out: CloseOut, signature: bytes) -> Address:
    """Who signed the close-out, under the vault's rules; ValueError for a signature it refuses."""
    return _recover(close_out_digest(domain, close_out), signature)


def quorum_signatures(domain: MarketDomain, close_out: CloseOut, signatures: Iterable[bytes]) -> list[bytes]:
    """Signatures arranged as the vault's quorum check wants them: one per signer, by ascending
    signer address (node-set membership and the threshold are the vault's to judge)."""
    by_signer: dict[int, bytes] = {}
    for signature in signatures:
        by_signer.setdefault(int(recover_close_out_signer(domain, close_out, signature), 16), signature)
    return [by_signer[signer] for signer in sorted(by_signer)]


def auction_price(close_out: CloseOut, timestamp: int) -> int:
    """The close-out price at chain time `timestamp`, exactly as `Market.auctionPrice` computes it.

    The discount grows linearly from 0 at `start` to `max_discount_bps` at `deadline`, without
    rounding it to whole basis points: with span = 10,000 * (deadline - start) and
    d = max_discount_bps * (timestamp - start), an account that sells (negative size) gets
    ceil(mark * (span - d) / span) and one that buys pays floor(mark * (span + d) / span).
    Rounding favours the defaulting account: it never adds to a loss the insurance fund covers.
    Raises ValueError where the contract reverts (bad mark, discount or window, time outside it).
    """
    c = close_out
    if not 0 < c.mark < MARK_LIMIT:
        raise ValueError(f"mark must be positive and below 2**128, got {c.mark}")
    if not 0 <= c.max_discount_bps < BPS:
        raise ValueError(f"max discount must be below 100% (10000 bps), got {c.max_discount_bps}")
    if not 0 <= c.start < c.deadline <= _UINT64_MAX:
        raise ValueError(f"close-out window is empty or out of range: start {c.start}, deadline {c.deadline}")
    if not c.start <= timestamp <= c.deadline:
        raise ValueError(f"time {timestamp} outside the auction window [{c.start}, {c.deadline}]")
    span = BPS * (c.deadline - c.start)
    discount = c.max_discount_bps * (timestamp - c.start)
    if c.account_size < 0:
        return -(-c.mark * (span - discount) // span)
    return c.mark * (span + discount) // span


# ---- trades ---------------------------------------------------------------------------------


def trade_id(digest: bytes, fill_index: int) -> bytes:
    """The `Traded` id: keccak256(abi.encode(digest, fill_index)), with `digest` the order hash and
    `fill_index` the order's fills before this one (the market's `fillCount`), or the close-out
    digest and 0."""
    if len(digest) != 32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    return bytes(keccak(abi_encode(["bytes32", "uint256"], [digest, fill_index])))


def check_order(order: Order) -> None:
    """Raise ValueError for an order no market could fill whatever the time (bad size, price or
    instrument), so a maker finds out before signing."""
    if not 0 < order.quantity <= _INT256_MAX:
        raise ValueError(f"order quantity must be positive and fit int256, got {order.quantity}")
    if order.limit_price <= 0:
        raise ValueError(f"limit price must be positive, got {order.limit_price}")
    if not 0 <= order.valid_until <= _UINT64_MAX:
        raise ValueError(f"valid_until must be a uint64, got {order.valid_until}")
    _check_instrument(order.kind, order.strike, order.expiry, order.is_call)


def _check_instrument(kind: InstrumentKind, strike: int, expiry: int, is_call: bool) -> None:
    if kind is InstrumentKind.PERPETUAL and (strike, expiry, is_call) != (0, 0, False):
        raise ValueError("a perpetual has no strike, expiry or call flag (0, 0, False)")
    if kind is InstrumentKind.OPTION and strike <= 0:
        raise ValueError(f"option strike must be positive, got {strike}")


def _recover(digest: bytes, signature: bytes) -> Address:
    # Imported here: the attestation package pulls in libp2p, which order building does not need.
    from crossclear.attest import recover_signer

    return str(to_checksum_address(recover_signer(digest, signature)))


def _bytes32(name: str, value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(value)}")
    return value
