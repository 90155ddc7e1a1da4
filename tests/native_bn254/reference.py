"""Conversions between the C encodings (bn254.h) and py_ecc values, plus twist points the
verifier must reject. py_ecc is the reference every native result is compared with."""

from __future__ import annotations

import random
from typing import Any

from py_ecc.optimized_bn128 import optimized_curve as curve
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12

P = curve.field_modulus
R = curve.curve_order
#: |E'(Fp2)| = r * (2p - r); the cofactor has small factors, so the twist has small-order points.
TWIST_COFACTOR = 2 * P - R
SMALL_FACTOR = 10069
#: Coefficient of w^k for each Fp2 coefficient of the C tower, in its storage order
#: (c0.c0, c0.c1, c0.c2, c1.c0, c1.c1, c1.c2), since v = w^2.
_TOWER_POWERS = (0, 2, 4, 1, 3, 5)

G1Affine = tuple[int, int]
G2Affine = tuple[tuple[int, int], tuple[int, int]]


def fp(value: int) -> bytes:
    return value.to_bytes(32, "big")


def ints(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]


def g1_bytes(point: G1Affine | None) -> bytes:
    return bytes(64) if point is None else fp(point[0]) + fp(point[1])


def g2_bytes(point: G2Affine | None) -> bytes:
    if point is None:
        return bytes(128)
    (x0, x1), (y0, y1) = point
    return fp(x0) + fp(x1) + fp(y0) + fp(y1)


def g1_from_bytes(data: bytes) -> G1Affine | None:
    x, y = ints(data)
    return None if (x, y) == (0, 0) else (x, y)


def g2_from_bytes(data: bytes) -> G2Affine | None:
    x0, x1, y0, y1 = ints(data)
    return None if (x0, x1, y0, y1) == (0, 0, 0, 0) else ((x0, x1), (y0, y1))


def g1_affine(point: Any) -> G1Affine | None:
    if curve.is_inf(point):
        return None
    x, y = curve.normalize(point)
    return (int(x), int(y))


def g2_affine(point: Any) -> G2Affine | None:
    if curve.is_inf(point):
        return None
    x, y = curve.normalize(point)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


def g1_projective(point: G1Affine) -> Any:
    return (FQ(point[0]), FQ(point[1]), FQ.one())


def g2_projective(point: G2Affine) -> Any:
    return (FQ2(list(point[0])), FQ2(list(point[1])), FQ2.one())


def fp12_from_tower(values: list[int]) -> FQ12:
    """The C tower element as py_ecc's FQ12 (modulus w^12 - 18 w^6 + 82): u = w^6 - 9."""
    coefficients = [0] * 12
    for index, power in enumerate(_TOWER_POWERS):
        c0, c1 = values[2 * index], values[2 * index + 1]
        coefficients[power] += c0 - 9 * c1
        coefficients[power + 6] += c1
    return FQ12([value % P for value in coefficients])


def fp12_to_tower(element: FQ12) -> list[int]:
    """Inverse of fp12_from_tower."""
    coefficients = [int(value) for value in element.coeffs]
    values = []
    for power in _TOWER_POWERS:
        c1 = coefficients[power + 6]
        c0 = (coefficients[power] + 9 * c1) % P
        values.extend([c0, c1])
    return values


def fp12_bytes(element: FQ12) -> bytes:
    return b"".join(fp(value) for value in fp12_to_tower(element))


def _fp2_sqrt(value: tuple[int, int]) -> tuple[int, int] | None:
    """A square root in Fp2 = Fp[u]/(u^2 + 1) via the norm, or None (p = 3 mod 4)."""
    a0, a1 = value
    norm = (a0 * a0 + a1 * a1) % P
    alpha = pow(norm, (P + 1) // 4, P)
    if alpha * alpha % P != norm:
        return None
    inverse_two = pow(2, P - 2, P)
    for candidate in ((a0 + alpha) * inverse_two % P, (a0 - alpha) * inverse_two % P):
        x0 = pow(candidate, (P + 1) // 4, P)
        if x0 * x0 % P == candidate and x0 != 0:
            x1 = a1 * pow(2 * x0, P - 2, P) % P
            if ((x0 * x0 - x1 * x1) % P, 2 * x0 * x1 % P) == (a0 % P, a1 % P):
                return (x0, x1)
    return None


def random_twist_point(rng: random.Random) -> Any:
    """A uniformly chosen point of E'(Fp2), almost surely outside the order-r subgroup."""
    b2 = curve.b2
    while True:
        x = FQ2([rng.randrange(P), rng.randrange(P)])
        rhs = x * x * x + b2
        root = _fp2_sqrt((int(rhs.coeffs[0]), int(rhs.coeffs[1])))
        if root is not None:
            return (x, FQ2(list(root)), FQ2.one())


def small_order_twist_point(rng: random.Random) -> G2Affine:
    """A twist point of order 10069: it passes the curve check and must fail the subgroup one."""
    assert TWIST_COFACTOR % SMALL_FACTOR == 0
    while True:
        point = curve.multiply(random_twist_point(rng), R * (TWIST_COFACTOR // SMALL_FACTOR))
        affine = g2_affine(point)
        if affine is not None:
            return affine
