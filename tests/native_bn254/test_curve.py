"""G1 and G2 group law, scalar multiplication, psi and the G2 subgroup check against py_ecc."""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from py_ecc.optimized_bn128 import optimized_curve as curve

from .examples import examples
from .reference import (
    TWIST_COFACTOR,
    P,
    R,
    G2Affine,
    fp,
    g1_affine,
    g1_bytes,
    g1_from_bytes,
    g2_affine,
    g2_bytes,
    g2_from_bytes,
    random_twist_point,
    small_order_twist_point,
)

scalars = st.integers(min_value=0, max_value=R - 1)
wide_scalars = st.integers(min_value=0, max_value=2**256 - 1)


def g1_op(native: ModuleType, op: int, a: bytes, b: bytes = bytes(64), scalar: int = 0) -> bytes:
    out = native.ffi.new("uint8_t[64]")
    assert native.lib.bn254_op_g1(op, out, a, b, scalar.to_bytes(32, "big")) == 1
    return bytes(out)


def g2_op(native: ModuleType, op: int, a: bytes, b: bytes = bytes(128), scalar: int = 0) -> bytes:
    out = native.ffi.new("uint8_t[128]")
    assert native.lib.bn254_op_g2(op, out, a, b, scalar.to_bytes(32, "big")) == 1
    return bytes(out)


@examples(25)
@given(scalars, scalars, wide_scalars)
def test_g1_add_double_multiply(native: ModuleType, a: int, b: int, k: int) -> None:
    lib = native.lib
    p, q = curve.multiply(curve.G1, a), curve.multiply(curve.G1, b)
    p_bytes, q_bytes = g1_bytes(g1_affine(p)), g1_bytes(g1_affine(q))
    assert g1_from_bytes(g1_op(native, lib.BN254_OP_ADD, p_bytes, q_bytes)) == g1_affine(curve.add(p, q))
    assert g1_from_bytes(g1_op(native, lib.BN254_OP_DOUBLE, p_bytes)) == g1_affine(curve.double(p))
    expected = g1_affine(curve.multiply(p, k % R))
    assert g1_from_bytes(g1_op(native, lib.BN254_OP_SCALAR_MUL, p_bytes, scalar=k)) == expected


@examples(10)
@given(scalars, wide_scalars)
def test_g1_fixed_base_multiply(native: ModuleType, a: int, k: int) -> None:
    point = curve.multiply(curve.G1, a or 1)
    result = g1_op(native, native.lib.BN254_OP_FIXED_BASE_MUL, g1_bytes(g1_affine(point)), scalar=k)
    assert g1_from_bytes(result) == g1_affine(curve.multiply(point, k % R))


def test_g1_special_cases(native: ModuleType) -> None:
    lib = native.lib
    g = g1_bytes(g1_affine(curve.G1))
    minus_g = g1_bytes(g1_affine(curve.neg(curve.G1)))
    infinity = bytes(64)
    assert g1_op(native, lib.BN254_OP_ADD, g, minus_g) == infinity
    assert g1_op(native, lib.BN254_OP_ADD, g, g) == g1_bytes(g1_affine(curve.double(curve.G1)))
    assert g1_op(native, lib.BN254_OP_ADD, g, infinity) == g
    assert g1_op(native, lib.BN254_OP_ADD, infinity, g) == g
    assert g1_op(native, lib.BN254_OP_SCALAR_MUL, g, scalar=R) == infinity
    assert g1_op(native, lib.BN254_OP_SCALAR_MUL, g, scalar=0) == infinity


def test_g1_rejects_points_off_the_curve(native: ModuleType) -> None:
    out = native.ffi.new("uint8_t[64]")
    assert native.lib.bn254_op_g1(native.lib.BN254_OP_DOUBLE, out, fp(1) + fp(3), bytes(64), bytes(32)) == 0
    assert native.lib.bn254_op_g1(native.lib.BN254_OP_DOUBLE, out, fp(1) + fp(2 + P), bytes(64), bytes(32)) == 0


@examples(12)
@given(scalars, scalars, scalars)
def test_g2_add_double_multiply(native: ModuleType, a: int, b: int, k: int) -> None:
    lib = native.lib
    p, q = curve.multiply(curve.G2, a), curve.multiply(curve.G2, b)
    p_bytes, q_bytes = g2_bytes(g2_affine(p)), g2_bytes(g2_affine(q))
    assert g2_from_bytes(g2_op(native, lib.BN254_OP_ADD, p_bytes, q_bytes)) == g2_affine(curve.add(p, q))
    assert g2_from_bytes(g2_op(native, lib.BN254_OP_DOUBLE, p_bytes)) == g2_affine(curve.double(p))
    expected = g2_affine(curve.multiply(p, k))
    assert g2_from_bytes(g2_op(native, lib.BN254_OP_SCALAR_MUL, p_bytes, scalar=k)) == expected


@examples(6)
@given(scalars)
def test_psi_acts_as_multiplication_by_p_on_g2(native: ModuleType, a: int) -> None:
    lib = native.lib
    point = g2_bytes(g2_affine(curve.multiply(curve.G2, a)))
    assert g2_op(native, lib.BN254_OP_PSI, point) == g2_op(native, lib.BN254_OP_SCALAR_MUL, point, scalar=P % R)


def in_subgroup(native: ModuleType, encoded: bytes, op: int | None = None) -> bool:
    out = native.ffi.new("uint8_t[128]")
    op = native.lib.BN254_OP_IN_SUBGROUP if op is None else op
    assert native.lib.bn254_op_g2(op, out, encoded, bytes(128), bytes(32)) == 1
    return bool(out[0] == 1)


def both_subgroup_checks(native: ModuleType, point: G2Affine | None) -> tuple[bool, bool]:
    assert point is not None
    encoded = g2_bytes(point)
    return in_subgroup(native, encoded), in_subgroup(native, encoded, native.lib.BN254_OP_IN_SUBGROUP_BY_ORDER)


@pytest.mark.parametrize("seed", range(4))
def test_subgroup_check_agrees_with_py_ecc(native: ModuleType, seed: int) -> None:
    rng = random.Random(seed)
    member = g2_affine(curve.multiply(curve.G2, rng.randrange(1, R)))
    assert member is not None
    assert both_subgroup_checks(native, member) == (True, True)
    stranger = random_twist_point(rng)
    assert not curve.is_inf(curve.multiply(stranger, R))
    assert both_subgroup_checks(native, g2_affine(stranger)) == (False, False)
    small = small_order_twist_point(rng)
    assert both_subgroup_checks(native, small) == (False, False)


@pytest.mark.parametrize("order", [10069, 5864401, 1875725156269, 10069 * 5864401, TWIST_COFACTOR])
def test_subgroup_check_rejects_every_cofactor_component(native: ModuleType, order: int) -> None:
    # Points whose order divides the cofactor, alone and added to a subgroup member: the
    # fast endomorphism test must agree with [r]P = O on each.
    rng = random.Random(order)
    point = curve.multiply(random_twist_point(rng), R * (TWIST_COFACTOR // order))
    torsion = g2_affine(point)
    assert torsion is not None
    assert both_subgroup_checks(native, torsion) == (False, False)
    mixed = g2_affine(curve.add(point, curve.multiply(curve.G2, rng.randrange(1, R))))
    assert mixed is not None
    assert both_subgroup_checks(native, mixed) == (False, False)


@examples(40)
@given(st.integers(min_value=0, max_value=2**64))
def test_fast_subgroup_check_equals_the_definition(native: ModuleType, seed: int) -> None:
    point = random_twist_point(random.Random(seed))
    expected = curve.is_inf(curve.multiply(point, R))
    assert both_subgroup_checks(native, g2_affine(point)) == (expected, expected)
