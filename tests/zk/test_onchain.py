"""The exported Solidity verifier, deployed on anvil, agrees with the Python verifier on
valid, invalid and malformed proofs (calldata with B's Fp2 halves as [c1, c0])."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from crossclear.devnet.anvil import Anvil
from crossclear.zk import (
    BASE_FIELD,
    SCALAR_FIELD,
    ClaimPublicSignals,
    MalformedProof,
    Proof,
    VerificationKey,
    get_backend,
    load_proof,
    load_public_signals,
    load_verification_key,
)
from crossclear.zk.artifacts import default_artifacts

from .test_groth16 import _twist_point_outside_subgroup

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "proofs"
SELECTOR = Web3.keccak(text="verifyProof(uint256[2],uint256[2][2],uint256[2],uint256[8])")[:4]


def verifier_calldata(proof: Proof, signals: tuple[int, ...]) -> str:
    (bx0, bx1), (by0, by1) = proof.b
    # The precompile (EIP-197) takes Fp2 as (imaginary, real): snarkjs' [c0, c1] reversed.
    words = [*proof.a, bx1, bx0, by1, by0, *proof.c, *signals]
    # Out-of-range test values must still fit a uint256 word.
    return "0x" + SELECTOR.hex() + "".join(format(word % (1 << 256), "064x") for word in words)


@pytest.fixture(scope="module")
def verifier(node_json) -> Iterator[tuple[Anvil, str]]:  # type: ignore[no-untyped-def]
    bytecode = node_json("compile_verifier.mjs", {"source": str(default_artifacts().solidity_verifier)})["bytecode"]
    with Anvil(chain_id=31337) as chain:
        accounts = chain.rpc("eth_accounts")
        assert isinstance(accounts, list)
        transaction = chain.rpc("eth_sendTransaction", [{"from": accounts[0], "data": bytecode, "gas": hex(3_000_000)}])
        receipt = None
        for _ in range(100):
            # anvil mines on its own timer thread; the receipt can lag the send by a moment.
            receipt = chain.rpc("eth_getTransactionReceipt", [transaction])
            if receipt is not None:
                break
            time.sleep(0.05)
        assert isinstance(receipt, dict) and receipt["status"] == "0x1"
        yield chain, receipt["contractAddress"]


def _on_chain_accepts(verifier: tuple[Anvil, str], proof: Proof, signals: tuple[int, ...]) -> bool:
    chain, address = verifier
    result = chain.rpc("eth_call", [{"to": address, "data": verifier_calldata(proof, signals)}, "latest"])
    assert isinstance(result, str)
    return int(result, 16) == 1


def _python_accepts(key: VerificationKey, proof: Proof, signals: tuple[int, ...]) -> bool:
    try:
        return get_backend("py_ecc").verify(key, proof, signals)
    except MalformedProof:
        return False


@pytest.mark.slow
def test_chain_and_python_agree(verifier: tuple[Anvil, str]) -> None:
    key = load_verification_key(default_artifacts().verification_key)
    proof = load_proof(FIXTURES / "00" / "proof.json")
    signals = load_public_signals(FIXTURES / "00" / "public.json")
    other_signals = load_public_signals(FIXTURES / "01" / "public.json")
    claim = ClaimPublicSignals.from_signals(signals)
    (bx0, bx1), (by0, by1) = proof.b
    cases: dict[str, tuple[Proof, tuple[int, ...], bool]] = {
        "valid": (proof, signals, True),
        "more_claimed": (proof, replace(claim, claimed_amount=claim.claimed_amount + 1).to_signals(), False),
        "other_domain": (proof, replace(claim, domain=claim.domain + 1).to_signals(), False),
        "other_signals": (proof, other_signals, False),
        "aliased_signal": (proof, (*signals[:7], signals[7] + SCALAR_FIELD), False),
        "b_halves_swapped": (replace(proof, b=((bx1, bx0), (by1, by0))), signals, False),
        "a_off_curve": (replace(proof, a=(proof.a[0], proof.a[1] + 1)), signals, False),
        "a_coordinate_above_p": (replace(proof, a=(proof.a[0] + BASE_FIELD, proof.a[1])), signals, False),
        "b_outside_subgroup": (replace(proof, b=_twist_point_outside_subgroup()), signals, False),
    }
    for name, (case_proof, case_signals, expected) in cases.items():
        on_chain = _on_chain_accepts(verifier, case_proof, case_signals)
        in_python = _python_accepts(key, case_proof, case_signals)
        assert on_chain == in_python == expected, f"{name}: chain {on_chain}, python {in_python}, expected {expected}"
