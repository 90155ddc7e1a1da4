"""Groth16 verification in C on the committed circuit's real proofs (snarkjs), valid and
tampered, in agreement with the py_ecc backend; batch verification; key handling; CLI."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
from py_ecc.optimized_bn128 import optimized_curve as curve

from crossclear import _cli
from crossclear.zk import (
    MalformedProof,
    VerificationKey,
    check_well_formed,
    get_backend,
    load_proof,
    load_public_signals,
    load_verification_key,
    measure_claim_cpu,
)
from crossclear.zk.backends import Groth16Backend, ProofItem
from .reference import (
    P,
    R,
    g1_affine,
    g1_projective,
    g2_affine,
    random_twist_point,
    small_order_twist_point,
)

REPOSITORY = Path(__file__).resolve().parents[2]
VKEY = REPOSITORY / "circuits" / "artifacts" / "vkey.json"
PROOFS = REPOSITORY / "tests" / "zk" / "fixtures" / "proofs"


@pytest.fixture(scope="module")
def key() -> VerificationKey:
    return load_verification_key(VKEY)


@pytest.fixture(scope="module")
def items() -> list[ProofItem]:
    folders = sorted(path for path in PROOFS.iterdir() if (path / "proof.json").exists())
    assert folders, "fixture proofs missing"
    return [(load_proof(folder / "proof.json"), load_public_signals(folder / "public.json")) for folder in folders]


@pytest.fixture(scope="module")
def backend(native: ModuleType) -> Groth16Backend:
    from crossclear.zk import _bn254

    assert _bn254.lib is native.lib
    return get_backend("native")


def with_signal(signals: Sequence[int], index: int, value: int) -> tuple[int, ...]:
    changed = list(signals)
    changed[index] = value
    return tuple(changed)


def plus_generator(point: tuple[int, int]) -> tuple[int, int]:
    moved = g1_affine(curve.add(g1_projective(point), curve.G1))
    assert moved is not None
    return moved


def test_native_is_the_default_backend(backend: Groth16Backend) -> None:
    assert get_backend() is backend


def test_every_fixture_proof_verifies(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    for proof, signals in items:
        assert backend.verify(key, proof, signals) is True


def tampered_variants(items: list[ProofItem]) -> dict[str, ProofItem]:
    """Well-formed inputs that must fail the pairing check."""
    (proof, signals), (other_proof, other_signals) = items[0], items[1]
    return {
        "changed signal": (proof, with_signal(signals, 5, signals[5] + 1)),
        "another proof's signals": (proof, other_signals),
        "A and C swapped": (dataclasses.replace(proof, a=proof.c, c=proof.a), signals),
        "A perturbed": (dataclasses.replace(proof, a=plus_generator(proof.a)), signals),
        "C perturbed": (dataclasses.replace(proof, c=plus_generator(proof.c)), signals),
        "B from another proof": (dataclasses.replace(proof, b=other_proof.b), signals),
        "A negated": (dataclasses.replace(proof, a=(proof.a[0], P - proof.a[1])), signals),
    }


def test_tampered_proofs_are_rejected(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    for name, (proof, signals) in tampered_variants(items).items():
        assert backend.verify(key, proof, signals) is False, name


def test_py_ecc_backend_agrees_on_valid_and_tampered(key: VerificationKey, items: list[ProofItem]) -> None:
    native, reference = get_backend("native"), get_backend("py_ecc")
    cases = {"valid": items[0], **tampered_variants(items)}
    for name, (proof, signals) in cases.items():
        assert native.verify(key, proof, signals) == reference.verify(key, proof, signals), name


def malformed_variants(items: list[ProofItem]) -> dict[str, tuple[ProofItem, str]]:
    """Inputs rejected before any pairing, with the message both backends give."""
    proof, signals = items[0]
    rng = random.Random(5)
    off_subgroup = g2_affine(random_twist_point(rng))
    small_order = small_order_twist_point(rng)
    assert off_subgroup is not None
    (bx0, bx1), (by0, by1) = proof.b
    return {
        "aliased signal (s + r)": (
            (proof, with_signal(signals, 5, signals[5] + R)),
            "public signal 5 is not below the scalar field order r",
        ),
        "too few signals": ((proof, tuple(signals[:-1])), f"expected {len(signals)} public signals, got {len(signals) - 1}"),
        "too many signals": ((proof, (*signals, 1)), f"expected {len(signals)} public signals, got {len(signals) + 1}"),
        "negative signal": ((proof, with_signal(signals, 0, -1)), "public signal 0 is not below the scalar field order r"),
        "A coordinate aliased (x + p)": (
            (dataclasses.replace(proof, a=(proof.a[0] + P, proof.a[1])), signals),
            f"proof A: coordinate {proof.a[0] + P} is not below the base field order p",
        ),
        "A off the curve": (
            (dataclasses.replace(proof, a=(proof.a[0], (proof.a[1] + 1) % P)), signals),
            "proof A: point is not on the BN254 curve",
        ),
        "A at infinity": ((dataclasses.replace(proof, a=(0, 0)), signals), "proof A: point at infinity"),
        "C off the curve": (
            (dataclasses.replace(proof, c=(proof.c[0], (proof.c[1] + 1) % P)), signals),
            "proof C: point is not on the BN254 curve",
        ),
        "C at infinity": ((dataclasses.replace(proof, c=(0, 0)), signals), "proof C: point at infinity"),
        "B coordinate too large": (
            (dataclasses.replace(proof, b=((bx0, bx1), (by0, by1 + 2**300))), signals),
            f"proof B: coordinate {by1 + 2**300} is not below the base field order p",
        ),
        "B off the twist": (
            (dataclasses.replace(proof, b=((bx0, bx1), (by0, (by1 + 1) % P))), signals),
            "proof B: point is not on the BN254 twist",
        ),
        "B at infinity": ((dataclasses.replace(proof, b=((0, 0), (0, 0))), signals), "proof B: point at infinity"),
        "B outside the order-r subgroup": (
            (dataclasses.replace(proof, b=off_subgroup), signals),
            "proof B: point is not in the order-r subgroup of G2",
        ),
        "B of small order (10069)": (
            (dataclasses.replace(proof, b=small_order), signals),
            "proof B: point is not in the order-r subgroup of G2",
        ),
    }


MALFORMED_CASES = [
    "aliased signal (s + r)",
    "too few signals",
    "too many signals",
    "negative signal",
    "A coordinate aliased (x + p)",
    "A off the curve",
    "A at infinity",
    "C off the curve",
    "C at infinity",
    "B coordinate too large",
    "B off the twist",
    "B at infinity",
    "B outside the order-r subgroup",
    "B of small order (10069)",
]


@pytest.mark.parametrize("case", MALFORMED_CASES)
def test_malformed_input_is_rejected_with_the_same_message_as_py_ecc(
    backend: Groth16Backend, key: VerificationKey, items: list[ProofItem], case: str
) -> None:
    (proof, signals), message = malformed_variants(items)[case]
    with pytest.raises(MalformedProof) as native_error:
        backend.verify(key, proof, signals)
    assert str(native_error.value) == message
    with pytest.raises(MalformedProof) as reference_error:
        get_backend("py_ecc").verify(key, proof, signals)
    assert str(reference_error.value) == message


#: Cases check_well_formed (structural, no curve arithmetic) lets through to verify.
CURVE_CASES = [
    "A off the curve",
    "C off the curve",
    "B off the twist",
    "B outside the order-r subgroup",
    "B of small order (10069)",
]


@pytest.mark.parametrize("case", MALFORMED_CASES)
def test_claim_path_rejects_every_malformed_case(
    backend: Groth16Backend, key: VerificationKey, items: list[ProofItem], case: str
) -> None:
    # The node runs check_well_formed, then backend.verify: together they refuse every case
    # with the message verify alone gives; curve and subgroup cases get past the first.
    (proof, signals), message = malformed_variants(items)[case]
    if case in CURVE_CASES:
        check_well_formed(key, proof, signals)
    else:
        with pytest.raises(MalformedProof) as structural:
            check_well_formed(key, proof, signals)
        assert str(structural.value) == message
    with pytest.raises(MalformedProof) as raised:
        check_well_formed(key, proof, signals)
        backend.verify(key, proof, signals)
    assert str(raised.value) == message


def test_batch_refuses_curve_cases(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    variants = malformed_variants(items)
    batch = [items[0], *(variants[case][0] for case in CURVE_CASES), items[1]]
    assert backend.verify_batch(key, batch) == [True] + [False] * len(CURVE_CASES) + [True]


def test_claim_cpu_is_measured_on_the_claim_path(backend: Groth16Backend, key: VerificationKey) -> None:
    folder = sorted(path for path in PROOFS.iterdir() if (path / "proof.json").exists())[0]
    proof_document = json.loads((folder / "proof.json").read_text())
    public_document = json.loads((folder / "public.json").read_text())
    figures = measure_claim_cpu(proof_document, public_document, key, samples=30)
    assert set(figures) == {"p50", "p99"}
    assert 0 < figures["p50"] <= figures["p99"]
    # CPU time, so contention does not inflate it much; the old pure-Python subgroup check in
    # check_well_formed alone cost over 20 ms.
    assert figures["p50"] < 10.0
    changed = [*public_document[:5], str(int(public_document[5]) + 1), *public_document[6:]]
    with pytest.raises(ValueError, match="does not verify"):
        measure_claim_cpu(proof_document, changed, key, samples=1, backend=backend)
    with pytest.raises(MalformedProof):
        measure_claim_cpu(proof_document, public_document[:-1], key, samples=1)
    with pytest.raises(ValueError, match="samples"):
        measure_claim_cpu(proof_document, public_document, key, samples=0)


def test_batch_of_valid_proofs(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    batch = [items[i % len(items)] for i in range(8)]
    assert backend.verify_batch(key, batch) == [True] * 8


def test_batch_finds_the_bad_proofs(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    batch = [items[i % len(items)] for i in range(10)]
    tampered = tampered_variants(items)
    malformed = malformed_variants(items)
    batch[2] = tampered["changed signal"]
    batch[4] = malformed["B outside the order-r subgroup"][0]
    batch[6] = malformed["too few signals"][0]
    batch[7] = tampered["A and C swapped"]
    batch[9] = malformed["aliased signal (s + r)"][0]
    expected = [index not in (2, 4, 6, 7, 9) for index in range(10)]
    assert backend.verify_batch(key, batch) == expected


def test_batch_agrees_with_the_py_ecc_backend(key: VerificationKey, items: list[ProofItem]) -> None:
    batch = [items[i % len(items)] for i in range(6)]
    batch[1] = tampered_variants(items)["B from another proof"]
    batch[4] = malformed_variants(items)["B of small order (10069)"][0]
    expected = get_backend("py_ecc").verify_batch(key, batch)
    assert expected == [True, False, True, True, False, True]
    assert get_backend("native").verify_batch(key, batch) == expected


def combined_check(native: ModuleType, key: VerificationKey, batch: list[ProofItem]) -> int:
    from crossclear.zk import _native_backend as backend_module

    proofs = b"".join(backend_module._proof_bytes(proof) for proof, _ in batch)
    signals = b"".join(backend_module._signal_bytes(tuple(item_signals)) for _, item_signals in batch)
    statuses = native.ffi.new("int[]", len(batch))
    handle = backend_module._prepare_key(key).handle
    result: int = native.lib.bn254_op_batch_combined_check(handle, proofs, signals, key.public_count, len(batch), statuses)
    return result


def test_combined_batch_equation_itself(native: ModuleType, key: VerificationKey, items: list[ProofItem]) -> None:
    # The one-by-one fallback would hide a combined check that always fails; test it alone.
    batch = [items[i % len(items)] for i in range(6)]
    assert combined_check(native, key, batch) == 1
    assert combined_check(native, key, batch[:1]) == 1
    for name, bad in tampered_variants(items).items():
        assert combined_check(native, key, [*batch[:3], bad, *batch[3:]]) == 0, name


def test_batch_edges(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    assert backend.verify_batch(key, []) == []
    assert backend.verify_batch(key, [items[0]]) == [True]
    assert backend.verify_batch(key, [tampered_variants(items)["changed signal"]]) == [False]
    assert backend.verify_batch(key, [malformed_variants(items)["A at infinity"][0]] * 3) == [False] * 3


def test_key_precomputation_is_cached(key: VerificationKey) -> None:
    from crossclear.zk import _native_backend

    assert _native_backend._prepare_key(key) is _native_backend._prepare_key(key)


def test_key_with_delta_equal_to_gamma_is_refused(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    forgeable = dataclasses.replace(key, delta_g2=key.gamma_g2)
    with pytest.raises(MalformedProof, match="delta equals gamma"):
        backend.verify(forgeable, *items[0])


def test_key_with_a_point_off_the_curve_is_refused(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem]) -> None:
    broken = dataclasses.replace(key, ic=(key.ic[0], (key.ic[1][0], (key.ic[1][1] + 1) % P), *key.ic[2:]))
    with pytest.raises(MalformedProof, match="verification key"):
        backend.verify(broken, *items[0])
    stranger = g2_affine(random_twist_point(random.Random(1)))
    assert stranger is not None
    outside = dataclasses.replace(key, beta_g2=stranger)
    with pytest.raises(MalformedProof, match="verification key"):
        backend.verify(outside, *items[0])


def test_cli_verify_with_the_native_backend(tmp_path: Path, items: list[ProofItem], capsys: pytest.CaptureFixture[str]) -> None:
    folder = sorted(path for path in PROOFS.iterdir() if (path / "proof.json").exists())[0]
    arguments = ["zk", "verify", "--backend", "native", "--vkey", str(VKEY), "--proof", str(folder / "proof.json")]
    assert _cli.main([*arguments, "--public", str(folder / "public.json")]) == 0
    signals = json.loads((folder / "public.json").read_text())
    signals[5] = str(int(signals[5]) + 1)
    (tmp_path / "changed.json").write_text(json.dumps(signals))
    assert _cli.main([*arguments, "--public", str(tmp_path / "changed.json")]) == 1
    signals[5] = str(int(signals[5]) + R)
    (tmp_path / "aliased.json").write_text(json.dumps(signals))
    assert _cli.main([*arguments, "--public", str(tmp_path / "aliased.json")]) == 2
    assert "not below the scalar field order r" in capsys.readouterr().err


def test_every_malformed_case_is_listed(items: list[ProofItem]) -> None:
    assert sorted(malformed_variants(items)) == sorted(MALFORMED_CASES)
