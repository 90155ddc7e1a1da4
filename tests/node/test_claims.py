"""Claims: verified against certified roots, credited exactly once, every rejection named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crossclear.node.claims import ClaimLedger, ClaimProcessor, CollateralToken, RejectReason
from crossclear.zk import SCALAR_FIELD, load_verification_key
from crossclear.zk.artifacts import default_artifacts

from .test_clearing import make_state

FIXTURES = Path(__file__).resolve().parents[1] / "zk" / "fixtures"
DEPOSITS = json.loads((FIXTURES / "deposits.json").read_text())
CHAIN, VAULT, ASSET, DOMAIN = 31337, 0x5FBDB2315678AFECB367F032D93F642F64180AA3, 0xE7F1725E7734CE288F8367E1BB143E90BB3F0512, 0xC105C1EA
ROOT = int(DEPOSITS["root"])


class Roots:
    """The certified-roots view the attestation store provides, as a plain set for these tests."""

    def __init__(self, *roots: tuple[int, int, int]) -> None:
        self.roots = set(roots)

    def is_certified(self, chain_id: int, vault: int, root: int) -> bool:
        return (chain_id, vault, root) in self.roots


def fixture(index: int) -> tuple[Any, Any]:
    folder = FIXTURES / "proofs" / f"{index:02d}"
    return json.loads((folder / "proof.json").read_text()), json.loads((folder / "public.json").read_text())


def processor(tmp_path: Path, name: str = "node", domain: int = DOMAIN, certified: bool = True) -> ClaimProcessor:
    state = make_state()
    token = CollateralToken(CHAIN, VAULT, ASSET, "WETH", 18)
    roots = Roots((CHAIN, VAULT, ROOT)) if certified else Roots()
    return ClaimProcessor(load_verification_key(default_artifacts().verification_key), domain, {(CHAIN, VAULT, ASSET): token}, roots, ClaimLedger(tmp_path / f"{name}.sqlite"), state)


def held(node: ClaimProcessor, account: str) -> float:
    state = node._state  # the test looks at what the node credited
    return sum(line.amount for line in state.margin(account).collateral) if account in state.accounts() else 0.0


def test_valid_claim_is_credited_once_and_replays_are_refused(tmp_path: Path) -> None:
    node = processor(tmp_path)
    outcome = node.submit(*fixture(0))
    assert outcome.accepted, outcome.detail
    account = f"{outcome.claim.account:#042x}"
    assert held(node, account) == pytest.approx(0.5)
    replay = node.submit(*fixture(0))
    assert (replay.accepted, replay.reason) == (False, RejectReason.NULLIFIER_USED)
    assert held(node, account) == pytest.approx(0.5)
    assert node.get(outcome.claim.nullifier).amount == pytest.approx(0.5)

    # Another node checks the same claim itself and credits it once too.
    other = processor(tmp_path, "other")
    assert other.submit(*fixture(0)).accepted
    assert other.submit(*fixture(0)).reason == RejectReason.NULLIFIER_USED


def test_restart_restores_credits_without_doubling(tmp_path: Path) -> None:
    node = processor(tmp_path)
    assert node.submit(*fixture(1)).accepted
    restarted = processor(tmp_path)
    assert restarted.restore() == 1
    account = f"{0x70997970C51812DC3A010C7D01B50E0D17DC79C8 + 1:#042x}"
    assert held(restarted, account) == pytest.approx(1.0)
    assert restarted.submit(*fixture(1)).reason == RejectReason.NULLIFIER_USED
    assert held(restarted, account) == pytest.approx(1.0)


def rejected(node: ClaimProcessor, proof: Any, public: Any, reason: RejectReason, fragment: str) -> None:
    height = node._state.height
    outcome = node.submit(proof, public)
    assert (outcome.accepted, outcome.reason) == (False, reason), outcome.detail
    assert fragment in outcome.detail
    assert node._state.height == height and node._state.accounts() == []


def test_uncertified_root_is_refused(tmp_path: Path) -> None:
    rejected(processor(tmp_path, certified=False), *fixture(2), RejectReason.UNCERTIFIED_ROOT, "has no quorum certificate")


def test_other_domain_is_refused(tmp_path: Path) -> None:
    rejected(processor(tmp_path, domain=DOMAIN + 1), *fixture(2), RejectReason.WRONG_DOMAIN, "bound to domain")


def test_aliased_signal_is_refused_before_any_pairing(tmp_path: Path) -> None:
    proof, public = fixture(2)
    aliased = list(public)
    aliased[5] = str(int(aliased[5]) + SCALAR_FIELD)
    rejected(processor(tmp_path), proof, aliased, RejectReason.MALFORMED, "")


def test_tampered_amount_fails_verification(tmp_path: Path) -> None:
    proof, public = fixture(3)
    inflated = list(public)
    inflated[5] = str(int(inflated[5]) * 2)
    rejected(processor(tmp_path), proof, inflated, RejectReason.INVALID_PROOF, "does not verify")


def test_garbage_is_malformed(tmp_path: Path) -> None:
    rejected(processor(tmp_path), {"pi_a": "nope"}, ["1"], RejectReason.MALFORMED, "")
    proof, public = fixture(4)
    rejected(processor(tmp_path), proof, public[:-1], RejectReason.MALFORMED, "")


def test_zero_amount_claim_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    proof, public = fixture(5)
    zero = list(public)
    zero[5] = "0"
    node = processor(tmp_path)
    rejected(node, proof, zero, RejectReason.MALFORMED, "claimed amount is 0")
    assert node._ledger.all() == []
