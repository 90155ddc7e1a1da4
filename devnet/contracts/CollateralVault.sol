// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

interface IERC20Minimal {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// circomlibjs' generated Poseidon contracts (`poseidon_gencontract.createCode(n)`).
interface IPoseidon2 {
    function poseidon(uint256[2] calldata input) external pure returns (uint256);
}

interface IPoseidon4 {
    function poseidon(uint256[4] calldata input) external pure returns (uint256);
}

/// @title Collateral vault: deposits become leaves of a Poseidon Merkle tree; payouts need a quorum.
/// @notice `deposit` computes leaf = Poseidon(account, asset, amount, secretHash) itself, so a
/// leaf can never claim more than the vault received, and inserts it into an incremental tree
/// of depth 20 (node = Poseidon(left, right), zeros[0] = 0). Tokens leave only through
/// `release` (withdrawal) or `seize` (liquidation), each carrying EIP-712 signatures of at
/// least floor(2n/3)+1 members of the node set, from distinct signers in ascending address
/// order, with an id that works once and a deadline after which the signatures are worthless.
/// The node set changes only by a quorum-signed update.
contract CollateralVault {
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// Exclusive bound on deposit amounts: the claim circuit range-checks amounts to 252 bits.
    uint256 public constant AMOUNT_LIMIT = 1 << 252;
    uint256 public constant TREE_DEPTH = 20;
    uint256 public constant ROOT_HISTORY_SIZE = 64;
    /// Upper half of secp256k1's order: signatures with a larger s are malleable copies.
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant RELEASE_TYPEHASH =
        keccak256("Release(bytes32 releaseId,address account,address token,uint256 amount,address recipient,uint64 deadline)");
    bytes32 public constant SEIZE_TYPEHASH =
        keccak256("Seize(bytes32 seizeId,address account,address token,uint256 amount,address recipient,uint64 deadline)");
    bytes32 public constant NODE_SET_UPDATE_TYPEHASH = keccak256("NodeSetUpdate(uint256 epoch,address[] signers)");
    string public constant NAME = "CrossclearVault";
    string public constant VERSION = "1";

    IPoseidon2 public immutable poseidon2;
    IPoseidon4 public immutable poseidon4;

    uint256[21] private zeros;
    uint256[20] private filledSubtrees;
    uint256[64] private roots;
    uint256 private currentRootIndex;
    uint32 public nextLeafIndex;

    address[] private signers;
    mapping(address => bool) public isSigner;
    uint256 public threshold;
    /// Number of node sets so far; a NodeSetUpdate signs the current epoch, so it works once.
    uint256 public epoch;

    mapping(bytes32 => bool) public releaseUsed;
    mapping(bytes32 => bool) public seizeUsed;

    bool private locked;

    event Deposited(
        address indexed account,
        address indexed token,
        uint256 amount,
        uint256 secretHash,
        uint256 leaf,
        uint32 leafIndex,
        uint256 root
    );
    event RootUpdated(uint256 root, uint32 leafCount);
    event Released(
        bytes32 indexed releaseId, address indexed account, address indexed token, uint256 amount, address recipient
    );
    event Seized(
        bytes32 indexed seizeId, address indexed account, address indexed token, uint256 amount, address recipient
    );
    event NodeSetUpdated(uint256 indexed epoch, address[] signers, uint256 threshold);

    modifier nonReentrant() {
        require(!locked, "CollateralVault: reentrant call");
        locked = true;
        _;
        locked = false;
    }

    constructor(IPoseidon2 poseidon2_, IPoseidon4 poseidon4_, address[] memory initialSigners) {
        poseidon2 = poseidon2_;
        poseidon4 = poseidon4_;
        uint256 zero = 0;
        for (uint256 level = 0; level < TREE_DEPTH; level++) {
            zeros[level] = zero;
            zero = poseidon2_.poseidon([zero, zero]);
        }
        zeros[TREE_DEPTH] = zero;
        roots[0] = zero;
        _setNodeSet(initialSigners);
    }

    // ---- deposits -------------------------------------------------------------------------

    function deposit(address token, uint256 amount, uint256 secretHash)
        external
        nonReentrant
        returns (uint32 leafIndex, uint256 root)
    {
        require(amount > 0, "CollateralVault: amount must be positive");
        require(amount < AMOUNT_LIMIT, "CollateralVault: amount must be below 2**252");
        require(secretHash < SNARK_SCALAR_FIELD, "CollateralVault: secretHash is not a field element");
        IERC20Minimal asset = IERC20Minimal(token);
        uint256 balanceBefore = asset.balanceOf(address(this));
        require(asset.transferFrom(msg.sender, address(this), amount), "CollateralVault: transferFrom failed");
        // The leaf commits to `amount`, so the vault must have received exactly that much.
        require(
            asset.balanceOf(address(this)) - balanceBefore == amount, "CollateralVault: received amount differs"
        );
        uint256 leaf = poseidon4.poseidon([uint256(uint160(msg.sender)), uint256(uint160(token)), amount, secretHash]);
        (leafIndex, root) = _insert(leaf);
        emit Deposited(msg.sender, token, amount, secretHash, leaf, leafIndex, root);
        emit RootUpdated(root, leafIndex + 1);
    }

    function currentRoot() public view returns (uint256) {
        return roots[currentRootIndex];
    }

    /// The root and the number of leaves under it, read together at one block.
    function treeState() external view returns (uint256 root, uint32 leafCount) {
        return (roots[currentRootIndex], nextLeafIndex);
    }

    /// True for the current root and the ROOT_HISTORY_SIZE - 1 before it.
    function isKnownRoot(uint256 root) external view returns (bool) {
        if (root == 0) {
            return false;
        }
        for (uint256 i = 0; i < ROOT_HISTORY_SIZE; i++) {
            if (roots[i] == root) {
                return true;
            }
        }
        return false;
    }

    function zeroValue(uint256 level) external view returns (uint256) {
        return zeros[level];
    }

    function _insert(uint256 leaf) private returns (uint32 leafIndex, uint256 root) {
        leafIndex = nextLeafIndex;
        require(uint256(leafIndex) < (1 << TREE_DEPTH), "CollateralVault: tree is full");
        uint256 node = leaf;
        uint256 position = leafIndex;
        for (uint256 level = 0; level < TREE_DEPTH; level++) {
            if (position & 1 == 0) {
                filledSubtrees[level] = node;
                node = poseidon2.poseidon([node, zeros[level]]);
            } else {
                node = poseidon2.poseidon([filledSubtrees[level], node]);
            }
            position >>= 1;
        }
        nextLeafIndex = leafIndex + 1;
        currentRootIndex = (currentRootIndex + 1) % ROOT_HISTORY_SIZE;
        roots[currentRootIndex] = node;
        root = node;
    }

    // ---- quorum payouts -------------------------------------------------------------------

    /// A release carries a deadline: after it the signatures are worthless, so nodes can hand
    /// back collateral they reserved for a release that was never submitted.
    function release(
        bytes32 releaseId,
        address account,
        address token,
        uint256 amount,
        address recipient,
        uint64 deadline,
        bytes[] calldata signatures
    ) external nonReentrant {
        require(!releaseUsed[releaseId], "CollateralVault: release id already used");
        require(block.timestamp <= deadline, "CollateralVault: release expired");
        bytes32 structHash = keccak256(abi.encode(RELEASE_TYPEHASH, releaseId, account, token, amount, recipient, deadline));
        _requireQuorum(_typedDataDigest(structHash), signatures);
        releaseUsed[releaseId] = true;
        _pay(token, recipient, amount);
        emit Released(releaseId, account, token, amount, recipient);
    }

    /// A seize carries a deadline too: after it the signatures are worthless, so nodes can hand
    /// back collateral they reserved for a seize that was never submitted. The id is spent on
    /// the first successful seize, whatever deadline a later order for it carries.
    function seize(
        bytes32 seizeId,
        address account,
        address token,
        uint256 amount,
        address recipient,
        uint64 deadline,
        bytes[] calldata signatures
    ) external nonReentrant {
        require(!seizeUsed[seizeId], "CollateralVault: seize id already used");
        require(block.timestamp <= deadline, "CollateralVault: seize expired");
        bytes32 structHash = keccak256(abi.encode(SEIZE_TYPEHASH, seizeId, account, token, amount, recipient, deadline));
        _requireQuorum(_typedDataDigest(structHash), signatures);
        seizeUsed[seizeId] = true;
        _pay(token, recipient, amount);
        emit Seized(seizeId, account, token, amount, recipient);
    }

    function _pay(address token, address recipient, uint256 amount) private {
        require(recipient != address(0), "CollateralVault: recipient is the zero address");
        require(amount > 0, "CollateralVault: amount must be positive");
        require(IERC20Minimal(token).transfer(recipient, amount), "CollateralVault: transfer failed");
    }

    // ---- node set -------------------------------------------------------------------------

    function getSigners() external view returns (address[] memory) {
        return signers;
    }

    /// Replace the node set; `newSigners` must be in ascending order, signed by a quorum of the current set.
    function updateNodeSet(address[] calldata newSigners, bytes[] calldata signatures) external nonReentrant {
        bytes32 structHash =
            keccak256(abi.encode(NODE_SET_UPDATE_TYPEHASH, epoch, keccak256(abi.encodePacked(newSigners))));
        _requireQuorum(_typedDataDigest(structHash), signatures);
        _setNodeSet(newSigners);
    }

    function _setNodeSet(address[] memory newSigners) private {
        require(newSigners.length > 0, "CollateralVault: node set is empty");
        for (uint256 i = 0; i < signers.length; i++) {
            isSigner[signers[i]] = false;
        }
        address previous = address(0);
        for (uint256 i = 0; i < newSigners.length; i++) {
            require(newSigners[i] > previous, "CollateralVault: node set must be ascending, distinct, non-zero");
            isSigner[newSigners[i]] = true;
            previous = newSigners[i];
        }
        signers = newSigners;
        threshold = (2 * newSigners.length) / 3 + 1;
        epoch += 1;
        emit NodeSetUpdated(epoch, newSigners, threshold);
    }

    // ---- EIP-712 --------------------------------------------------------------------------

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
    }

    function _typedDataDigest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// Reverts unless `signatures` hold a quorum of the current node set over `digest` (the
    /// check `release`, `seize` and `updateNodeSet` use). Other contracts (the `Market`'s
    /// close-outs) call it with their own EIP-712 digest, so they trust this vault's node set.
    function requireQuorum(bytes32 digest, bytes[] calldata signatures) external view {
        _requireQuorum(digest, signatures);
    }

    function _requireQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        require(signatures.length >= threshold, "CollateralVault: fewer signatures than the threshold");
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; i++) {
            address signer = _recover(digest, signatures[i]);
            require(signer > previous, "CollateralVault: signers must be distinct and in ascending order");
            require(isSigner[signer], "CollateralVault: signer is not in the node set");
            previous = signer;
        }
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        require(signature.length == 65, "CollateralVault: signature must be 65 bytes");
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        require(uint256(s) <= HALF_CURVE_ORDER, "CollateralVault: malleable signature (high s)");
        require(v == 27 || v == 28, "CollateralVault: signature v must be 27 or 28");
        signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "CollateralVault: invalid signature");
    }
}
