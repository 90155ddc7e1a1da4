"""The optimal ate pairing on BN254 in pure Python, built on py_ecc's field classes.

py_ecc's `pairing()` runs one Miller loop and one final exponentiation per pair, both in
Fp12 throughout (Frobenius by raising to p, the final exponent as one ~2800-bit power).
Groth16 only needs "is this product of pairings 1", so this module:

- splits each Miller loop into the G2-only part (the sequence of line functions, which here
  depends only on Q) and the cheap evaluation at P, so fixed G2 points (gamma, delta) are
  prepared once per key; the G2 point arithmetic runs in Fp2 and only the line coefficients
  are mapped into Fp12 (py_ecc runs it on the twisted point in Fp12);
- drops the line denominators: each is an Fp2 element times w^2 or w^3, which lies in
  F_{p^4} or F_{p^6}, and the final exponentiation maps every element of those subfields
  to 1 (p^4 - 1 and p^6 - 1 both divide (p^12 - 1) / r);
- runs one multi-Miller loop over all pairs, sharing the squarings of the accumulator;
- applies the final exponentiation once, with the easy part (p^6 - 1)(p^2 + 1) done by
  Frobenius maps (linear maps over Fp, precomputed) and only (p^4 - p^2 + 1) / r as a power.

The loop mirrors py_ecc's `optimized_pairing.miller_loop` step for step (same signed-digit
encoding of the ate loop count, same projective line formulas), so the value after the final
exponentiation equals py_ecc's `pairing(Q, P)`; the tests check that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import optimized_curve as curve
from py_ecc.optimized_bn128 import optimized_pairing

P = curve.field_modulus
R = curve.curve_order
_LOOP_DIGITS = tuple(optimized_pairing.pseudo_binary_encoding[63::-1])
_HARD_EXPONENT = (P**4 - P**2 + 1) // R

Point12 = tuple[FQ12, FQ12, FQ12]


@dataclass(frozen=True)
class Line:
    """A line through points of the twisted curve, as a function of an affine G1 point (x, y).

    Its value there is (x_coefficient * x + y_coefficient * y + constant); its denominator
    is dropped (see the module docstring).
    """

    x_coefficient: FQ12
    """Multiplies the x coordinate of the G1 point."""
    y_coefficient: FQ12
    """Multiplies the y coordinate of the G1 point."""
    constant: FQ12
    """Added to the two products."""


@dataclass(frozen=True)
class PreparedG2:
    """Everything the Miller loop needs from one G2 point."""

    steps: tuple[tuple[Line, ...], ...]
    """Per loop iteration, the lines multiplied into the accumulator after squaring it."""
    final_lines: tuple[Line, Line]
    """The two Frobenius lines applied after the loop."""


@cache
def _frobenius_basis(power: int) -> tuple[FQ12, ...]:
    # (w^i)^(p^power) for the 12 basis monomials: a^(p^k) = sum_i a_i * (w^i)^(p^k) because
    # the coefficients a_i lie in Fp, which Frobenius fixes.
    if power == 1:
        w_to_p = curve.w**P
        basis = [FQ12.one()]
        for _ in range(11):
            basis.append(basis[-1] * w_to_p)
        return tuple(basis)
    previous = _frobenius_basis(power - 1)
    return tuple(frobenius(element, 1) for element in previous)


def frobenius(element: FQ12, power: int) -> FQ12:
    """element^(p^power), as a linear map instead of a power."""
    basis = _frobenius_basis(power)
    coefficients = [0] * 12
    for coefficient, image in zip(element.coeffs, basis):
        if coefficient:
            for index, value in enumerate(image.coeffs):
                coefficients[index] += int(coefficient) * int(value)
    return FQ12([value % P for value in coefficients])


def _line(first: Point12, second: Point12) -> Line:
    # py_ecc's linefunc(first, second, T) with T = (x, y, 1) left symbolic:
    #   numerator = m_num * (x * z1 - x1) - m_den * (y * z1 - y1).
    x1, y1, z1 = first
    x2, y2, z2 = second
    zero = x1.zero()
    slope_numerator = y2 * z1 - y1 * z2
    slope_denominator = x2 * z1 - x1 * z2
    if slope_denominator == zero and slope_numerator == zero:
        slope_numerator = 3 * x1 * x1
        slope_denominator = 2 * y1 * z1
    elif slope_denominator == zero:
        return Line(z1, zero, -x1)
    return Line(
        x_coefficient=slope_numerator * z1,
        y_coefficient=-(slope_denominator * z1),
        constant=slope_denominator * y1 - slope_numerator * x1,
    )


def _embed(value: FQ2, w_power: int) -> FQ12:
    # Fp2 -> Fp12 as in py_ecc's twist (i = w^6 - 9: c0 + c1 i = (c0 - 9 c1) + c1 w^6), times
    # w^w_power for 0 <= w_power <= 6, placed directly (Fp12 is Fp[w] / (w^12 - 18 w^6 + 82)).
    c0, c1 = (int(c) for c in value.coeffs)
    low, high = c0 - 9 * c1, c1
    coefficients = [0] * 12
    if w_power < 6:
        coefficients[w_power] = low
        coefficients[w_power + 6] = high
    else:
        coefficients[0] = -82 * high
        coefficients[6] = low + 18 * high
    return FQ12(coefficients)


def _tangent_line(point: tuple[FQ2, FQ2, FQ2]) -> Line:
    # _line(twist(R), twist(R)) with R = (X, Y, Z) over Fp2: twist(R) = (X w^2, Y w^3, Z), so
    # m_num = 3X^2 w^4, m_den = 2YZ w^3 and every coefficient is an Fp2 value times a power of w.
    x, y, z = point
    return Line(
        x_coefficient=_embed(3 * x * x * z, 4),
        y_coefficient=_embed(-(2 * y * z * z), 3),
        constant=_embed(2 * y * y * z - 3 * x * x * x, 6),
    )


def _chord_line(first: tuple[FQ2, FQ2, FQ2], second: tuple[FQ2, FQ2, FQ2]) -> Line:
    # _line(twist(R), twist(Q)): m_num = (Y2 Z1 - Y1 Z2) w^3, m_den = (X2 Z1 - X1 Z2) w^2.
    x1, y1, z1 = first
    x2, y2, z2 = second
    zero = x1.zero()
    rise = y2 * z1 - y1 * z2
    run = x2 * z1 - x1 * z2
    if run == zero and rise == zero:
        return _tangent_line(first)
    if run == zero:
        return Line(_embed(z1, 0), FQ12.zero(), _embed(-x1, 2))
    return Line(
        x_coefficient=_embed(rise * z1, 3),
        y_coefficient=_embed(-(run * z1), 2),
        constant=_embed(run * y1 - rise * x1, 5),
    )


def _twist(point: tuple[FQ2, FQ2, FQ2]) -> Point12:
    x, y, z = point
    return (_embed(x, 2), _embed(y, 3), _embed(z, 0))


def prepare_g2(point: tuple[FQ2, FQ2, FQ2]) -> PreparedG2:
    """Run the G2 half of the Miller loop for `point` (affine, z = 1, not at infinity)."""
    accumulator = point
    negated = curve.neg(point)
    steps = []
    for digit in _LOOP_DIGITS:
        lines = [_tangent_line(accumulator)]
        accumulator = curve.double(accumulator)
        if digit:
            addend = point if digit == 1 else negated
            lines.append(_chord_line(accumulator, addend))
            accumulator = curve.add(accumulator, addend)
        steps.append(tuple(lines))
    q = _twist(point)
    q1 = (frobenius(q[0], 1), frobenius(q[1], 1), frobenius(q[2], 1))
    minus_q2 = (frobenius(q1[0], 1), -frobenius(q1[1], 1), frobenius(q1[2], 1))
    twisted_accumulator = _twist(accumulator)
    first_line = _line(twisted_accumulator, q1)
    twisted_accumulator = curve.add(twisted_accumulator, q1)
    second_line = _line(twisted_accumulator, minus_q2)
    return PreparedG2(steps=tuple(steps), final_lines=(first_line, second_line))


def _evaluate(line: Line, x: int, y: int) -> FQ12:
    return line.x_coefficient * x + line.y_coefficient * y + line.constant


def multi_miller_loop(pairs: Sequence[tuple[PreparedG2, tuple[int, int]]]) -> FQ12:
    """The product of the Miller loops of (Q_k, P_k), P_k affine G1 points, not infinity,
    up to factors the final exponentiation removes (so compare only after it)."""
    numerator = FQ12.one()
    for step_index in range(len(_LOOP_DIGITS)):
        numerator = numerator * numerator
        for prepared, (x, y) in pairs:
            for line in prepared.steps[step_index]:
                numerator = numerator * _evaluate(line, x, y)
    for prepared, (x, y) in pairs:
        for line in prepared.final_lines:
            numerator = numerator * _evaluate(line, x, y)
    return numerator


def final_exponentiation(value: FQ12) -> FQ12:
    """value^((p^12 - 1) / r)."""
    if value == FQ12.zero():
        # Cannot come from points of order r; keep it from reaching an inversion.
        return value
    # Easy part: f^(p^6 - 1) then ^(p^2 + 1), both with Frobenius maps.
    value = frobenius(value, 6) / value
    value = frobenius(value, 2) * value
    return value**_HARD_EXPONENT


def pairing_product_is_one(pairs: Sequence[tuple[PreparedG2, tuple[int, int]]], target: FQ12) -> bool:
    """Whether final_exponentiation(multi_miller_loop(pairs)) == target."""
    return final_exponentiation(multi_miller_loop(pairs)) == target


def pairing(q: tuple[FQ2, FQ2, FQ2], p: tuple[int, int]) -> FQ12:
    """e(P, Q) after the final exponentiation (for precomputing e(alpha, beta) and tests)."""
    return final_exponentiation(multi_miller_loop([(prepare_g2(q), p)]))


__all__ = ["Line", "PreparedG2", "final_exponentiation", "multi_miller_loop", "pairing", "prepare_g2"]
