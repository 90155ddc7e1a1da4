"""Groth16 collateral claims: Poseidon, the deposit Merkle tree, proof checks and proving.

- `poseidon`, `IncrementalMerkleTree`, `zero_values`: the hashing and tree the vault uses.
- `secret_hash`, `deposit_leaf`, `nullifier`: what a deposit commits to and a claim reveals.
- `ClaimPublicSignals`: the circuit's public signals, in order.
- `VerificationKey`, `Proof`, `load_*`, `check_well_formed`, `MalformedProof`: see `groth16`.
- `get_backend`, `register_backend`, `Groth16Backend`: verifier backends (see `backends`);
  `py_ecc` always, `native` when `crossclear.zk._native_backend` and its extension exist.
- `prove_claim`, `Deposit`, `ClaimStatement`, `ProverError`: proving with snarkjs.
- `measure_claim_cpu`: process CPU time per claim over the node's claim-check path (see
  `claim_cost`); `crossclear bench zk --json` reports it as `claim_cpu_ms`.
"""

from crossclear.zk.backends import (
    Groth16Backend,
    available_backends,
    default_backend_name,
    get_backend,
    load_optional_backends,
    register_backend,
)
from crossclear.zk.claim import PUBLIC_SIGNAL_NAMES, ClaimPublicSignals
from crossclear.zk.claim_cost import measure_claim_cpu
from crossclear.zk.commitments import address_to_field, deposit_leaf, nullifier, secret_hash
from crossclear.zk.groth16 import (
    BASE_FIELD,
    SCALAR_FIELD,
    MalformedProof,
    Proof,
    VerificationKey,
    check_well_formed,
    load_proof,
    load_public_signals,
    load_verification_key,
    parse_proof,
    parse_public_signals,
    parse_verification_key,
)
from crossclear.zk.merkle import TREE_DEPTH, IncrementalMerkleTree, MerklePath, root_from_path, zero_values
from crossclear.zk.poseidon import SNARK_SCALAR_FIELD, poseidon
from crossclear.zk.prover import ClaimStatement, Deposit, ProverError, prove_claim

__all__ = [
    "BASE_FIELD",
    "PUBLIC_SIGNAL_NAMES",
    "SCALAR_FIELD",
    "SNARK_SCALAR_FIELD",
    "TREE_DEPTH",
    "ClaimPublicSignals",
    "ClaimStatement",
    "Deposit",
    "Groth16Backend",
    "IncrementalMerkleTree",
    "MalformedProof",
    "MerklePath",
    "Proof",
    "ProverError",
    "VerificationKey",
    "address_to_field",
    "available_backends",
    "check_well_formed",
    "default_backend_name",
    "deposit_leaf",
    "get_backend",
    "load_optional_backends",
    "load_proof",
    "load_public_signals",
    "load_verification_key",
    "measure_claim_cpu",
    "nullifier",
    "parse_proof",
    "parse_public_signals",
    "parse_verification_key",
    "poseidon",
    "prove_claim",
    "register_backend",
    "root_from_path",
    "secret_hash",
    "zero_values",
]

# Registers "native" when the native engineer's backend and its compiled extension exist.
load_optional_backends()
