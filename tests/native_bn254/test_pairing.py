"""The pairing value itself against py_ecc, bilinearity and the multi-pairing."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st
from py_ecc.optimized_bn128 import optimized_curve as curve
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import optimized_pairing

from .examples import examples
from .reference import R, fp12_from_tower, g1_affine, g1_bytes, g2_affine, g2_bytes, ints

scalars = st.integers(min_value=1, max_value=R - 1)


def pairing(native: ModuleType, pairs: list[tuple[object, object]]) -> FQ12:
    out = native.ffi.new("uint8_t[384]")
    g1_points = b"".join(g1_bytes(g1_affine(p)) for p, _ in pairs)
    g2_points = b"".join(g2_bytes(g2_affine(q)) for _, q in pairs)
    assert native.lib.bn254_op_pairing(out, g1_points, g2_points, len(pairs)) == 1
    return fp12_from_tower(ints(bytes(out)))


@examples(3)
@given(scalars, scalars)
def test_pairing_equals_py_ecc(native: ModuleType, a: int, b: int) -> None:
    p, q = curve.multiply(curve.G1, a), curve.multiply(curve.G2, b)
    assert pairing(native, [(p, q)]) == optimized_pairing.pairing(q, p)


@examples(4)
@given(scalars, scalars)
def test_bilinearity(native: ModuleType, a: int, b: int) -> None:
    base = pairing(native, [(curve.G1, curve.G2)])
    assert base != FQ12.one()
    scaled = pairing(native, [(curve.multiply(curve.G1, a), curve.multiply(curve.G2, b))])
    assert scaled == base ** (a * b % R)


@examples(4)
@given(scalars, scalars)
def test_multi_pairing_of_cancelling_pairs_is_one(native: ModuleType, a: int, b: int) -> None:
    p, q = curve.multiply(curve.G1, a), curve.multiply(curve.G2, b)
    # e(aP, Q) e(-P, aQ) = 1, and a third pair multiplies in its own pairing.
    assert pairing(native, [(curve.multiply(p, a), q), (curve.neg(p), curve.multiply(q, a))]) == FQ12.one()
    three = pairing(native, [(curve.multiply(p, a), q), (curve.neg(p), curve.multiply(q, a)), (p, q)])
    assert three == pairing(native, [(p, q)])


def test_pairing_with_infinity_is_one(native: ModuleType) -> None:
    out = native.ffi.new("uint8_t[384]")
    assert native.lib.bn254_op_pairing(out, bytes(64), g2_bytes(g2_affine(curve.G2)), 1) == 1
    assert fp12_from_tower(ints(bytes(out))) == FQ12.one()
    assert native.lib.bn254_op_pairing(out, g1_bytes(g1_affine(curve.G1)), bytes(128), 1) == 1
    assert fp12_from_tower(ints(bytes(out))) == FQ12.one()
