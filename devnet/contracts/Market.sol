// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// The part of `CollateralVault` the market uses: its node set's quorum check.
interface IQuorumVault {
    function requireQuorum(bytes32 digest, bytes[] calldata signatures) external view;
}

/// @title Devnet market for perpetuals and European options: matched trades between two parties.
/// @notice Every trade has two parties who both agreed to it, and emits one `Traded` event naming
/// both (every long has a short):
/// - `fill`: a maker's EIP-712-signed `Order`, filled (wholly or in part) by `msg.sender`, the
///   taker, at the maker's limit price;
/// - `closeOut`: a defaulting account's position closed out by `msg.sender`, a backstop
///   liquidator, under a `CloseOut` signed by a quorum of the vault's node set, at a Dutch-auction
///   price that falls (for a sale) or rises (for a purchase) linearly by chain time from the
///   certified mark.
/// The market moves no funds (margin and settlement are the clearinghouse's job) and checks no
/// price band around the mark (it does not know the certified mark; the nodes judge that).
/// Sizes, prices and strikes have 18 decimals; sizes are signed (positive buys).
contract Market {
    enum Kind {
        Perpetual,
        Option
    }

    /// A maker's signed offer to buy (`isBuy`) or sell up to `quantity` of one instrument at
    /// `limitPrice` until `validUntil` (unix time, judged by the block timestamp). Perpetuals have
    /// strike 0, expiry 0 and isCall false. `nonce` lets a maker sign equal orders that stay distinct.
    struct Order {
        address maker;
        address underlying;
        Kind kind;
        uint256 strike;
        uint64 expiry;
        bool isCall;
        bool isBuy;
        uint256 quantity;
        uint256 limitPrice;
        uint64 validUntil;
        uint256 nonce;
    }

    /// The node set's order to close out `accountSize` (signed: negative sells a long) of a
    /// defaulting `account`'s position, taken by any backstop liquidator between `start` and
    /// `deadline` at `auctionPrice`. Each `closeOutId` works once.
    struct CloseOut {
        bytes32 closeOutId;
        address account;
        address underlying;
        Kind kind;
        uint256 strike;
        uint64 expiry;
        bool isCall;
        int256 accountSize;
        uint256 mark;
        uint16 maxDiscountBps;
        uint64 start;
        uint64 deadline;
    }

    uint256 public constant BPS = 10_000;
    /// Exclusive bound on a close-out's mark, so the auction arithmetic cannot overflow.
    uint256 public constant MARK_LIMIT = 1 << 128;
    /// Upper half of secp256k1's order: signatures with a larger s are malleable copies.
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant ORDER_TYPEHASH = keccak256(
        "Order(address maker,address underlying,uint8 kind,uint256 strike,uint64 expiry,bool isCall,bool isBuy,uint256 quantity,uint256 limitPrice,uint64 validUntil,uint256 nonce)"
    );
    bytes32 public constant CLOSE_OUT_TYPEHASH = keccak256(
        "CloseOut(bytes32 closeOutId,address account,address underlying,uint8 kind,uint256 strike,uint64 expiry,bool isCall,int256 accountSize,uint256 mark,uint16 maxDiscountBps,uint64 start,uint64 deadline)"
    );
    string public constant NAME = "CrossclearMarket";
    string public constant VERSION = "1";

    /// The vault whose node set signs close-outs.
    IQuorumVault public immutable vault;

    /// Quantity filled so far, by order hash (the order's EIP-712 digest).
    mapping(bytes32 => uint256) public filled;
    /// Number of fills so far, by order hash: the next fill's index.
    mapping(bytes32 => uint256) public fillCount;
    /// Orders their maker cancelled, by order hash.
    mapping(bytes32 => bool) public cancelled;
    /// Close-out ids already taken.
    mapping(bytes32 => bool) public closeOutUsed;

    /// One trade between two parties. `tradeId = keccak256(abi.encode(digest, fillIndex))` with
    /// `digest` the order hash (fills; `fillIndex` counts the order's fills from 0) or the
    /// close-out's digest (close-outs; `fillIndex` 0): unique per trade. The maker (the closed-out
    /// account in a close-out) trades `makerSize`, the taker `-makerSize`, at `price` per unit
    /// (an option's premium). `closeOutId` is 0 for ordinary fills.
    event Traded(
        bytes32 indexed tradeId,
        address indexed maker,
        address indexed taker,
        address underlying,
        Kind kind,
        uint256 strike,
        uint64 expiry,
        bool isCall,
        int256 makerSize,
        uint256 price,
        bytes32 closeOutId
    );
    event OrderCancelled(bytes32 indexed orderHash, address indexed maker);

    constructor(IQuorumVault vault_) {
        require(address(vault_) != address(0), "Market: vault is the zero address");
        vault = vault_;
    }

    // ---- maker orders ---------------------------------------------------------------------

    /// Fill `quantity` of the maker's signed `order` as its taker, at the order's limit price.
    function fill(Order calldata order, bytes calldata makerSignature, uint256 quantity)
        external
        returns (bytes32 tradeId)
    {
        require(quantity > 0, "Market: fill quantity must be positive");
        require(msg.sender != order.maker, "Market: self-trade (the taker is the maker)");
        require(block.timestamp <= order.validUntil, "Market: order expired");
        bytes32 hash = orderHash(order);
        require(!cancelled[hash], "Market: order cancelled");
        uint256 done = filled[hash];
        require(
            quantity <= order.quantity && done <= order.quantity - quantity,
            "Market: fill exceeds what is left of the order"
        );
        require(order.quantity <= uint256(type(int256).max), "Market: order quantity too large");
        require(order.limitPrice > 0, "Market: price must be positive");
        _checkInstrument(order.underlying, order.kind, order.strike, order.expiry, order.isCall);
        require(_recover(hash, makerSignature) == order.maker, "Market: signature is not the maker's");

        filled[hash] = done + quantity;
        tradeId = keccak256(abi.encode(hash, fillCount[hash]++));
        _emitFill(tradeId, order, order.isBuy ? int256(quantity) : -int256(quantity));
    }

    /// The maker withdraws what is left of an order.
    function cancel(Order calldata order) external {
        require(msg.sender == order.maker, "Market: only the maker can cancel an order");
        bytes32 hash = orderHash(order);
        require(!cancelled[hash], "Market: order already cancelled");
        cancelled[hash] = true;
        emit OrderCancelled(hash, order.maker);
    }

    // ---- close-outs -----------------------------------------------------------------------

    /// Take the other side of a quorum-signed close-out at the current auction price.
    /// `priceLimit` protects the taker: the highest price it pays when the account sells, the
    /// lowest it accepts when the account buys.
    function closeOut(CloseOut calldata c, bytes[] calldata signatures, uint256 priceLimit)
        external
        returns (bytes32 tradeId)
    {
        require(c.closeOutId != bytes32(0), "Market: close-out id must be non-zero");
        require(!closeOutUsed[c.closeOutId], "Market: close-out id already used");
        require(block.timestamp >= c.start, "Market: close-out auction not started");
        require(block.timestamp <= c.deadline, "Market: close-out expired");
        require(msg.sender != c.account, "Market: self-trade (the taker is the account)");
        require(c.accountSize != 0, "Market: close-out size must be non-zero");
        _checkInstrument(c.underlying, c.kind, c.strike, c.expiry, c.isCall);
        bytes32 digest = closeOutDigest(c);
        vault.requireQuorum(digest, signatures);
        uint256 price = auctionPrice(c, block.timestamp);
        if (c.accountSize < 0) {
            require(price <= priceLimit, "Market: auction price above the taker's limit");
        } else {
            require(price >= priceLimit, "Market: auction price below the taker's limit");
        }

        closeOutUsed[c.closeOutId] = true;
        tradeId = keccak256(abi.encode(digest, uint256(0)));
        _emitCloseOut(tradeId, c, price);
    }

    // The events are emitted from their own frames: from `fill` or `closeOut` themselves they
    // would not fit the EVM's stack (without the IR pipeline).

    function _emitFill(bytes32 tradeId, Order calldata order, int256 makerSize) private {
        emit Traded(
            tradeId, order.maker, msg.sender, order.underlying, order.kind, order.strike, order.expiry, order.isCall, makerSize, order.limitPrice, bytes32(0)
        );
    }

    function _emitCloseOut(bytes32 tradeId, CloseOut calldata c, uint256 price) private {
        emit Traded(
            tradeId, c.account, msg.sender, c.underlying, c.kind, c.strike, c.expiry, c.isCall, c.accountSize, price, c.closeOutId
        );
    }

    /// The close-out price at `timestamp`: the discount grows linearly from 0 at `start` to
    /// `maxDiscountBps` at `deadline`; the account sells at mark·(1 − discount), rounded up, or
    /// buys at mark·(1 + discount), rounded down (rounding favours the defaulting account, so
    /// it never adds to a loss the insurance fund may have to cover).
    function auctionPrice(CloseOut calldata c, uint256 timestamp) public pure returns (uint256) {
        require(c.mark > 0 && c.mark < MARK_LIMIT, "Market: mark must be positive and below 2**128");
        require(c.maxDiscountBps < BPS, "Market: max discount must be below 100%");
        require(c.start < c.deadline, "Market: close-out window is empty");
        require(c.start <= timestamp && timestamp <= c.deadline, "Market: time outside the auction window");
        uint256 span = BPS * (c.deadline - c.start);
        uint256 discount = uint256(c.maxDiscountBps) * (timestamp - c.start);
        if (c.accountSize < 0) {
            return (c.mark * (span - discount) + span - 1) / span;
        }
        return (c.mark * (span + discount)) / span;
    }

    // ---- EIP-712 --------------------------------------------------------------------------

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
    }

    /// The order's EIP-712 digest: what the maker signs, and the key of `filled` and `cancelled`.
    /// Every member is a static type, so abi.encode(typehash, order) is EIP-712's encodeData.
    function orderHash(Order calldata order) public view returns (bytes32) {
        return _typedDataDigest(keccak256(abi.encode(ORDER_TYPEHASH, order)));
    }

    /// The close-out's EIP-712 digest: what the node set signs.
    function closeOutDigest(CloseOut calldata c) public view returns (bytes32) {
        return _typedDataDigest(keccak256(abi.encode(CLOSE_OUT_TYPEHASH, c)));
    }

    function _typedDataDigest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _checkInstrument(address underlying, Kind kind, uint256 strike, uint64 expiry, bool isCall) private view {
        require(underlying != address(0), "Market: underlying is the zero address");
        if (kind == Kind.Perpetual) {
            require(strike == 0 && expiry == 0 && !isCall, "Market: a perpetual has no strike, expiry or call flag");
        } else {
            require(strike > 0, "Market: option strike must be positive");
            require(expiry > block.timestamp, "Market: option already expired");
        }
    }

    /// The vault's rules: 65 bytes r || s || v, low s, v 27 or 28.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        require(signature.length == 65, "Market: signature must be 65 bytes");
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        require(uint256(s) <= HALF_CURVE_ORDER, "Market: malleable signature (high s)");
        require(v == 27 || v == 28, "Market: signature v must be 27 or 28");
        signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "Market: invalid signature");
    }
}
