"""Groth16 over BN254: key and proof types, snarkjs JSON loaders, and input validation.

API (what every verifier backend shares):

- `VerificationKey`, `Proof`: frozen dataclasses of ints in affine form. G1 points are
  `(x, y)`; G2 points are `((x_c0, x_c1), (y_c0, y_c1))`, the order snarkjs writes them
  (an Fp2 element c0 + c1*i is `[c0, c1]`). Neither may hold the point at infinity.
- `load_verification_key(path)`, `load_proof(path)`, `load_public_signals(path)` read the
  snarkjs files (`vkey.json`, `proof.json`, `public.json`); `parse_*` take the decoded JSON.
  Anything unreadable or mis-shaped raises `MalformedProof` with a one-line reason.
- `check_well_formed(vk, proof, public_signals)` is the cheap structural check (a few
  microseconds, no curve arithmetic): it raises `MalformedProof` unless the signal count
  matches the key, every signal is < r, every coordinate is < p and no point is the
  all-zero encoding of infinity.
- `check_proof_points(proof)` raises `MalformedProof` unless A and C are on the curve and B
  is on the twist and in the order-r subgroup. It is pure Python (tens of milliseconds, the
  [r]B test); the py_ecc backend calls it, the native backend does the same checks in C.
  Every backend's `verify` / `verify_batch` refuses off-curve and off-subgroup points
  itself, so `check_well_formed` followed by `verify` rejects everything the old combined
  check did, and a pairing never sees such a point.

Verifying lives in `crossclear.zk.backends` (`get_backend(name).verify(...)`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128 import optimized_curve as curve

from crossclear.zk.poseidon import SNARK_SCALAR_FIELD

#: BN254 scalar field order r: public signals must be below it.
SCALAR_FIELD = SNARK_SCALAR_FIELD
#: BN254 base field order p: point coordinates must be below it.
BASE_FIELD = 21888242871839275222246405745257275088696311157297823662689037894645226208583

G1Point = tuple[int, int]
G2Point = tuple[tuple[int, int], tuple[int, int]]


class MalformedProof(ValueError):
    """A key, proof or public-signal input rejected before any pairing; str() is one line."""


@dataclass(frozen=True)
class VerificationKey:
    """A Groth16 verification key (snarkjs `vkey.json`)."""

    alpha_g1: G1Point
    """vk_alpha_1."""
    beta_g2: G2Point
    """vk_beta_2."""
    gamma_g2: G2Point
    """vk_gamma_2."""
    delta_g2: G2Point
    """vk_delta_2 (must differ from gamma: equal keys mean no phase-2 contribution)."""
    ic: tuple[G1Point, ...]
    """IC[0] plus one point per public signal."""

    @property
    def public_count(self) -> int:
        return len(self.ic) - 1


@dataclass(frozen=True)
class Proof:
    """A Groth16 proof (snarkjs `proof.json`)."""

    a: G1Point
    """pi_a."""
    b: G2Point
    """pi_b, G2 in snarkjs order [c0, c1]."""
    c: G1Point
    """pi_c."""


# -- parsing ---------------------------------------------------------------------------------


def _integer(value: Any, where: str, index: int | None = None) -> int:
    # snarkjs writes decimal strings; accept ints too, refuse floats, hex and signs so one
    # value has one spelling. The location (`where`, `[index]`) is only formatted on error:
    # this runs for every coordinate and signal of every claim.
    if isinstance(value, str):
        if len(value) <= 80 and value.isascii() and value.isdigit():
            return int(value)
    elif type(value) is int:
        return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    place = where if index is None else f"{where}[{index}]"
    if isinstance(value, bool):
        raise MalformedProof(f"{place}: expected a decimal integer, got {value!r}")
    raise MalformedProof(f"{place}: expected a decimal integer, got {str(value)[:40]!r}")


def _sequence(value: Any, length: int, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise MalformedProof(f"{where}: expected a list of {length}, got {str(value)[:60]!r}")
    return value


def _g1(value: Any, where: str) -> G1Point:
    # snarkjs writes projective [x, y, z] with z = 1; z = 0 is the point at infinity.
    x_value, y_value, z_value = _sequence(value, 3, where)
    x, y, z = _integer(x_value, where, 0), _integer(y_value, where, 1), _integer(z_value, where, 2)
    if z == 0:
        raise MalformedProof(f"{where}: point at infinity")
    if z != 1:
        raise MalformedProof(f"{where}: expected affine coordinates (z = 1), got z = {z}")
    return (x, y)


def _fp2(value: Any, where: str) -> tuple[int, int]:
    c0_value, c1_value = _sequence(value, 2, where)
    return (_integer(c0_value, where, 0), _integer(c1_value, where, 1))


def _g2(value: Any, where: str) -> G2Point:
    x_value, y_value, z_value = _sequence(value, 3, where)
    z = _fp2(z_value, f"{where}[2]")
    if z == (0, 0):
        raise MalformedProof(f"{where}: point at infinity")
    if z != (1, 0):
        raise MalformedProof(f"{where}: expected affine coordinates (z = [1, 0]), got z = {list(z)}")
    return (_fp2(x_value, f"{where}[0]"), _fp2(y_value, f"{where}[1]"))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedProof(f"{where}: expected a JSON object")
    return value


def _field(document: dict[str, Any], key: str, where: str) -> Any:
    if key not in document:
        raise MalformedProof(f"{where}: missing {key!r}")
    return document[key]


def _check_protocol(document: dict[str, Any], where: str) -> None:
    protocol = document.get("protocol", "groth16")
    curve_name = document.get("curve", "bn128")
    if protocol != "groth16" or curve_name not in ("bn128", "bn254"):
        raise MalformedProof(f"{where}: expected groth16 on bn128, got {protocol} on {curve_name}")


def parse_verification_key(document: Any, where: str = "verification key") -> VerificationKey:
    document = _object(document, where)
    _check_protocol(document, where)
    ic_value = _field(document, "IC", where)
    if not isinstance(ic_value, list) or not ic_value:
        raise MalformedProof(f"{where}: IC must be a non-empty list")
    key = VerificationKey(
        alpha_g1=_g1(_field(document, "vk_alpha_1", where), f"{where} vk_alpha_1"),
        beta_g2=_g2(_field(document, "vk_beta_2", where), f"{where} vk_beta_2"),
        gamma_g2=_g2(_field(document, "vk_gamma_2", where), f"{where} vk_gamma_2"),
        delta_g2=_g2(_field(document, "vk_delta_2", where), f"{where} vk_delta_2"),
        ic=tuple(_g1(point, f"{where} IC[{i}]") for i, point in enumerate(ic_value)),
    )
    declared = document.get("nPublic", key.public_count)
    if declared != key.public_count:
        raise MalformedProof(f"{where}: nPublic is {declared} but IC has {len(key.ic)} points (needs nPublic + 1)")
    check_key(key, where)
    return key


def parse_proof(document: Any, where: str = "proof") -> Proof:
    document = _object(document, where)
    _check_protocol(document, where)
    return Proof(
        a=_g1(_field(document, "pi_a", where), f"{where} pi_a"),
        b=_g2(_field(document, "pi_b", where), f"{where} pi_b"),
        c=_g1(_field(document, "pi_c", where), f"{where} pi_c"),
    )


def parse_public_signals(document: Any, where: str = "public signals") -> tuple[int, ...]:
    if not isinstance(document, list):
        raise MalformedProof(f"{where}: expected a JSON list of decimal strings")
    return tuple([_integer(value, where, i) for i, value in enumerate(document)])


def _read_json(path: Path | str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise MalformedProof(f"{what} {path}: cannot read JSON ({reason})") from None


def load_verification_key(path: Path | str) -> VerificationKey:
    return parse_verification_key(_read_json(path, "verification key"), f"verification key {path}")


def load_proof(path: Path | str) -> Proof:
    return parse_proof(_read_json(path, "proof"), f"proof {path}")


def load_public_signals(path: Path | str) -> tuple[int, ...]:
    return parse_public_signals(_read_json(path, "public signals"), f"public signals {path}")


def proof_to_json(proof: Proof) -> dict[str, Any]:
    """The snarkjs `proof.json` form."""
    (bx0, bx1), (by0, by1) = proof.b
    return {
        "pi_a": [str(proof.a[0]), str(proof.a[1]), "1"],
        "pi_b": [[str(bx0), str(bx1)], [str(by0), str(by1)], ["1", "0"]],
        "pi_c": [str(proof.c[0]), str(proof.c[1]), "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


# -- curve membership -------------------------------------------------------------------------


def g1_to_py_ecc(point: G1Point) -> tuple[FQ, FQ, FQ]:
    return (FQ(point[0]), FQ(point[1]), FQ.one())


def g2_to_py_ecc(point: G2Point) -> tuple[FQ2, FQ2, FQ2]:
    (x0, x1), (y0, y1) = point
    return (FQ2([x0, x1]), FQ2([y0, y1]), FQ2.one())


def _coordinates_in_range(values: tuple[int, ...], where: str) -> None:
    for value in values:
        if not 0 <= value < BASE_FIELD:
            raise MalformedProof(f"{where}: coordinate {value} is not below the base field order p")


def _g1_on_curve(point: G1Point, where: str) -> None:
    if point == (0, 0):
        raise MalformedProof(f"{where}: point at infinity")
    # G1 has cofactor 1: on the curve means in the order-r group. y^2 = x^3 + 3 on plain ints
    # (coordinates are already below p).
    x, y = point
    if (y * y - x * x * x - 3) % BASE_FIELD:
        raise MalformedProof(f"{where}: point is not on the BN254 curve")


def _g2_in_subgroup(point: G2Point, where: str) -> None:
    if point == ((0, 0), (0, 0)):
        raise MalformedProof(f"{where}: point at infinity")
    projective = g2_to_py_ecc(point)
    if not curve.is_on_curve(projective, curve.b2):
        raise MalformedProof(f"{where}: point is not on the BN254 twist")
    # The twist has a large cofactor: points off the order-r subgroup break soundness.
    if not curve.is_inf(curve.multiply(projective, curve.curve_order)):
        raise MalformedProof(f"{where}: point is not in the order-r subgroup of G2")


def _check_g1(point: G1Point, where: str) -> None:
    _coordinates_in_range(point, where)
    _g1_on_curve(point, where)


def _check_g2(point: G2Point, where: str) -> None:
    _coordinates_in_range((*point[0], *point[1]), where)
    _g2_in_subgroup(point, where)


def check_key(key: VerificationKey, where: str = "verification key") -> None:
    """Curve and subgroup membership of every key point, and delta != gamma."""
    _check_g1(key.alpha_g1, f"{where} alpha")
    for name, point in (("beta", key.beta_g2), ("gamma", key.gamma_g2), ("delta", key.delta_g2)):
        _check_g2(point, f"{where} {name}")
    for index, ic_point in enumerate(key.ic):
        _check_g1(ic_point, f"{where} IC[{index}]")
    if key.delta_g2 == key.gamma_g2:
        raise MalformedProof(f"{where}: delta equals gamma (no phase-2 contribution; proofs are forgeable)")


def check_ranges(key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> None:
    """The integer checks every backend runs first, in this order and these words: signal
    count, every signal below r, then every coordinate of A, C and B below p (which also
    makes every value fit a 32-byte encoding)."""
    if len(public_signals) != key.public_count:
        raise MalformedProof(f"expected {key.public_count} public signals, got {len(public_signals)}")
    for index, signal in enumerate(public_signals):
        if not 0 <= signal < SCALAR_FIELD:
            raise MalformedProof(f"public signal {index} is not below the scalar field order r")
    (bx0, bx1), (by0, by1) = proof.b
    _coordinates_in_range(proof.a, "proof A")
    _coordinates_in_range(proof.c, "proof C")
    _coordinates_in_range((bx0, bx1, by0, by1), "proof B")


def check_well_formed(key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> None:
    """The cheap structural check (see module doc): `check_ranges`, then no point is the
    all-zero encoding of infinity. No curve arithmetic: curve and subgroup membership is
    the backend's `verify` (a few microseconds here instead of the tens of milliseconds of
    the [r]B test in Python)."""
    check_ranges(key, proof, public_signals)
    if proof.a == (0, 0):
        raise MalformedProof("proof A: point at infinity")
    if proof.c == (0, 0):
        raise MalformedProof("proof C: point at infinity")
    if proof.b == ((0, 0), (0, 0)):
        raise MalformedProof("proof B: point at infinity")


def check_proof_points(proof: Proof) -> None:
    """Curve and subgroup membership of a proof whose coordinates are below p (run
    `check_ranges` first): A, then C, then B, each not at infinity, A and C on the curve,
    B on the twist and in the order-r subgroup ([r]B = O with py_ecc: tens of ms)."""
    _g1_on_curve(proof.a, "proof A")
    _g1_on_curve(proof.c, "proof C")
    _g2_in_subgroup(proof.b, "proof B")
