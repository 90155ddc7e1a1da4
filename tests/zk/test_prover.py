"""The prover refuses unsatisfiable claims with a clear sentence, before or inside snarkjs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from crossclear.zk import IncrementalMerkleTree
from crossclear.zk.prover import ClaimStatement, Deposit, ProverError, check_claim, circuit_input, prove_input

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def setup() -> tuple[Deposit, IncrementalMerkleTree]:
    document = json.loads((FIXTURES / "deposits.json").read_text())
    tree = IncrementalMerkleTree()
    for leaf in document["leaves"]:
        tree.insert(int(leaf))
    claim = document["claims"][1]
    deposit = Deposit(
        secret=int(claim["secret"]),
        account=int(claim["account"]),
        asset=int(claim["asset"]),
        amount=int(claim["amount"]),
        leaf_index=claim["leaf_index"],
        source_chain_id=claim["source_chain_id"],
        vault=int(claim["vault"]),
    )
    return deposit, tree


def test_fixture_claims_pass_the_python_checks(setup: tuple[Deposit, IncrementalMerkleTree]) -> None:
    deposit, tree = setup
    check_claim(deposit, tree.path(deposit.leaf_index), ClaimStatement(deposit.amount, 1))


@pytest.mark.parametrize(
    ("change", "claimed", "reason"),
    [
        ({}, None, "exceeds the deposit amount"),
        ({"amount": 1 << 252}, 1, r"outside 0 \.\. 2\^252 - 1"),
        ({"account": 1 << 160}, 1, "account is not a 160-bit address"),
        ({"secret": 5}, 1, "is not the leaf at index 1"),
        ({"leaf_index": 0}, 1, "does not match the Merkle path"),
    ],
)
def test_python_checks_name_the_problem(
    setup: tuple[Deposit, IncrementalMerkleTree], change: dict[str, int], claimed: int | None, reason: str
) -> None:
    deposit, tree = setup
    path = tree.path(deposit.leaf_index)
    statement = ClaimStatement(deposit.amount + 1 if claimed is None else claimed, 1)
    with pytest.raises(ProverError, match=reason):
        check_claim(replace(deposit, **change), path, statement)


def test_path_not_reaching_root(setup: tuple[Deposit, IncrementalMerkleTree]) -> None:
    deposit, tree = setup
    path = tree.path(deposit.leaf_index)
    with pytest.raises(ProverError, match="does not lead from the deposit's leaf to the root"):
        check_claim(deposit, replace(path, root=path.root + 1), ClaimStatement(1, 1))


def test_snarkjs_rejection_is_one_line(setup: tuple[Deposit, IncrementalMerkleTree]) -> None:
    deposit, tree = setup
    document = circuit_input(deposit, tree.path(deposit.leaf_index), ClaimStatement(1, 1))
    document["claimedAmount"] = str(deposit.amount + 1)
    with pytest.raises(ProverError, match="snarkjs witness failed: .*Assert Failed") as raised:
        prove_input(document)
    assert "\n" not in str(raised.value)


def test_deposit_file_with_path_instead_of_leaves(setup: tuple[Deposit, IncrementalMerkleTree], tmp_path: Path) -> None:
    from crossclear.zk._cli import read_deposit_file

    deposit, tree = setup
    path = tree.path(deposit.leaf_index)
    document = {
        "secret": str(deposit.secret),
        "account": "0x" + format(deposit.account, "040x"),
        "asset": deposit.asset,
        "amount": hex(deposit.amount),
        "leaf_index": deposit.leaf_index,
        "source_chain_id": deposit.source_chain_id,
        "vault": str(deposit.vault),
        "path_elements": [str(element) for element in path.path_elements],
        "root": str(path.root),
    }
    (tmp_path / "deposit.json").write_text(json.dumps(document))
    assert read_deposit_file(tmp_path / "deposit.json") == (deposit, path)
