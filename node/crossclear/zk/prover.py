"""Proving a collateral claim with snarkjs (witness generation, then `groth16 prove`).

The witness and the proof come from snarkjs through `node`, the standard and audited path;
Python only assembles the circuit input and checks it first, so an input that cannot satisfy
the circuit fails with a sentence naming the problem instead of a witness-calculator trace.

    deposit = Deposit(secret=..., account=..., asset=..., amount=..., leaf_index=...,
                      source_chain_id=..., vault=...)
    statement = ClaimStatement(claimed_amount=..., domain=...)
    proof, claim = prove_claim(deposit, tree.path(deposit.leaf_index), statement)
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossclear.zk.artifacts import CircuitArtifacts, default_artifacts, javascript_tools
from crossclear.zk.claim import AMOUNT_BITS, ClaimPublicSignals
from crossclear.zk.commitments import deposit_leaf, nullifier, secret_hash
from crossclear.zk.groth16 import Proof, parse_proof, parse_public_signals
from crossclear.zk.merkle import TREE_DEPTH, MerklePath, root_from_path
from crossclear.zk.poseidon import SNARK_SCALAR_FIELD

PROVER_TIMEOUT_SECONDS = 300


class ProverError(Exception):
    """The claim cannot be proven (bad input, or snarkjs failed); str() is one line."""


@dataclass(frozen=True)
class Deposit:
    """What the depositor knows about one vault deposit."""

    secret: int
    """The secret whose Poseidon hash went into the deposit."""
    account: int
    """Depositor address as uint160."""
    asset: int
    """Token address as uint160."""
    amount: int
    """Deposited amount in the token's base units."""
    leaf_index: int
    """Index of the deposit's leaf in the vault tree."""
    source_chain_id: int
    """Chain id of the vault's chain."""
    vault: int
    """Vault address as uint160."""

    @property
    def leaf(self) -> int:
        return deposit_leaf(self.account, self.asset, self.amount, secret_hash(self.secret))

    @property
    def nullifier(self) -> int:
        return nullifier(self.secret, self.leaf_index, self.source_chain_id, self.vault)


@dataclass(frozen=True)
class ClaimStatement:
    """What the claimant asks a clearinghouse to credit."""

    claimed_amount: int
    """Amount to credit (at most the deposit's amount)."""
    domain: int
    """The clearinghouse deployment the proof is for."""


def claim_signals(deposit: Deposit, path: MerklePath, statement: ClaimStatement) -> ClaimPublicSignals:
    return ClaimPublicSignals(
        root=path.root,
        source_chain_id=deposit.source_chain_id,
        vault=deposit.vault,
        account=deposit.account,
        asset=deposit.asset,
        claimed_amount=statement.claimed_amount,
        nullifier=deposit.nullifier,
        domain=statement.domain,
    )


def check_claim(deposit: Deposit, path: MerklePath, statement: ClaimStatement) -> None:
    """Raise ProverError naming the first reason the circuit would reject this input."""
    for name in ("secret", "source_chain_id"):
        if not 0 <= getattr(deposit, name) < SNARK_SCALAR_FIELD:
            raise ProverError(f"deposit {name} is not a field element")
    if not 0 <= statement.domain < SNARK_SCALAR_FIELD:
        raise ProverError("domain is not a field element")
    for name in ("account", "asset", "vault"):
        if not 0 <= getattr(deposit, name) < 1 << 160:
            raise ProverError(f"deposit {name} is not a 160-bit address")
    for name, value in (("deposit amount", deposit.amount), ("claimed amount", statement.claimed_amount)):
        if not 0 <= value < 1 << AMOUNT_BITS:
            raise ProverError(f"{name} {value} is outside 0 .. 2^{AMOUNT_BITS} - 1")
    if statement.claimed_amount > deposit.amount:
        raise ProverError(f"claimed amount {statement.claimed_amount} exceeds the deposit amount {deposit.amount}")
    if len(path.path_elements) != TREE_DEPTH:
        raise ProverError(f"Merkle path has {len(path.path_elements)} elements, the circuit needs {TREE_DEPTH}")
    if not 0 <= deposit.leaf_index < 1 << TREE_DEPTH or path.leaf_index != deposit.leaf_index:
        raise ProverError(f"leaf index {deposit.leaf_index} does not match the Merkle path's {path.leaf_index}")
    if path.leaf != deposit.leaf:
        raise ProverError(f"the deposit's leaf is not the leaf at index {deposit.leaf_index} of the tree")
    if root_from_path(deposit.leaf, path.path_elements, deposit.leaf_index) != path.root:
        raise ProverError("the Merkle path does not lead from the deposit's leaf to the root")


def circuit_input(deposit: Deposit, path: MerklePath, statement: ClaimStatement) -> dict[str, Any]:
    """The snarkjs input.json for the circuit (signal names as in collateral_claim.circom)."""
    claim = claim_signals(deposit, path, statement)
    return {
        "root": str(claim.root),
        "sourceChainId": str(claim.source_chain_id),
        "vault": str(claim.vault),
        "account": str(claim.account),
        "asset": str(claim.asset),
        "claimedAmount": str(claim.claimed_amount),
        "nullifier": str(claim.nullifier),
        "domain": str(claim.domain),
        "amount": str(deposit.amount),
        "secret": str(deposit.secret),
        "pathElements": [str(element) for element in path.path_elements],
        "pathIndices": [str(bit) for bit in path.path_indices],
    }


def _snarkjs(arguments: list[str], step: str) -> None:
    tools = javascript_tools()
    try:
        completed = subprocess.run(
            [tools.node, str(tools.snarkjs), *arguments],
            capture_output=True,
            text=True,
            timeout=PROVER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProverError(f"snarkjs {step} took longer than {PROVER_TIMEOUT_SECONDS} s") from None
    # snarkjs sometimes exits 0 after printing an error, so also look for the expected output.
    output = completed.stdout + completed.stderr
    if completed.returncode != 0 or "Error" in output:
        lines = [line.strip() for line in output.splitlines() if "rror" in line] or output.strip().splitlines()
        detail = lines[0] if lines else f"exit status {completed.returncode}"
        raise ProverError(f"snarkjs {step} failed: {detail[:300]}")


def prove_input(
    input_document: dict[str, Any], artifacts: CircuitArtifacts | None = None
) -> tuple[Proof, tuple[int, ...]]:
    """Run snarkjs on a raw circuit input; returns the proof and the public signals."""
    artifacts = artifacts or default_artifacts()
    for needed in (artifacts.wasm, artifacts.zkey):
        if not needed.exists():
            raise ProverError(f"circuit artifact {needed} is missing (run circuits/build.py)")
    with tempfile.TemporaryDirectory(prefix="crossclear-prove-") as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "input.json").write_text(json.dumps(input_document))
        witness = scratch / "witness.wtns"
        _snarkjs(["wtns", "calculate", str(artifacts.wasm), str(scratch / "input.json"), str(witness)], "witness")
        if not witness.exists():
            raise ProverError("snarkjs witness generation produced no witness (input rejected by the circuit)")
        proof_path, public_path = scratch / "proof.json", scratch / "public.json"
        _snarkjs(
            ["groth16", "prove", str(artifacts.zkey), str(witness), str(proof_path), str(public_path)],
            "groth16 prove",
        )
        proof = parse_proof(json.loads(proof_path.read_text()), "snarkjs proof")
        public_signals = parse_public_signals(json.loads(public_path.read_text()), "snarkjs public signals")
    return proof, public_signals


def prove_claim(
    deposit: Deposit, path: MerklePath, statement: ClaimStatement, artifacts: CircuitArtifacts | None = None
) -> tuple[Proof, ClaimPublicSignals]:
    """Check the input, prove it, and return the proof with its public signals."""
    check_claim(deposit, path, statement)
    expected = claim_signals(deposit, path, statement)
    proof, public_signals = prove_input(circuit_input(deposit, path, statement), artifacts)
    if public_signals != expected.to_signals():
        raise ProverError("snarkjs returned public signals in an unexpected order (artifacts out of date?)")
    return proof, expected
