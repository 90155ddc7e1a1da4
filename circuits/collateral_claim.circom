pragma circom 2.1.0;

// Proves that a deposit leaf Poseidon(account, asset, amount, Poseidon(secret)) sits at some
// index of the vault's depth-20 Poseidon Merkle tree with the public root, that its amount
// covers the claimed amount, and that the public nullifier belongs to that deposit.
// Public signal order (snarkjs public.json): root, sourceChainId, vault, account, asset,
// claimedAmount, nullifier, domain. Keep in step with crossclear.zk.claim.ClaimPublicSignals.

include "poseidon.circom";
include "bitify.circom";
include "comparators.circom";

// Amounts are range-checked to this many bits, the widest LessThan supports, so the
// amount >= claimed comparison cannot pass through field wrap-around.
function AMOUNT_BITS() { return 252; }

// Recomputes the root from a leaf and its authentication path; pathIndices[i] = 1 when the
// node at level i is a right child. Also outputs the leaf index those bits spell.
template MerkleRoot(depth) {
    signal input leaf;
    signal input pathElements[depth];
    signal input pathIndices[depth];
    signal output root;
    signal output leafIndex;

    signal nodes[depth + 1];
    signal lefts[depth];
    signal rights[depth];
    component hashers[depth];
    var index = 0;

    nodes[0] <== leaf;
    for (var level = 0; level < depth; level++) {
        pathIndices[level] * (1 - pathIndices[level]) === 0;
        lefts[level] <== nodes[level] + pathIndices[level] * (pathElements[level] - nodes[level]);
        rights[level] <== pathElements[level] + pathIndices[level] * (nodes[level] - pathElements[level]);
        hashers[level] = Poseidon(2);
        hashers[level].inputs[0] <== lefts[level];
        hashers[level].inputs[1] <== rights[level];
        nodes[level + 1] <== hashers[level].out;
        index += pathIndices[level] * (1 << level);
    }
    root <== nodes[depth];
    leafIndex <== index;
}

template CollateralClaim(depth) {
    signal input root;
    signal input sourceChainId;
    signal input vault;
    signal input account;
    signal input asset;
    signal input claimedAmount;
    signal input nullifier;
    signal input domain;

    signal input amount;
    signal input secret;
    signal input pathElements[depth];
    signal input pathIndices[depth];

    component amountBits = Num2Bits(AMOUNT_BITS());
    amountBits.in <== amount;
    component claimedBits = Num2Bits(AMOUNT_BITS());
    claimedBits.in <== claimedAmount;
    component covers = GreaterEqThan(AMOUNT_BITS());
    covers.in[0] <== amount;
    covers.in[1] <== claimedAmount;
    covers.out === 1;

    component secretHash = Poseidon(1);
    secretHash.inputs[0] <== secret;
    component leaf = Poseidon(4);
    leaf.inputs[0] <== account;
    leaf.inputs[1] <== asset;
    leaf.inputs[2] <== amount;
    leaf.inputs[3] <== secretHash.out;

    component tree = MerkleRoot(depth);
    tree.leaf <== leaf.out;
    tree.pathElements <== pathElements;
    tree.pathIndices <== pathIndices;
    tree.root === root;

    // Source-side data only: the same deposit gets the same nullifier at every clearinghouse.
    component nullifierHash = Poseidon(4);
    nullifierHash.inputs[0] <== secret;
    nullifierHash.inputs[1] <== tree.leafIndex;
    nullifierHash.inputs[2] <== sourceChainId;
    nullifierHash.inputs[3] <== vault;
    nullifierHash.out === nullifier;

    // The domain enters no other constraint; squaring it keeps it bound to the proof.
    signal domainSquare;
    domainSquare <== domain * domain;
}

component main {public [root, sourceChainId, vault, account, asset, claimedAmount, nullifier, domain]} = CollateralClaim(20);
