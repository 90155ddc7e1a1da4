"""`crossclear zk verify` and `crossclear zk prove`.

verify exits 0 when the proof verifies, 1 when it is well-formed but does not verify, and 2
when it is rejected before verification (unreadable file, wrong count, out-of-range value,
point off the curve or outside the subgroup), printing one line that says which.

prove reads a deposit description (JSON, see docs/zk-claims.md) and writes proof.json and
public.json into --out-dir, both or neither.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError
from crossclear.zk.artifacts import CircuitArtifacts, default_artifacts
from crossclear.zk.backends import available_backends, default_backend_name, get_backend
from crossclear.zk.commitments import address_to_field
from crossclear.zk.groth16 import (
    MalformedProof,
    load_proof,
    load_public_signals,
    load_verification_key,
    proof_to_json,
)
from crossclear.zk.merkle import TREE_DEPTH, IncrementalMerkleTree, MerklePath
from crossclear.zk.prover import ClaimStatement, Deposit, ProverError, prove_claim


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    zk = subparsers.add_parser("zk", help="verify or produce Groth16 collateral-claim proofs")
    commands = zk.add_subparsers(dest="zk_command", metavar="ACTION", required=True)

    verify = commands.add_parser("verify", help="check a snarkjs proof against a verification key")
    verify.add_argument("--vkey", required=True, type=Path, help="snarkjs vkey.json")
    verify.add_argument("--proof", required=True, type=Path, help="snarkjs proof.json")
    verify.add_argument("--public", required=True, type=Path, help="snarkjs public.json")
    verify.add_argument("--backend", help="verifier backend (native or py_ecc; default: native when built)")
    verify.set_defaults(handler=run_verify)

    prove = commands.add_parser("prove", help="prove a collateral claim for a deposit")
    prove.add_argument("--deposit", required=True, type=Path, help="deposit description JSON")
    prove.add_argument("--claimed-amount", required=True, type=_non_negative_int, help="amount to claim")
    prove.add_argument("--domain", required=True, type=_non_negative_int, help="clearinghouse domain")
    prove.add_argument("--out-dir", required=True, type=Path, help="where proof.json and public.json go")
    prove.add_argument("--artifacts", type=Path, help="circuit artifacts folder (default: circuits/artifacts)")
    prove.set_defaults(handler=run_prove)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def run_verify(args: argparse.Namespace) -> int:
    backend_name = args.backend or default_backend_name()
    if backend_name not in available_backends():
        raise UsageError(f"--backend {backend_name}: not available (available: {', '.join(available_backends())})")
    try:
        key = load_verification_key(args.vkey)
        proof = load_proof(args.proof)
        public_signals = load_public_signals(args.public)
        verified = get_backend(backend_name).verify(key, proof, public_signals)
    except MalformedProof as error:
        raise UsageError(f"rejected before verification: {error}") from None
    if verified:
        print(f"verified ({backend_name}): the proof is valid for these public signals")
        return 0
    print(f"not verified ({backend_name}): the proof is well-formed but fails the pairing check")
    return 1


# -- prove -----------------------------------------------------------------------------------


def _deposit_number(document: dict[str, Any], key: str, where: Path) -> int:
    if key not in document:
        raise UsageError(f"deposit file {where}: missing {key!r}")
    value = document[key]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = value if isinstance(value, int) else int(str(value), 0)
    except ValueError:
        raise UsageError(f"deposit file {where}: {key!r} must be an integer, got {str(value)[:40]!r}") from None
    if number < 0:
        raise UsageError(f"deposit file {where}: {key!r} must not be negative")
    return number


def _deposit_address(document: dict[str, Any], key: str, where: Path) -> int:
    if key not in document:
        raise UsageError(f"deposit file {where}: missing {key!r}")
    value = document[key]
    try:
        # "0x" + 40 hex digits, or the uint160 as a JSON integer or decimal string.
        if isinstance(value, str) and not value.lower().startswith("0x"):
            if not value.isascii() or not value.isdigit():
                raise ValueError
            value = int(value)
        if isinstance(value, bool):
            raise ValueError
        return address_to_field(value)
    except (ValueError, TypeError):
        raise UsageError(f"deposit file {where}: {key!r} is not an address: {str(value)[:50]!r}") from None


def _path_for(document: dict[str, Any], deposit: Deposit, where: Path) -> MerklePath:
    if "leaves" in document:
        leaves = document["leaves"]
        if not isinstance(leaves, list) or deposit.leaf_index >= len(leaves):
            raise UsageError(f"deposit file {where}: 'leaves' must list the tree's leaves through leaf_index")
        tree = IncrementalMerkleTree()
        for position, leaf in enumerate(leaves):
            try:
                tree.insert(_deposit_number({"leaf": leaf}, "leaf", where))
            except ValueError:
                raise UsageError(f"deposit file {where}: leaves[{position}] is not a field element") from None
        return tree.path(deposit.leaf_index)
    if "path_elements" in document and "root" in document:
        elements = document["path_elements"]
        if not isinstance(elements, list) or len(elements) != TREE_DEPTH:
            raise UsageError(f"deposit file {where}: 'path_elements' must list {TREE_DEPTH} siblings")
        return MerklePath(
            leaf=deposit.leaf,
            leaf_index=deposit.leaf_index,
            path_elements=tuple(_deposit_number({"e": e}, "e", where) for e in elements),
            path_indices=tuple((deposit.leaf_index >> level) & 1 for level in range(TREE_DEPTH)),
            root=_deposit_number(document, "root", where),
        )
    raise UsageError(f"deposit file {where}: give either 'leaves' or both 'path_elements' and 'root'")


def read_deposit_file(path: Path) -> tuple[Deposit, MerklePath]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"deposit file {path}: cannot read JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise UsageError(f"deposit file {path}: expected a JSON object")
    deposit = Deposit(
        secret=_deposit_number(document, "secret", path),
        account=_deposit_address(document, "account", path),
        asset=_deposit_address(document, "asset", path),
        amount=_deposit_number(document, "amount", path),
        leaf_index=_deposit_number(document, "leaf_index", path),
        source_chain_id=_deposit_number(document, "source_chain_id", path),
        vault=_deposit_address(document, "vault", path),
    )
    return deposit, _path_for(document, deposit, path)


def _write_both(out_dir: Path, files: dict[str, Any]) -> None:
    # Write to temporaries first so a failure never leaves one file without the other.
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, document in files.items():
            handle, temporary_name = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
            staged.append((name, Path(temporary_name)))
            with os.fdopen(handle, "w") as stream:
                json.dump(document, stream, indent=1)
                stream.write("\n")
        for name, temporary in staged:
            os.replace(temporary, out_dir / name)
    finally:
        for _, leftover in staged:
            leftover.unlink(missing_ok=True)


def run_prove(args: argparse.Namespace) -> int:
    deposit, path = read_deposit_file(args.deposit)
    artifacts = CircuitArtifacts(args.artifacts) if args.artifacts else default_artifacts()
    statement = ClaimStatement(claimed_amount=args.claimed_amount, domain=args.domain)
    try:
        proof, claim = prove_claim(deposit, path, statement, artifacts)
    except ProverError as error:
        raise UsageError(f"cannot prove the claim: {error}") from None
    _write_both(args.out_dir, {"proof.json": proof_to_json(proof), "public.json": claim.to_json()})
    print(f"wrote {args.out_dir / 'proof.json'} and {args.out_dir / 'public.json'} (nullifier {claim.nullifier})")
    return 0
