"""Prove a few claims against the committed artifacts, for tests and `crossclear bench zk`.

Writes tests/zk/fixtures/deposits.json (the tree's leaves and each claim's inputs) and
tests/zk/fixtures/proofs/NN/{proof.json,public.json}. Deposit data is fixed; the proofs are
randomized by snarkjs, so rerunning changes proof.json but not public.json. Rerun after
circuits/build.py changes the zkey (a test checks the fixtures still verify):

    .venv/bin/python circuits/scripts/make_fixture_proofs.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from crossclear.zk import IncrementalMerkleTree
from crossclear.zk.groth16 import proof_to_json
from crossclear.zk.prover import ClaimStatement, Deposit, prove_claim

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPOSITORY_ROOT / "tests" / "zk" / "fixtures"
PROOF_COUNT = 6
SOURCE_CHAIN_ID = 31337
VAULT = 0x5FBDB2315678AFECB367F032D93F642F64180AA3
ASSET = 0xE7F1725E7734CE288F8367E1BB143E90BB3F0512
DOMAIN = 0xC105C1EA


def deposits() -> list[Deposit]:
    return [
        Deposit(
            secret=1_000_003 * (index + 1) + 0xC0FFEE,
            account=0x70997970C51812DC3A010C7D01B50E0D17DC79C8 + index,
            asset=ASSET,
            amount=(index + 1) * 10**18,
            leaf_index=index,
            source_chain_id=SOURCE_CHAIN_ID,
            vault=VAULT,
        )
        for index in range(PROOF_COUNT)
    ]


def main() -> int:
    tree = IncrementalMerkleTree()
    all_deposits = deposits()
    for deposit in all_deposits:
        tree.insert(deposit.leaf)
    proofs_dir = FIXTURES / "proofs"
    shutil.rmtree(proofs_dir, ignore_errors=True)
    claims = []
    for deposit in all_deposits:
        statement = ClaimStatement(claimed_amount=deposit.amount // 2, domain=DOMAIN)
        proof, claim = prove_claim(deposit, tree.path(deposit.leaf_index), statement)
        folder = proofs_dir / f"{deposit.leaf_index:02d}"
        folder.mkdir(parents=True)
        (folder / "proof.json").write_text(json.dumps(proof_to_json(proof), indent=1) + "\n")
        (folder / "public.json").write_text(json.dumps(claim.to_json(), indent=1) + "\n")
        claims.append(
            {
                "secret": str(deposit.secret),
                "account": str(deposit.account),
                "asset": str(deposit.asset),
                "amount": str(deposit.amount),
                "leaf_index": deposit.leaf_index,
                "source_chain_id": deposit.source_chain_id,
                "vault": str(deposit.vault),
                "claimed_amount": str(statement.claimed_amount),
                "domain": str(statement.domain),
            }
        )
    document = {"leaves": [str(deposit.leaf) for deposit in all_deposits], "root": str(tree.root), "claims": claims}
    (FIXTURES / "deposits.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {PROOF_COUNT} proofs under {proofs_dir.relative_to(REPOSITORY_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
