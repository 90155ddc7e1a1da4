"""Fp, Fp2 and Fp12 arithmetic of the C code against py_ecc on random elements."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import optimized_pairing

from .examples import examples
from .reference import P, fp, fp12_bytes, fp12_from_tower, ints

field_elements = st.integers(min_value=0, max_value=P - 1)
nonzero_elements = st.integers(min_value=1, max_value=P - 1)
fp12_elements = st.lists(field_elements, min_size=12, max_size=12).map(FQ12)


def run(native: ModuleType, degree: int, op: int, a: bytes, b: bytes) -> list[int]:
    out = native.ffi.new("uint8_t[]", 32 * degree)
    assert native.lib.bn254_op_field(degree, op, out, a, b) == 1
    return ints(bytes(out))


def run12(native: ModuleType, op: int, a: FQ12, b: FQ12 | None = None) -> FQ12:
    result = run(native, 12, op, fp12_bytes(a), fp12_bytes(b if b is not None else a))
    return fp12_from_tower(result)


@examples(100)
@given(field_elements, field_elements)
def test_fp_add_sub_mul(native: ModuleType, a: int, b: int) -> None:
    lib = native.lib
    assert run(native, 1, lib.BN254_OP_ADD, fp(a), fp(b)) == [(a + b) % P]
    assert run(native, 1, lib.BN254_OP_SUB, fp(a), fp(b)) == [(a - b) % P]
    assert run(native, 1, lib.BN254_OP_MUL, fp(a), fp(b)) == [a * b % P]
    assert run(native, 1, lib.BN254_OP_SQUARE, fp(a), fp(b)) == [a * a % P]


@examples(30)
@given(nonzero_elements)
def test_fp_inverse(native: ModuleType, a: int) -> None:
    assert run(native, 1, native.lib.BN254_OP_INVERSE, fp(a), fp(0)) == [pow(a, P - 2, P)]


@examples(100)
@given(st.one_of(field_elements, st.integers(min_value=P - 2**70, max_value=P - 1)), st.integers(min_value=0, max_value=16))
def test_fp_multiply_by_small_constant(native: ModuleType, a: int, k: int) -> None:
    assert run(native, 1, native.lib.BN254_OP_MUL_BY_SMALL, fp(a), fp(k)) == [a * k % P]


@examples(60)
@given(field_elements, field_elements)
def test_fp2_multiply_by_xi(native: ModuleType, a0: int, a1: int) -> None:
    expected = FQ2([a0, a1]) * FQ2([9, 1])
    assert run(native, 2, native.lib.BN254_OP_MUL_BY_XI, fp(a0) + fp(a1), fp(0) + fp(0)) == [int(c) for c in expected.coeffs]


def test_fp_edges(native: ModuleType) -> None:
    lib = native.lib
    assert run(native, 1, lib.BN254_OP_ADD, fp(P - 1), fp(1)) == [0]
    assert run(native, 1, lib.BN254_OP_SUB, fp(0), fp(1)) == [P - 1]
    assert run(native, 1, lib.BN254_OP_MUL, fp(P - 1), fp(P - 1)) == [1]
    assert run(native, 1, lib.BN254_OP_INVERSE, fp(0), fp(0)) == [0]
    for value in (0, 1, P - 1, P // 9, P // 9 + 1, (P - 1) // 2, P // 16 + 1):
        for k in (0, 1, 9, 16):
            assert run(native, 1, lib.BN254_OP_MUL_BY_SMALL, fp(value), fp(k)) == [value * k % P]


def test_values_at_or_above_p_are_refused(native: ModuleType) -> None:
    out = native.ffi.new("uint8_t[32]")
    for bad in (P, P + 1, 2**256 - 1):
        assert native.lib.bn254_op_field(1, native.lib.BN254_OP_ADD, out, bad.to_bytes(32, "big"), fp(1)) == 0


@examples(60)
@given(field_elements, field_elements, field_elements, field_elements)
def test_fp2_arithmetic(native: ModuleType, a0: int, a1: int, b0: int, b1: int) -> None:
    lib = native.lib
    a, b = FQ2([a0, a1]), FQ2([b0, b1])
    encoded_a, encoded_b = fp(a0) + fp(a1), fp(b0) + fp(b1)

    def as_ints(value: FQ2) -> list[int]:
        return [int(c) for c in value.coeffs]

    assert run(native, 2, lib.BN254_OP_ADD, encoded_a, encoded_b) == as_ints(a + b)
    assert run(native, 2, lib.BN254_OP_SUB, encoded_a, encoded_b) == as_ints(a - b)
    assert run(native, 2, lib.BN254_OP_MUL, encoded_a, encoded_b) == as_ints(a * b)
    assert run(native, 2, lib.BN254_OP_SQUARE, encoded_a, encoded_b) == as_ints(a * a)
    if a != FQ2.zero():
        assert run(native, 2, lib.BN254_OP_INVERSE, encoded_a, encoded_b) == as_ints(a.inv())


@examples(25)
@given(fp12_elements, fp12_elements)
def test_fp12_mul_square_inverse(native: ModuleType, a: FQ12, b: FQ12) -> None:
    lib = native.lib
    assert run12(native, lib.BN254_OP_MUL, a, b) == a * b
    assert run12(native, lib.BN254_OP_SQUARE, a) == a * a
    if a != FQ12.zero():
        assert run12(native, lib.BN254_OP_INVERSE, a) == a.inv()


@examples(4)
@given(fp12_elements)
def test_fp12_frobenius(native: ModuleType, a: FQ12) -> None:
    lib = native.lib
    a_p = a**P
    assert run12(native, lib.BN254_OP_FROBENIUS_1, a) == a_p
    a_p2 = a_p**P
    assert run12(native, lib.BN254_OP_FROBENIUS_2, a) == a_p2
    assert run12(native, lib.BN254_OP_FROBENIUS_3, a) == a_p2**P


@examples(10)
@given(fp12_elements)
def test_cyclotomic_square_matches_square_in_the_cyclotomic_subgroup(native: ModuleType, a: FQ12) -> None:
    lib = native.lib
    if a == FQ12.zero():
        return
    # a^((p^6 - 1)(p^2 + 1)) lies in the cyclotomic subgroup, where the cheaper squaring applies.
    unitary = (a ** (P**6 - 1)) ** (P**2 + 1)
    assert run12(native, lib.BN254_OP_CYCLOTOMIC_SQUARE, unitary) == unitary * unitary


@examples(3)
@given(fp12_elements)
def test_final_exponentiation_matches_py_ecc(native: ModuleType, a: FQ12) -> None:
    if a == FQ12.zero():
        return
    expected = optimized_pairing.final_exponentiate(a)
    assert run12(native, native.lib.BN254_OP_FINAL_EXPONENTIATION, a) == expected
