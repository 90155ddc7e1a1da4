"""The circuit rejects every way of claiming what the deposit does not hold, and the
committed artifacts match the source (r1cs hash) and carry a real phase-2 contribution."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crossclear.zk import SCALAR_FIELD, IncrementalMerkleTree, nullifier
from crossclear.zk.artifacts import default_artifacts
from crossclear.zk.prover import ClaimStatement, Deposit, circuit_input

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = default_artifacts()


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("circuits_build", REPOSITORY_ROOT / "circuits" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(ARTIFACTS.manifest.read_text())
    return manifest


@pytest.mark.slow
def test_r1cs_matches_manifest(tmp_path: Path) -> None:
    build = _build_module()
    r1cs, wasm = build.compile_circuit(tmp_path)
    stale = (
        "circuits/collateral_claim.circom changed: rerun circuits/build.py and "
        "circuits/scripts/make_fixture_proofs.py"
    )
    assert build.sha256_file(r1cs) == _manifest()["r1cs_sha256"], stale
    # circom's wasm output is deterministic too, and it is what the prover runs.
    assert build.sha256_file(wasm) == _manifest()["files"]["collateral_claim.wasm"], stale


def test_artifact_hashes_match_manifest() -> None:
    for name, expected in _manifest()["files"].items():
        assert hashlib.sha256((ARTIFACTS.directory / name).read_bytes()).hexdigest() == expected, name


def test_key_has_phase2_contribution() -> None:
    key = json.loads(ARTIFACTS.verification_key.read_text())
    assert key["vk_delta_2"] != key["vk_gamma_2"]
    assert key["nPublic"] == 8


def _deposit(leaf_index: int, amount: int = 5 * 10**18, secret: int = 424242) -> Deposit:
    return Deposit(
        secret=secret,
        account=0x70997970C51812DC3A010C7D01B50E0D17DC79C8,
        asset=0xE7F1725E7734CE288F8367E1BB143E90BB3F0512,
        amount=amount,
        leaf_index=leaf_index,
        source_chain_id=31337,
        vault=0x5FBDB2315678AFECB367F032D93F642F64180AA3,
    )


def _input_for(deposit: Deposit, tree: IncrementalMerkleTree, claimed: int) -> dict[str, Any]:
    statement = ClaimStatement(claimed_amount=claimed, domain=77)
    return circuit_input(deposit, tree.path(deposit.leaf_index), statement)


def _cases() -> dict[str, dict[str, Any]]:
    tree = IncrementalMerkleTree()
    tree.insert(12345)
    honest = _deposit(leaf_index=1)
    tree.insert(honest.leaf)
    # A leaf whose amount is r - 1: "-1" in the field, huge as an integer.
    wrapped = _deposit(leaf_index=2, amount=SCALAR_FIELD - 1)
    tree.insert(wrapped.leaf)
    tree.insert(99)

    valid = _input_for(honest, tree, claimed=honest.amount)
    cases: dict[str, dict[str, Any]] = {"valid": valid, "valid_partial_claim": _input_for(honest, tree, 10**18)}

    def variant(name: str, **changes: Any) -> None:
        case = copy.deepcopy(valid)
        case.update({key: str(value) if isinstance(value, int) else value for key, value in changes.items()})
        cases[name] = case

    variant("amount_below_claimed", claimedAmount=honest.amount + 1)
    elements = list(valid["pathElements"])
    elements[5] = str(int(elements[5]) + 1)
    variant("wrong_path_element", pathElements=elements)
    flipped = list(valid["pathIndices"])
    flipped[0] = "0" if flipped[0] == "1" else "1"
    variant("wrong_index_bit", pathIndices=flipped)
    non_boolean = list(valid["pathIndices"])
    non_boolean[3] = "2"
    variant("non_boolean_index_bit", pathIndices=non_boolean)
    variant("different_account", account=honest.account + 1)
    variant("different_asset", asset=honest.asset + 1)
    other = nullifier(honest.secret + 1, honest.leaf_index, honest.source_chain_id, honest.vault)
    variant("nullifier_from_other_secret", nullifier=other)
    variant("nullifier_for_other_index", nullifier=nullifier(honest.secret, 0, 31337, honest.vault))
    variant("nullifier_for_other_chain", sourceChainId=1)
    # Claimed amount "-1" would pass amount >= claimed only modulo r.
    variant("claimed_amount_wraps", claimedAmount=SCALAR_FIELD - 1)
    cases["amount_wraps"] = _input_for(wrapped, tree, claimed=10**18)
    return cases


def test_witness_generation_rejects_bad_claims(node_json) -> None:  # type: ignore[no-untyped-def]
    results = node_json("witness_cases.mjs", {"wasm": str(ARTIFACTS.wasm), "cases": _cases()})
    assert results.pop("valid") == "ok"
    assert results.pop("valid_partial_claim") == "ok"
    accepted = [name for name, outcome in results.items() if not outcome.startswith("rejected: ")]
    assert accepted == [], f"circuit accepted bad claims: {accepted}"
    assert all("Assert Failed" in outcome for outcome in results.values()), results
