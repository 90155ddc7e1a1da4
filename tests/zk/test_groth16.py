"""Groth16 parsing, validation and verification with the py_ecc backend, on real proofs."""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128 import optimized_curve as curve
from py_ecc.optimized_bn128 import optimized_pairing

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
    check_well_formed,
    parse_proof,
    parse_public_signals,
    parse_verification_key,
    register_backend,
)
from crossclear.zk import _pairing, backends, groth16
from crossclear.zk.artifacts import default_artifacts

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "proofs"
BACKEND = get_backend("py_ecc")


@pytest.fixture(scope="module")
def key() -> VerificationKey:
    return load_verification_key(default_artifacts().verification_key)


@pytest.fixture(scope="module")
def items() -> list[tuple[Proof, tuple[int, ...]]]:
    return [
        (load_proof(folder / "proof.json"), load_public_signals(folder / "public.json"))
        for folder in sorted(FIXTURES.iterdir())
    ]


def test_fixture_proofs_verify_in_one_batch(key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]]) -> None:
    assert len(items) >= 4
    assert BACKEND.verify_batch(key, items) == [True] * len(items)


def test_single_verify_and_domain_binding(key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]]) -> None:
    proof, signals = items[0]
    assert BACKEND.verify(key, proof, signals)
    claim = ClaimPublicSignals.from_signals(signals)
    other_domain = replace(claim, domain=claim.domain + 1).to_signals()
    assert not BACKEND.verify(key, proof, other_domain)


def _tampered(items: list[tuple[Proof, tuple[int, ...]]]) -> dict[str, tuple[Proof, tuple[int, ...]]]:
    (proof, signals), (other_proof, other_signals) = items[0], items[1]
    claim = ClaimPublicSignals.from_signals(signals)
    negated_a = (proof.a[0], BASE_FIELD - proof.a[1])
    return {
        "more_claimed": (proof, replace(claim, claimed_amount=claim.claimed_amount + 1).to_signals()),
        "other_nullifier": (proof, replace(claim, nullifier=claim.nullifier + 1).to_signals()),
        "other_signals": (proof, other_signals),
        "swapped_a_c": (replace(proof, a=proof.c, c=proof.a), signals),
        "other_b": (replace(proof, b=other_proof.b), signals),
        "negated_a": (replace(proof, a=negated_a), signals),
    }


def test_tampered_proofs_fail(key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]]) -> None:
    tampered = _tampered(items)
    for name, (proof, signals) in list(tampered.items())[:2]:
        assert not BACKEND.verify(key, proof, signals), name
    # The rest through one batch: its fallback must find every bad item among good ones.
    batch = [items[2], *list(tampered.values())[2:], items[3]]
    assert BACKEND.verify_batch(key, batch) == [True] + [False] * (len(batch) - 2) + [True]


def _fp2_sqrt(value: Any) -> Any:
    # p = 3 mod 4: Algorithm 9 of Adj and Rodriguez-Henriquez, "Square root computation over
    # even extension fields".
    p = BASE_FIELD
    a1 = value ** ((p - 3) // 4)
    alpha = a1 * a1 * value
    x0 = a1 * value
    if alpha == FQ2([p - 1, 0]):
        return FQ2([0, 1]) * x0
    return (FQ2.one() + alpha) ** ((p - 1) // 2) * x0


def _twist_point_outside_subgroup() -> tuple[tuple[int, int], tuple[int, int]]:
    for x0 in range(1, 100):
        x = FQ2([x0, 1])
        y = _fp2_sqrt(x**3 + curve.b2)
        if y * y != x**3 + curve.b2:
            continue
        point = (x, y, FQ2.one())
        assert curve.is_on_curve(point, curve.b2)
        if not curve.is_inf(curve.multiply(point, curve.curve_order)):
            return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))
    raise AssertionError("no twist point found")


def _malformed(items: list[tuple[Proof, tuple[int, ...]]]) -> dict[str, tuple[Proof, tuple[int, ...], str]]:
    proof, signals = items[0]
    (bx0, bx1), (by0, by1) = proof.b
    return {
        "too_few_signals": (proof, signals[:-1], "expected 8 public signals, got 7"),
        "too_many_signals": (proof, (*signals, 0), "expected 8 public signals, got 9"),
        "signal_equal_r": (proof, (SCALAR_FIELD, *signals[1:]), "not below the scalar field order"),
        "aliased_signal": (proof, (*signals[:7], signals[7] + SCALAR_FIELD), "not below the scalar field order"),
        "coordinate_above_p": (replace(proof, a=(proof.a[0] + BASE_FIELD, proof.a[1])), signals, "base field order"),
        "b_coordinate_above_p": (replace(proof, b=((bx0, bx1 + BASE_FIELD), (by0, by1))), signals, "base field order"),
        "a_off_curve": (replace(proof, a=(proof.a[0], proof.a[1] + 1)), signals, "proof A: point is not on"),
        "c_off_curve": (replace(proof, c=(proof.c[0], proof.c[1] + 1)), signals, "proof C: point is not on"),
        "a_at_infinity": (replace(proof, a=(0, 0)), signals, "proof A: point at infinity"),
        "c_at_infinity": (replace(proof, c=(0, 0)), signals, "proof C: point at infinity"),
        "b_off_twist": (replace(proof, b=((bx0, bx1), (by0, by1 + 1))), signals, "not on the BN254 twist"),
        "b_in_solidity_order": (replace(proof, b=((bx1, bx0), (by1, by0))), signals, "not on the BN254 twist"),
        "b_outside_subgroup": (replace(proof, b=_twist_point_outside_subgroup()), signals, "order-r subgroup"),
    }


def test_malformed_inputs_are_rejected_before_pairing(
    key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pairing(*_: object) -> bool:
        raise AssertionError("a malformed input reached the pairing")

    monkeypatch.setattr(_pairing, "pairing_product_is_one", no_pairing)
    cases = _malformed(items)
    for name, (proof, signals, reason) in cases.items():
        with pytest.raises(MalformedProof, match=reason) as raised:
            BACKEND.verify(key, proof, signals)
        assert "\n" not in str(raised.value), name
    # In a batch, malformed items are simply False, and nothing reaches a pairing.
    batch = [(proof, signals) for proof, signals, _ in cases.values()]
    assert BACKEND.verify_batch(key, batch) == [False] * len(batch)


#: The _malformed cases only curve arithmetic can see: `check_well_formed` lets them through
#: and every backend's verify refuses them.
CURVE_CASES = {"a_off_curve", "c_off_curve", "b_off_twist", "b_in_solidity_order", "b_outside_subgroup"}


def test_check_well_formed_is_structural_and_verify_checks_the_curve(
    key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = _malformed(items)
    assert CURVE_CASES <= set(cases)

    def no_curve_arithmetic(*_: object) -> object:
        raise AssertionError("check_well_formed did curve arithmetic")

    with monkeypatch.context() as patch:
        for name in ("is_on_curve", "multiply", "add", "double", "is_inf"):
            patch.setattr(curve, name, no_curve_arithmetic)  # the module groth16 uses
        patch.setattr(groth16, "g2_to_py_ecc", no_curve_arithmetic)
        check_well_formed(key, *items[0])
        for name, (proof, signals, reason) in cases.items():
            if name in CURVE_CASES:
                check_well_formed(key, proof, signals)
            else:
                with pytest.raises(MalformedProof, match=reason):
                    check_well_formed(key, proof, signals)
    # The claim path (check_well_formed, then verify) still refuses every case, with the
    # same message as before the split.
    monkeypatch.setattr(_pairing, "pairing_product_is_one", no_curve_arithmetic)
    for name, (proof, signals, reason) in cases.items():
        with pytest.raises(MalformedProof, match=reason):
            check_well_formed(key, proof, signals)
            BACKEND.verify(key, proof, signals)
    curve_batch = [(proof, signals) for name, (proof, signals, _) in cases.items() if name in CURVE_CASES]
    assert BACKEND.verify_batch(key, curve_batch) == [False] * len(curve_batch)


def test_point_at_infinity_in_affine_form_is_structural(key: VerificationKey, items: list[tuple[Proof, tuple[int, ...]]]) -> None:
    proof, signals = items[0]
    with pytest.raises(MalformedProof, match="proof B: point at infinity"):
        check_well_formed(key, replace(proof, b=((0, 0), (0, 0))), signals)


def test_parse_errors_name_the_value() -> None:
    document = json.loads((FIXTURES / "00" / "proof.json").read_text())
    document["pi_b"][1][0] = "0x1"
    with pytest.raises(MalformedProof, match=r"^proof pi_b\[1\]\[0\]: expected a decimal integer, got '0x1'$"):
        parse_proof(document)
    with pytest.raises(MalformedProof, match=r"^public signals\[2\]: expected a decimal integer, got True$"):
        parse_public_signals(["1", "2", True])
    with pytest.raises(MalformedProof, match=r"^public signals\[0\]: expected a decimal integer"):
        parse_public_signals(["9" * 81])
    assert parse_public_signals(["007", 5]) == (7, 5)


def _proof_document(items: list[tuple[Proof, tuple[int, ...]]]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / "00" / "proof.json").read_text())
    return document


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("pi_b"), "missing 'pi_b'"),
        (lambda d: d.__setitem__("pi_a", d["pi_a"][:2]), "expected a list of 3"),
        (lambda d: d.__setitem__("pi_a", ["0", "1", "0"]), "point at infinity"),
        (lambda d: d.__setitem__("pi_c", [d["pi_c"][0], d["pi_c"][1], "2"]), "affine"),
        (lambda d: d["pi_a"].__setitem__(0, "0x1f"), "decimal integer"),
        (lambda d: d["pi_a"].__setitem__(0, "-5"), "decimal integer"),
        (lambda d: d["pi_a"].__setitem__(0, 1.5), "decimal integer"),
        (lambda d: d.__setitem__("protocol", "plonk"), "expected groth16"),
    ],
)
def test_proof_json_shape_errors(items: list[tuple[Proof, tuple[int, ...]]], mutate: Any, reason: str) -> None:
    document = _proof_document(items)
    mutate(document)
    with pytest.raises(MalformedProof, match=reason):
        parse_proof(document)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(MalformedProof, match="cannot read JSON"):
        load_proof(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MalformedProof, match="cannot read JSON"):
        load_public_signals(tmp_path / "bad.json")
    (tmp_path / "object.json").write_text("{}")
    with pytest.raises(MalformedProof, match="expected a JSON list"):
        load_public_signals(tmp_path / "object.json")


def test_key_without_phase2_contribution_is_refused() -> None:
    document = json.loads(default_artifacts().verification_key.read_text())
    document["vk_delta_2"] = document["vk_gamma_2"]
    with pytest.raises(MalformedProof, match="delta equals gamma"):
        parse_verification_key(document)
    document = json.loads(default_artifacts().verification_key.read_text())
    document["IC"] = document["IC"][:-1]
    with pytest.raises(MalformedProof, match="nPublic is 8 but IC has 8 points"):
        parse_verification_key(document)


def test_pairing_matches_py_ecc() -> None:
    q = curve.multiply(curve.G2, 1234567)
    p = curve.multiply(curve.G1, 7654321)
    qx, qy = curve.normalize(q)
    px, py = curve.normalize(p)
    ours = _pairing.pairing((qx, qy, FQ2.one()), (int(px), int(py)))
    assert ours == optimized_pairing.pairing(q, p)


def test_backend_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fake:
        def verify(self, key: VerificationKey, proof: Proof, public_signals: Any) -> bool:
            return True

        def verify_batch(self, key: VerificationKey, items: Any) -> list[bool]:
            return [True] * len(items)

    monkeypatch.setattr(backends, "_factories", dict(backends._factories))
    monkeypatch.setattr(backends, "_instances", {})
    register_backend("native", Fake)
    assert backends.default_backend_name() == "native"
    assert isinstance(get_backend(), Fake)
    assert get_backend("py_ecc") is not None
    with pytest.raises(KeyError, match="no Groth16 backend 'missing'"):
        get_backend("missing")


def test_missing_native_extension_falls_back_to_py_ecc(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing_extension(name: str) -> None:
        raise ImportError(f"No module named '{name}._bn254'")

    monkeypatch.setattr(backends, "_factories", {"py_ecc": backends._factories["py_ecc"]})
    monkeypatch.setattr(backends, "_instances", {})
    monkeypatch.setattr(backends, "_optional_errors", {})
    monkeypatch.setattr(backends, "_optional_loaded", False)
    monkeypatch.setattr(importlib, "import_module", missing_extension)  # what backends calls
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert backends.default_backend_name() == "py_ecc"
    assert backends.available_backends() == ["py_ecc"]
    assert "_bn254" in backends.optional_backend_errors()["crossclear.zk._native_backend"]
